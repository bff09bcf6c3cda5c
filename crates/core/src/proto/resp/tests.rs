use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::*;

fn open(r: &mut Resp) -> Vec<u8> {
    r.open(Open {
        nonce: 0,
        unconfirmed: false,
    })
    .unwrap();
    let mut out = Vec::new();
    r.write_control(&mut out);
    out
}

/// Decodes every unit of `bytes`, feeding them split at `cut` (the first call sees only the
/// first `cut` bytes, as a read that stopped there would).
fn units(r: &mut Resp, bytes: &[u8], cut: usize) -> Vec<(Vec<u8>, usize)> {
    let mut got = Vec::new();
    let mut start = 0;
    let mut avail = cut.min(bytes.len());
    loop {
        match r.decode(&bytes[start..avail]).unwrap() {
            Some((unit, n)) => {
                let tag = match unit {
                    Unit::Reply {
                        to: Match::Next, ..
                    } => b"reply".to_vec(),
                    Unit::Message { body, .. } => [b"msg:", body].concat(),
                    other => format!("{other:?}").into_bytes(),
                };
                got.push((tag, n));
                start += n;
            }
            None if avail == bytes.len() => break,
            None => avail = bytes.len(),
        }
    }
    assert_eq!(start, bytes.len(), "everything used");
    got
}

/// Values whose bytes look like RESP's own keywords, or like other values.
fn hostile_replies() -> Vec<Vec<u8>> {
    let big = vec![b'x'; 1 << 20];
    vec![
        b"$5\r\n+PONG\r\n".to_vec(),
        b"$6\r\n-ERR x\r\n".to_vec(),
        b"$2\r\n$5\r\n".to_vec(),
        b"$4\r\na\r\nb\r\n".to_vec(),
        b"$3\r\n\x00\x00\x00\r\n".to_vec(),
        [&b"$1048576\r\n"[..], &big, b"\r\n"].concat(),
        b"*3\r\n$1\r\n1\r\n$4\r\nPING\r\n$-1\r\n".to_vec(),
        b"%2\r\n+f\r\n:1\r\n+PONG\r\n*0\r\n".to_vec(),
        b"|1\r\n+ttl\r\n:3\r\n$4\r\nPONG\r\n".to_vec(),
        b"*2\r\n*1\r\n*0\r\n~1\r\n#t\r\n".to_vec(),
        b"=9\r\ntxt:hello\r\n".to_vec(),
        b"+PONG\r\n".to_vec(),
        b"-ERR unknown command\r\n".to_vec(),
        b"_\r\n".to_vec(),
        b",3.14\r\n".to_vec(),
        b"(12345678901234567890\r\n".to_vec(),
        b"*-1\r\n".to_vec(),
    ]
}

#[test]
fn every_value_is_one_unit_whatever_its_bytes_and_wherever_the_read_stops() {
    let all: Vec<u8> = hostile_replies().concat();
    // RESP3 takes every type; RESP2 refuses those it does not have (a test below).
    let whole = units(&mut Resp::new().resp3(), &all, all.len());
    assert_eq!(whole.len(), hostile_replies().len());
    assert!(
        whole.iter().all(|(t, _)| t == b"reply"),
        "all in-order replies"
    );
    let lens: Vec<usize> = hostile_replies().iter().map(Vec::len).collect();
    assert_eq!(whole.iter().map(|u| u.1).collect::<Vec<_>>(), lens);
    // Split at every byte of the small ones (the 1 MiB one at a few places).
    for (i, v) in hostile_replies().iter().enumerate() {
        let cuts: Vec<usize> = if v.len() > 4096 {
            vec![1, 11, 12, 4096, v.len() - 2, v.len() - 1]
        } else {
            (0..=v.len()).collect()
        };
        for cut in cuts {
            let got = units(&mut Resp::new().resp3(), v, cut);
            assert_eq!(
                got,
                vec![(b"reply".to_vec(), v.len())],
                "value {i} cut at {cut}"
            );
        }
    }
}

