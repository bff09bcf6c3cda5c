use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::*;

fn ready() -> Nats {
    let mut n = Nats::new().with_inbox("_INBOX.t1");
    n.open(Open {
        nonce: 0,
        unconfirmed: false,
    })
    .unwrap();
    n.decode(b"INFO {\"max_payload\":2097152}\r\n").unwrap();
    let mut out = Vec::new();
    n.write_control(&mut out);
    assert!(out.starts_with(b"CONNECT {"));
    assert!(
        out.ends_with(b"}\r\nSUB _INBOX.t1.* 0\r\nPING\r\n"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    assert!(matches!(
        n.decode(b"PONG\r\n").unwrap(),
        Some((Unit::Handshake(Handshake::Accepted { .. }), 6))
    ));
    n
}

fn msg(subject: &str, sid: u64, payload: &[u8]) -> Vec<u8> {
    let mut m = format!("MSG {subject} {sid} {}\r\n", payload.len()).into_bytes();
    m.extend_from_slice(payload);
    m.extend_from_slice(b"\r\n");
    m
}

#[test]
fn payloads_that_look_like_operations_are_data_wherever_the_read_stops() {
    let big = vec![b'P'; 1 << 20];
    let payloads: Vec<&[u8]> = vec![
        b"PING",
        b"PONG",
        b"+OK",
        b"-ERR 'x'",
        b"a\r\nPING\r\nb",
        b"MSG x 1 3\r\n",
        b"",
        b"\0\0",
        &big,
    ];
    for p in payloads {
        let m = msg("greet.x", 7, p);
        let cuts: Vec<usize> = if m.len() > 4096 {
            vec![0, 5, 20, m.len() - 1]
        } else {
            (0..m.len()).collect()
        };
        for cut in cuts {
            let mut n = ready();
            assert_eq!(n.decode(&m[..cut]).unwrap(), None, "cut at {cut}");
            let Some((Unit::Message { route, body, meta }, used)) = n.decode(&m).unwrap() else {
                panic!("a message");
            };
            assert_eq!((route, body, used), (Route::Sid(7), p, m.len()));
            assert_eq!(meta.topic, b"greet.x");
        }
    }
}

#[test]
fn declared_sizes_are_checked_before_the_payload_arrives() {
    let mut n = ready();
    assert!(matches!(
        n.decode(b"MSG a 1 4294967296\r\n"),
        Err(FrameError::TooLarge { .. })
    ));
    let mut n = ready();
    // The server's own max_payload (2 MiB) bounds what it may send.
    assert!(matches!(
        n.decode(b"MSG a 1 3000000\r\n"),
        Err(FrameError::TooLarge { max: 2097152, .. })
    ));
    let mut n = ready();
    assert!(matches!(
        n.decode(&[b'X'; 5000]),
        Err(FrameError::TooLarge { .. })
    ));
    for bad in [
        &b"MSG a 1 3\r\nabcXY"[..],
        b"MSG a\r\n",
        b"MSG a 1 x\r\n",
        b"HMSG a 1 9 3\r\n",
        b"BOGUS\r\n",
        b"MSG a b c d e\r\n",
    ] {
        let mut n = ready();
        assert!(n.decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn headers_and_replies() {
    let mut n = ready();
    let hmsg = b"HMSG a.b 3 r.1 18 21\r\nNATS/1.0\r\nK: v\r\n\r\nhey\r\n";
    let Some((Unit::Message { body, meta, .. }, used)) = n.decode(hmsg).unwrap() else {
        panic!("a message");
    };
    assert_eq!(
        (body, meta.reply_to, used),
        (&b"hey"[..], &b"r.1"[..], hmsg.len())
    );
    assert_eq!(meta.headers, b"NATS/1.0\r\nK: v\r\n\r\n");
    // A reply on our inbox answers its request by token, whatever the order.
    let reply = msg("_INBOX.t1.42", 0, b"pong!");
    assert!(matches!(
        n.decode(&reply).unwrap(),
        Some((
            Unit::Reply {
                to: Match::KeyIfAny(42),
                body: b"pong!",
                status: ReplyStatus::Done
            },
            _
        ))
    ));
    // No responders: a status the caller sees as a refusal.
    let none = b"HMSG _INBOX.t1.43 0 16 16\r\nNATS/1.0 503\r\n\r\n\r\n";
    assert!(matches!(
        n.decode(none).unwrap(),
        Some((
            Unit::Reply {
                to: Match::KeyIfAny(43),
                status: ReplyStatus::Refused,
                ..
            },
            _
        ))
    ));
    // Our inbox's subject on another sid is an ordinary message.
    let other = msg("_INBOX.t1.44", 9, b"x");
    assert!(matches!(
        n.decode(&other).unwrap(),
        Some((Unit::Message { .. }, _))
    ));
    // A request names its token; a plain PUB is confirmed by the next PONG.
    let req = n.request(42, "svc.echo", b"hi").unwrap();
    assert_eq!(req, b"PUB svc.echo _INBOX.t1.42 2\r\nhi\r\n");
    let mut out = Vec::new();
    assert_eq!(
        n.encode(&req, Sending::default(), &mut out).unwrap(),
        Expect::Key(42)
    );
    let p = publish("a", b"PING\r\n").unwrap();
    assert_eq!(
        n.encode(&p, Sending::default(), &mut out).unwrap(),
        Expect::Barrier
    );
    assert!(matches!(
        n.decode(b"PONG\r\n").unwrap(),
        Some((
            Unit::Reply {
                to: Match::Next,
                ..
            },
            _
        ))
    ));
}

#[test]
fn the_server_is_checked_and_its_errors_classified() {
    let mut n = Nats::new();
    n.open(Open {
        nonce: 0,
        unconfirmed: false,
    })
    .unwrap();
    assert!(
        n.decode(b"+PONG\r\n").is_err(),
        "not INFO: not a NATS server"
    );
    let mut n = Nats::new();
    n.open(Open {
        nonce: 0,
        unconfirmed: false,
    })
    .unwrap();
    n.decode(b"INFO {}\r\n").unwrap();
    let Some((Unit::Handshake(Handshake::Refused { error, .. }), _)) =
        n.decode(b"-ERR 'Authorization Violation'\r\n").unwrap()
    else {
        panic!("refused");
    };
    assert_eq!(error, NetError::PermissionDenied);
    let mut n = ready();
    assert!(matches!(
        n.decode(b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n")
            .unwrap(),
        Some((Unit::Notice(_), _))
    ));
    let Some((Unit::Closing(pc), _)) = n.decode(b"-ERR 'Stale Connection'\r\n").unwrap() else {
        panic!("closing");
    };
    assert_eq!(
        (pc.then, pc.text),
        (AfterClose::Reconnect, &b"Stale Connection"[..])
    );
    assert!(
        matches!(n.decode(b"ping\r\n").unwrap(), Some((Unit::Control, 6))),
        "ops ignore case"
    );
    let mut out = Vec::new();
    n.write_control(&mut out);
    assert_eq!(out, b"PONG\r\n");
}

#[test]
fn messages_are_one_pub_and_credentials_never_show() {
    let n = Nats::new().with_user_password("app", "hunter2");
    assert!(!format!("{n:?}").contains("hunter2"));
    let mut c = n.clone();
    c.open(Open {
        nonce: 0,
        unconfirmed: false,
    })
    .unwrap();
    c.decode(b"INFO {}\r\n").unwrap();
    let mut out = Vec::new();
    c.write_control(&mut out);
    assert!(String::from_utf8_lossy(&out).contains(r#""user":"app","pass":"hunter2""#));
    assert!(n.check(&publish("a.b", b"x\r\ny").unwrap()).is_ok());
    let two = [publish("a", b"1").unwrap(), publish("b", b"2").unwrap()].concat();
    assert!(n.check(&two).is_err());
    assert!(n.check(b"PUB a 1\r\nxx\r\n").is_err(), "size lies");
    assert!(publish("a b", b"x").is_err());
    assert!(
        publish("a.*", b"x").is_err(),
        "no wildcards when publishing"
    );
    assert!(publish("", b"x").is_err());
    let h = publish_with_headers("a", &[("K", "v")], b"p").unwrap();
    assert_eq!(h, b"HPUB a 18 19\r\nNATS/1.0\r\nK: v\r\n\r\np\r\n");
    assert!(n.check(&h).is_ok());
    assert!(publish_with_headers("a", &[("K", "v\r\nX: y")], b"p").is_err());
    assert!(n
        .check_subscription(&subscription("a.*.>", Some("q")))
        .is_ok());
    assert!(n.check_subscription(b"a  b").is_err());
    assert!(Nats::new().request(1, "a", b"").is_err(), "no inbox");
}