#[test]
fn a_big_reply_in_small_reads_is_scanned_once() {
    // 20,000 elements, fed 7 bytes more at a time: the resumable scanner keeps its place.
    let mut v = b"*20000\r\n".to_vec();
    for i in 0..20_000u32 {
        let s = format!("{i}");
        v.extend_from_slice(format!("${}\r\n{s}\r\n", s.len()).as_bytes());
    }
    let mut r = Resp::new();
    let mut end = 0;
    let mut calls = 0;
    let found = loop {
        end = (end + 7).min(v.len());
        calls += 1;
        if let Some((_, n)) = r.decode(&v[..end]).unwrap() {
            break n;
        }
    };
    assert_eq!(found, v.len());
    assert!(calls > 10_000);
}

#[test]
fn a_resp2_connection_refuses_resp3_types_at_their_first_byte() {
    for bad in [
        &b"_"[..],
        b"#",
        b",",
        b"(",
        b"!",
        b"=",
        b"~",
        b">",
        b"%",
        b"|",
        b"*2\r\n:1\r\n%",
    ] {
        assert!(
            matches!(Resp::new().decode(bad), Err(FrameError::Malformed { .. })),
            "{:?}",
            core::str::from_utf8(bad)
        );
        assert!(matches!(Resp::new().resp3().decode(bad), Ok(None)));
    }
}

#[test]
fn hostile_lengths_and_shapes_are_typed_errors_before_the_body_arrives() {
    let lim = Limits {
        max_frame: 1 << 20,
        max_depth: 8,
        max_elements: 1000,
    };
    let err = |bytes: &[u8]| {
        Resp::new()
            .resp3()
            .with_limits(lim)
            .decode(bytes)
            .unwrap_err()
    };
    assert!(matches!(
        err(b"$4294967296\r\n"),
        FrameError::TooLarge { .. }
    ));
    assert!(matches!(err(b"$2000000\r\n"), FrameError::TooLarge { .. }));
    assert!(matches!(err(b"*2000\r\n"), FrameError::TooMany { .. }));
    assert!(matches!(err(b"%600\r\n"), FrameError::TooMany { .. }));
    assert!(matches!(
        err(&b"*1\r\n".repeat(9)),
        FrameError::TooDeep { max: 8 }
    ));
    for bad in [
        &b"$-2\r\n"[..],
        b"*-5\r\n",
        b"$abc\r\n",
        b"?x\r\n",
        b"$?\r\n",
        b"+OK\rX",
        b"+OK\nX\r\n",
        b"-ERR a\nb\r\n",
        b"x",
        b"#x\r\n",
        b":12a\r\n",
        b"$3\r\nabcXY",
        b"_x\r\n",
        b"=2\r\nab\r\n",
    ] {
        assert!(
            matches!(err(bad), FrameError::Malformed { .. }),
            "{:?}",
            core::str::from_utf8(bad)
        );
    }
    // A header that never ends is refused at its bound, not buffered.
    assert!(format!("{}", err(&[b'$'; 64])).contains("header"));
    // An endless simple string is refused at the frame bound.
    let mut long = b"+".to_vec();
    long.resize((1 << 20) + 10, b'a');
    assert!(matches!(err(&long), FrameError::TooLarge { .. }));
}

#[test]
fn pushes_are_messages_and_confirmations_name_their_channel() {
    let mut r = Resp::new().resp3();
    open(&mut r);
    let hello = b"%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n";
    assert!(matches!(
        r.decode(hello).unwrap(),
        Some((Unit::Handshake(Handshake::Accepted { .. }), _))
    ));
    let confirm = b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    // No subscription request at this position: the peer's own news, never a reply.
    assert!(matches!(
        r.decode(confirm).unwrap(),
        Some((
            Unit::Message {
                route: Route::None,
                ..
            },
            _
        ))
    ));
    let mut out = Vec::new();
    r.encode_subscribe(&channel("ch"), SubId::from_raw(1), &mut out)
        .unwrap();
    assert_eq!(out, cmd(["SUBSCRIBE", "ch"]));
    assert!(matches!(
        r.decode(confirm).unwrap(),
        Some((
            Unit::Reply {
                to: Match::Next,
                ..
            },
            _
        ))
    ));
    // A message whose payload is itself a confirmation-looking push.
    let payload = b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    let mut msg = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n".to_vec();
    msg.extend_from_slice(format!("${}\r\n", payload.len()).as_bytes());
    msg.extend_from_slice(payload);
    msg.extend_from_slice(b"\r\n");
    let Some((Unit::Message { route, body, meta }, n)) = r.decode(&msg).unwrap() else {
        panic!("a message");
    };
    assert_eq!(n, msg.len());
    assert_eq!(body, payload);
    assert_eq!(meta.topic, b"ch");
    assert!(r.route_matches(&route, SubId::from_raw(1), &channel("ch")));
    assert!(!r.route_matches(&route, SubId::from_raw(1), &pattern("ch")));
    let pmsg = b">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$1\r\nx\r\n";
    let Some((Unit::Message { route, meta, .. }, _)) = r.decode(pmsg).unwrap() else {
        panic!("a pattern message");
    };
    assert!(r.route_matches(&route, SubId::from_raw(2), &pattern("c*")));
    assert_eq!((meta.topic, meta.pattern), (&b"ch"[..], &b"c*"[..]));
    // Other pushes go to the inbound stream, never a reply.
    let inval = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";
    assert!(matches!(
        r.decode(inval).unwrap(),
        Some((
            Unit::Message {
                route: Route::None,
                ..
            },
            _
        ))
    ));
    // An ordinary array reply that looks like a message is a reply in RESP3.
    let arr = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n";
    assert!(matches!(
        r.decode(arr).unwrap(),
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
fn resp2_subscribed_mode_frames_messages_only_while_subscribed() {
    let mut r = Resp::new();
    open(&mut r);
    let arr = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n";
    assert!(
        matches!(r.decode(arr).unwrap(), Some((Unit::Reply { .. }, _))),
        "an LRANGE result is not a message"
    );
    // An LRANGE, then a SUBSCRIBE: the LRANGE's reply looks like a confirmation but sits at
    // the LRANGE's position, so it is the LRANGE's reply and changes no mode.
    let mut r = Resp::new();
    open(&mut r);
    let mut out = Vec::new();
    r.encode(
        &cmd(["LRANGE", "l", "0", "-1"]),
        Sending::default(),
        &mut out,
    )
    .unwrap();
    r.encode_subscribe(&channel("ch"), SubId::from_raw(1), &mut out)
        .unwrap();
    let confirm = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    assert!(matches!(
        r.decode(confirm).unwrap(),
        Some((
            Unit::Reply {
                to: Match::Next,
                ..
            },
            _
        ))
    ));
    assert!(
        matches!(r.decode(arr).unwrap(), Some((Unit::Reply { .. }, _))),
        "still not subscribed: that was the LRANGE's reply"
    );
    // Now the real confirmation, at the SUBSCRIBE's place.
    let mut r = Resp::new();
    open(&mut r);
    r.encode_subscribe(&channel("ch"), SubId::from_raw(1), &mut out)
        .unwrap();
    r.decode(confirm).unwrap();
    assert!(matches!(
        r.decode(arr).unwrap(),
        Some((Unit::Message { body: b"x", .. }, _))
    ));
    let pong = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n";
    r.encode_ping(1, &mut out);
    assert!(matches!(
        r.decode(pong).unwrap(),
        Some((
            Unit::Reply {
                to: Match::Next,
                ..
            },
            _
        ))
    ));
    let unsub = b"*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n";
    r.encode_unsubscribe(&channel("ch"), SubId::from_raw(1), &mut out)
        .unwrap();
    r.decode(unsub).unwrap();
    assert!(
        matches!(r.decode(arr).unwrap(), Some((Unit::Reply { .. }, _))),
        "no longer subscribed"
    );
}

#[test]
fn setup_runs_on_every_connection_and_refusals_are_classified() {
    let mut r = Resp::new()
        .with_auth(Some(b"app"), b"s3cret")
        .with_database(2)
        .with_client_name(b"svc");
    let out = open(&mut r);
    assert_eq!(
        out,
        [
            cmd(["AUTH", "app", "s3cret"]),
            cmd(["SELECT", "2"]),
            cmd(["CLIENT", "SETNAME", "svc"])
        ]
        .concat()
    );
    assert!(matches!(
        r.decode(b"+OK\r\n").unwrap(),
        Some((Unit::Handshake(Handshake::Progress), _))
    ));
    let wrong = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    let mut r2 = r.clone();
    open(&mut r2);
    let Some((Unit::Handshake(Handshake::Refused { error, text, .. }), _)) =
        r2.decode(wrong).unwrap()
    else {
        panic!("refused");
    };
    assert_eq!(error, NetError::PermissionDenied);
    assert!(text.starts_with(b"WRONGPASS"));
    let mut r3 = r.clone();
    open(&mut r3);
    let Some((Unit::Handshake(Handshake::Refused { error, .. }), _)) = r3
        .decode(b"-LOADING Redis is loading the dataset in memory\r\n")
        .unwrap()
    else {
        panic!("refused");
    };
    assert_eq!(error, NetError::Refused, "retried");
    // The same connection finishes its setup.
    r.decode(b"+OK\r\n").unwrap();
    assert!(matches!(
        r.decode(b"+OK\r\n").unwrap(),
        Some((Unit::Handshake(Handshake::Accepted { .. }), _))
    ));
    let hello = open(&mut Resp::new().resp3().with_auth(None, b"pw"));
    assert_eq!(hello, cmd(["HELLO", "3", "AUTH", "default", "pw"]));
    assert!(!Resp::new()
        .open(Open {
            nonce: 0,
            unconfirmed: false
        })
        .unwrap());
}

#[test]
fn the_password_is_never_shown() {
    let r = Resp::new()
        .with_auth(Some(b"app"), b"hunter2-secret")
        .with_setup(cmd(["CONFIG", "SET", "x", "hunter3"]), true);
    let shown = format!("{r:?} {r:#?}");
    assert!(!shown.contains("hunter"), "{shown}");
}

#[test]
fn a_message_is_exactly_one_command_that_keeps_the_framing() {
    assert!(check_command(&cmd(["GET", "a\r\nb"])).is_ok());
    assert!(check_command(b"GET a\r\n").is_err(), "inline");
    assert!(check_command(&[cmd(["GET", "a"]), cmd(["GET", "b"])].concat()).is_err());
    for c in ["SUBSCRIBE", "subscribe", "MONITOR", "hello", "RESET"] {
        assert!(check_command(&cmd([c, "x"])).is_err(), "{c}");
    }
    assert!(check_command(&cmd(["CLIENT", "REPLY", "OFF"])).is_err());
    assert!(check_command(&cmd(["CLIENT", "SETNAME", "x"])).is_ok());
    assert!(check_command(b"*0\r\n").is_err());
    assert!(check_command(b"*1\r\n:1\r\n").is_err());
}

/// Found by the `protocols` fuzz target: a bulk string whose CR LF is missing (or is other
/// bytes) was parsed, claiming more bytes than it was given.
#[test]
fn a_value_never_claims_bytes_it_was_not_given() {
    for bad in [
        &b"$5\r\n+(\r\r\n"[..],
        b"$2\r\nab",
        b"$2\r\nabXY",
        b"*1\r\n$1\r\nx\r",
        b"!3\r\nERRxx",
    ] {
        assert!(
            Value::parse(bad).is_err(),
            "{:?} parsed",
            alloc::string::String::from_utf8_lossy(bad)
        );
    }
    let (v, used) = Value::parse(b"$5\r\n+(\r\r\n\r\n").expect("a whole bulk");
    assert_eq!((v, used), (Value::Bulk(b"+(\r\r\n"), 11));
}
