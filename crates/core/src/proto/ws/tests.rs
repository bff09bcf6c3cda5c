//! The WebSocket grammar on its own: the handshake both ways, every frame type split at every
//! byte, hostile values, and the bounds. The session around it is tested in
//! `crates/core/tests/ws_session.rs`.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::frame::{apply_mask, parse_header, Opcode};
use super::*;

/// A decoded unit, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Got {
    Msg(Vec<u8>, Vec<u8>),
    Piece,
    Assembled(Vec<u8>, Vec<u8>),
    Pong(u64),
    Closing(u16, AfterClose, Vec<u8>),
    Accepted,
    Refused(NetError, Vec<u8>, Option<Duration>),
}

fn got(ws: &mut WebSocket, u: Unit<'_>) -> Got {
    match u {
        Unit::Message { body, meta, .. } => Got::Msg(meta.topic.to_vec(), body.to_vec()),
        Unit::Control => Got::Piece,
        Unit::Assembled { meta } => {
            let body = ws.assembled().unwrap().clone();
            Got::Assembled(meta.topic.to_vec(), body)
        }
        Unit::Reply {
            to: Match::Heartbeat { token: Some(t) },
            ..
        } => Got::Pong(t),
        Unit::Closing(pc) => Got::Closing(pc.code, pc.then, pc.text.to_vec()),
        Unit::Handshake(Handshake::Accepted { .. }) => Got::Accepted,
        Unit::Handshake(Handshake::Refused {
            error,
            text,
            retry_after,
        }) => Got::Refused(error, text.to_vec(), retry_after),
        other => panic!("unexpected {other:?}"),
    }
}

/// Decodes `bytes` as a session would when only the first `avail` bytes have arrived, then
/// the rest: the units, or the error.
fn decode_split(ws: &mut WebSocket, bytes: &[u8], avail: usize) -> Result<Vec<Got>, FrameError> {
    let mut out = Vec::new();
    let mut used = 0;
    for end in [avail, bytes.len()] {
        while used < end {
            match ws.decode(&bytes[used..end])? {
                Some((u, n)) => {
                    assert!(n > 0 && used + n <= end);
                    used += n;
                    let g = got(ws, u);
                    out.push(g);
                }
                None => break,
            }
        }
    }
    assert_eq!(used, bytes.len(), "everything decoded");
    Ok(out)
}

/// A fresh connection: the request written and the key it carries.
fn opened(mut ws: WebSocket, nonce: u64) -> (WebSocket, String, String) {
    assert!(ws
        .open(Open {
            nonce,
            unconfirmed: false
        })
        .unwrap());
    let mut req = Vec::new();
    ws.write_control(&mut req);
    let req = String::from_utf8(req).unwrap();
    let key = req
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap()
        .into();
    (ws, req, key)
}

fn accepted(key: &str, extra: &str) -> Vec<u8> {
    let accept = accept_for_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
        core::str::from_utf8(&accept).unwrap()
    )
    .into_bytes()
}

/// An unmasked server frame.
fn sf(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(&mut out, Opcode::Binary, payload, None);
    out[0] = b0;
    out
}

fn open_ws() -> WebSocket {
    let (mut ws, _, key) = opened(WebSocket::new("h:1", "/p"), 7);
    let r = decode_split(&mut ws, &accepted(&key, ""), 0).unwrap();
    assert_eq!(r, [Got::Accepted]);
    ws
}

/// Unmasks one client frame: its opcode and payload.
fn client_frame(bytes: &[u8]) -> (Opcode, Vec<u8>, [u8; 4], usize) {
    let h = parse_header(bytes).unwrap().unwrap();
    let mask = h.mask.expect("client frames are masked");
    let end = h.header_len + h.len as usize;
    let mut p = bytes[h.header_len..end].to_vec();
    apply_mask(&mut p, mask, 0);
    (h.opcode, p, mask, end)
}

use alloc::format;

#[test]
fn the_upgrade_request_is_deterministic_under_the_nonce() {
    let ws = WebSocket::new("example.com:80", "/chat?x=1")
        .with_subprotocol("a")
        .with_subprotocol("b")
        .with_header("Authorization", "Bearer t0k3n");
    let (_, req, key) = opened(ws.clone(), 42);
    assert!(req.starts_with("GET /chat?x=1 HTTP/1.1\r\nHost: example.com:80\r\n"));
    assert!(req.contains("Upgrade: websocket\r\nConnection: Upgrade\r\n"));
    assert!(req.contains("Sec-WebSocket-Version: 13\r\n"));
    assert!(req.contains("Sec-WebSocket-Protocol: a, b\r\n"));
    assert!(req.contains("Authorization: Bearer t0k3n\r\n"));
    assert!(req.ends_with("\r\n\r\n"));
    assert_eq!(key.len(), 24);
    let (_, _, again) = opened(ws.clone(), 42);
    assert_eq!(key, again, "same nonce, same key");
    let (_, _, other) = opened(ws, 43);
    assert_ne!(key, other, "a fresh key per connection");
}

#[test]
fn a_valid_101_is_accepted_at_every_split_with_frames_behind_it() {
    let (ws0, _, key) = opened(WebSocket::new("h", "/"), 1);
    let mut bytes = accepted(&key, "X-Other: 1\r\n");
    bytes.extend(sf(0x81, b"hello"));
    for split in 0..=bytes.len() {
        let mut ws = ws0.clone();
        let r = decode_split(&mut ws, &bytes, split).unwrap();
        assert_eq!(
            r,
            [Got::Accepted, Got::Msg(TEXT.to_vec(), b"hello".to_vec())],
            "split at {split}"
        );
    }
}

#[test]
fn upgrade_answers_are_classified() {
    let (ws0, _, key) = opened(WebSocket::new("h", "/").with_subprotocol("chat"), 1);
    let cases: Vec<(Vec<u8>, NetError, Option<u64>)> = vec![
        (
            b"HTTP/1.1 401 Unauthorized\r\n\r\n".to_vec(),
            NetError::PermissionDenied,
            None,
        ),
        (
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\n".to_vec(),
            NetError::PermissionDenied,
            None,
        ),
        (
            b"HTTP/1.1 404 Not Found\r\n\r\n".to_vec(),
            NetError::InvalidAddress,
            None,
        ),
        (
            b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
            NetError::Unsupported,
            None,
        ),
        (
            b"HTTP/1.1 426 Upgrade Required\r\n\r\n".to_vec(),
            NetError::Unsupported,
            None,
        ),
        (
            b"HTTP/1.1 302 Found\r\nLocation: ws://elsewhere/\r\n\r\n".to_vec(),
            NetError::Unsupported,
            None,
        ),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n\r\n".to_vec(),
            NetError::Refused,
            Some(7),
        ),
        (
            b"HTTP/1.1 429 Too Many\r\nretry-after: 99999999\r\n\r\n".to_vec(),
            NetError::Refused,
            Some(3600),
        ),
        (
            b"HTTP/1.1 502 Bad Gateway\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n"
                .to_vec(),
            NetError::Refused,
            None,
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
            NetError::Protocol,
            None,
        ),
        (accepted("not-our-key", ""), NetError::Unsupported, None),
        (
            accepted(&key, "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            NetError::Unsupported,
            None,
        ),
        (
            accepted(&key, "Sec-WebSocket-Protocol: other\r\n"),
            NetError::Unsupported,
            None,
        ),
        (
            accepted(&key, "Sec-WebSocket-Accept: twice\r\n"),
            NetError::Unsupported,
            None,
        ),
    ];
    for (bytes, error, retry) in cases {
        let mut ws = ws0.clone();
        let r = decode_split(&mut ws, &bytes, 0).unwrap();
        match &r[..] {
            [Got::Refused(e, _, after)] => {
                assert_eq!(*e, error, "{}", String::from_utf8_lossy(&bytes));
                assert_eq!(*after, retry.map(Duration::from_secs));
            }
            other => panic!("{other:?} for {}", String::from_utf8_lossy(&bytes)),
        }
    }
    let mut ws = ws0.clone();
    let ok = accepted(&key, "Sec-WebSocket-Protocol: chat\r\n");
    assert_eq!(decode_split(&mut ws, &ok, 0).unwrap(), [Got::Accepted]);
    // The status line is named in the refusal.
    let mut ws = ws0.clone();
    let r = decode_split(&mut ws, b"HTTP/1.1 401 Unauthorized\r\n\r\n", 0).unwrap();
    assert_eq!(
        r,
        [Got::Refused(
            NetError::PermissionDenied,
            b"HTTP/1.1 401 Unauthorized".to_vec(),
            None
        )]
    );
}

#[test]
fn bad_and_huge_answers_are_typed_errors() {
    let (ws0, _, _) = opened(WebSocket::new("h", "/"), 1);
    for bad in [
        &b"HTTP/1.0 101 Switching\r\n\r\n"[..],
        b"HTTP/1.1 1O1 x\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 101 x\r\nno colon\r\n\r\n",
        b"HTTP/1.1 101 x\r\nA: 1\r\n folded\r\n\r\n",
        b"HTTP/1.1 101 x\r\nBad Name: 1\r\n\r\n",
    ] {
        let mut ws = ws0.clone();
        assert!(
            matches!(ws.decode(bad), Err(FrameError::Malformed { .. })),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // A head that never ends is refused at the bound, however it arrives.
    let mut ws = ws0.clone();
    let mut huge = b"HTTP/1.1 101 x\r\n".to_vec();
    huge.extend(core::iter::repeat_n(b'a', 20 << 10));
    let mut err = None;
    for end in (1..=huge.len()).step_by(997) {
        match ws.decode(&huge[..end]) {
            Ok(None) => {}
            Err(e) => {
                err = Some((end, e));
                break;
            }
            Ok(Some(_)) => panic!("no head here"),
        }
    }
    let (end, e) = err.expect("bounded");
    assert!(end <= (16 << 10) + 997, "found at {end}");
    assert!(matches!(e, FrameError::TooLarge { max, .. } if max == 16 << 10));
    // Too many header lines.
    let mut ws = ws0.clone();
    let mut many = b"HTTP/1.1 101 x\r\n".to_vec();
    for _ in 0..200 {
        many.extend(b"A: b\r\n");
    }
    many.extend(b"\r\n");
    assert!(matches!(ws.decode(&many), Err(FrameError::TooMany { .. })));
}

/// Every frame type, with payloads that look like frames, HTTP, pings, CR LF and NUL.
fn hostile_stream() -> (Vec<u8>, Vec<Got>) {
    let ping_bytes = {
        let mut v = Vec::new();
        frame::encode(&mut v, Opcode::Ping, b"x", None);
        v
    };
    let http = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    bytes.extend(sf(0x81, &http));
    want.push(Got::Msg(TEXT.to_vec(), http.clone()));
    bytes.extend(sf(0x82, &ping_bytes));
    want.push(Got::Msg(BINARY.to_vec(), ping_bytes.clone()));
    bytes.extend(sf(0x82, b"\x88\x02\x03\xe8\r\n\0"));
    want.push(Got::Msg(
        BINARY.to_vec(),
        b"\x88\x02\x03\xe8\r\n\0".to_vec(),
    ));
    bytes.extend(sf(0x81, b""));
    want.push(Got::Msg(TEXT.to_vec(), Vec::new()));
    // A fragmented text message with a Ping and an unsolicited Pong between its fragments,
    // a character split across fragments.
    bytes.extend(sf(0x01, "héllo \u{e9}".as_bytes().split_last().unwrap().1));
    want.push(Got::Piece);
    bytes.extend(sf(0x89, b"PONG"));
    want.push(Got::Piece);
    bytes.extend(sf(0x8A, b"unsolicited"));
    want.push(Got::Piece);
    bytes.extend(sf(0x00, b""));
    want.push(Got::Piece);
    bytes.extend(sf(0x80, &"\u{e9}".as_bytes()[1..]));
    want.push(Got::Assembled(
        TEXT.to_vec(),
        "héllo \u{e9}".as_bytes().to_vec(),
    ));
    // A big binary message (16-bit length), then one with a 64-bit length.
    let big = vec![0x81u8; 70_000];
    bytes.extend(sf(0x82, &big[..300]));
    want.push(Got::Msg(BINARY.to_vec(), big[..300].to_vec()));
    bytes.extend(sf(0x82, &big));
    want.push(Got::Msg(BINARY.to_vec(), big.clone()));
    // Closing last: 1012 with a reason.
    bytes.extend(sf(0x88, b"\x03\xf4restart"));
    want.push(Got::Closing(
        1012,
        AfterClose::ReconnectAfter(Duration::from_secs(2)),
        b"restart".to_vec(),
    ));
    (bytes, want)
}

#[test]
fn every_frame_type_split_at_every_byte() {
    let (bytes, want) = hostile_stream();
    let ws0 = open_ws();
    // Every split near the frames' edges, and a stride through the big ones.
    let splits: Vec<usize> = (0..=600).chain((600..bytes.len()).step_by(331)).collect();
    for split in splits {
        let mut ws = ws0.clone();
        let r = decode_split(&mut ws, &bytes, split).unwrap();
        assert_eq!(r, want, "split at {split}");
    }
    // The Ping was answered with its payload, masked; the Close echoed with its code.
    let mut ws = ws0.clone();
    decode_split(&mut ws, &bytes, bytes.len()).unwrap();
    assert!(ws.farewell_owed());
    let mut control = Vec::new();
    ws.write_control(&mut control);
    assert!(!ws.farewell_owed());
    let (op, payload, _, n) = client_frame(&control);
    assert_eq!((op, &payload[..]), (Opcode::Pong, &b"PONG"[..]));
    let (op, payload, _, m) = client_frame(&control[n..]);
    assert_eq!((op, &payload[..]), (Opcode::Close, &b"\x03\xf4"[..]));
    assert_eq!(n + m, control.len());
}

#[test]
fn only_a_pong_echoing_our_counter_answers_the_heartbeat() {
    let mut ws = open_ws();
    let mut out = Vec::new();
    assert_eq!(ws.encode_ping(5, &mut out), Some(Expect::Heartbeat));
    assert_eq!(ws.encode_ping(6, &mut out), Some(Expect::Heartbeat));
    let (op, p, m1, n) = client_frame(&out);
    assert_eq!((op, &p[..]), (Opcode::Ping, &5u64.to_be_bytes()[..]));
    let (_, p2, m2, _) = client_frame(&out[n..]);
    assert_eq!(&p2[..], &6u64.to_be_bytes()[..]);
    assert_ne!(m1, m2, "a fresh mask every frame");
    let mut bytes = sf(0x8A, &6u64.to_be_bytes());
    bytes.extend(sf(0x8A, &7u64.to_be_bytes())); // never sent
    bytes.extend(sf(0x8A, &4u64.to_be_bytes())); // before this connection's first
    bytes.extend(sf(0x8A, b"PONG")); // not a counter
    bytes.extend(sf(0x8A, b""));
    let r = decode_split(&mut ws, &bytes, 0).unwrap();
    assert_eq!(
        r,
        [Got::Pong(6), Got::Piece, Got::Piece, Got::Piece, Got::Piece]
    );
}

#[test]
fn messages_are_masked_with_a_fresh_key_and_round_trip() {
    let mut ws = open_ws();
    let mut out = Vec::new();
    let msgs: [&[u8]; 3] = [b"a", b"\x81\x05hello looks like a frame", &[b'x'; 70_000]];
    for m in msgs {
        assert_eq!(
            ws.encode(m, Sending::default(), &mut out),
            Ok(Expect::Barrier)
        );
    }
    let mut at = 0;
    let mut masks = Vec::new();
    for m in msgs {
        let (op, p, mask, n) = client_frame(&out[at..]);
        assert_eq!(op, Opcode::Text);
        assert_eq!(&p[..], m);
        masks.push(mask);
        at += n;
    }
    assert_eq!(at, out.len());
    assert!(masks[0] != masks[1] && masks[1] != masks[2]);
    assert!(ws.check(b"\xff").is_err(), "text must be UTF-8");
    assert!(ws.clone().binary().check(b"\xff").is_ok());
}

/// Decodes `bytes` on an open connection: the error, and the Close code queued for it.
fn violation(ws: &mut WebSocket, bytes: &[u8]) -> (FrameError, u16) {
    let mut used = 0;
    let e = loop {
        match ws.decode(&bytes[used..]) {
            Ok(Some((_, n))) => used += n,
            Ok(None) => panic!("incomplete: {bytes:x?}"),
            Err(e) => break e,
        }
    };
    assert!(ws.farewell_owed(), "a Close names the violation");
    let mut c = Vec::new();
    ws.write_control(&mut c);
    // Skip answers to pings before the Close.
    let mut at = 0;
    loop {
        let (op, p, _, n) = client_frame(&c[at..]);
        if op == Opcode::Close {
            break (e, u16::from_be_bytes([p[0], p[1]]));
        }
        at += n;
    }
}

#[test]
fn protocol_violations_are_typed_and_named_in_our_close() {
    let ws0 = open_ws();
    let masked = {
        let mut v = Vec::new();
        frame::encode(&mut v, Opcode::Text, b"hi", Some([1, 2, 3, 4]));
        v
    };
    let mut frag_then_text = sf(0x01, b"a");
    frag_then_text.extend(sf(0x81, b"b"));
    let mut frag_bad_utf8 = sf(0x01, b"ok");
    frag_bad_utf8.extend(sf(0x00, b"\xc3\x28"));
    let mut incomplete_utf8 = sf(0x01, b"\xe2\x82");
    incomplete_utf8.extend(sf(0x80, b""));
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (masked, 1002),
        (sf(0xC1, b"rsv1"), 1002),
        (sf(0xA1, b"rsv2"), 1002),
        (sf(0x83, b"reserved opcode"), 1002),
        (sf(0x8B, b""), 1002),
        (sf(0x09, b"fragmented ping"), 1002),
        (sf(0x89, &[0u8; 126]), 1002),
        (sf(0x80, b"continuation of nothing"), 1002),
        (frag_then_text, 1002),
        (sf(0x81, b"\xff\xfe"), 1007),
        (frag_bad_utf8, 1007),
        (incomplete_utf8, 1007),
        (sf(0x88, b"\x03"), 1002),
        (sf(0x88, b"\x03\xed"), 1002), // 1005 may not be sent
        (sf(0x88, b"\x03\xee"), 1002), // nor 1006
        (sf(0x88, b"\x0b\xb7"), 1002), // 2999: unassigned
        (sf(0x88, b"\x03\xe8\xff"), 1007),
    ];
    for (bytes, code) in cases {
        let mut ws = ws0.clone();
        let (_, sent) = violation(&mut ws, &bytes);
        assert_eq!(sent, code, "{bytes:x?}");
    }
}

#[test]
fn lengths_are_bounded_before_the_body_arrives() {
    let limits = WsLimits {
        max_message: 1000,
        max_fragments: 3,
        max_header: 1024,
    };
    let ws0 = {
        let (mut ws, _, key) = opened(WebSocket::new("h", "/").with_limits(limits), 3);
        decode_split(&mut ws, &accepted(&key, ""), 0).unwrap();
        ws
    };
    // A lying 2^62-byte length: refused from its header alone.
    let mut ws = ws0.clone();
    let hdr = [0x82, 127, 0x40, 0, 0, 0, 0, 0, 0, 0];
    assert!(matches!(
        ws.decode(&hdr),
        Err(FrameError::TooLarge { max: 1000, .. })
    ));
    let mut ws = ws0.clone();
    let (e, code) = violation(&mut ws, &sf(0x82, &[0; 1001]));
    assert!(matches!(e, FrameError::TooLarge { .. }));
    assert_eq!(code, 1009);
    // Fragments: their sum, and their count.
    let mut sum = sf(0x02, &[0; 600]);
    sum.extend(sf(0x80, &[0; 401]));
    let mut ws = ws0.clone();
    assert_eq!(violation(&mut ws, &sum).1, 1009);
    let mut count = Vec::new();
    for _ in 0..4 {
        count.extend(sf(0x00, b""));
    }
    count[0] = 0x02;
    let mut ws = ws0.clone();
    let (e, code) = violation(&mut ws, &count);
    assert!(matches!(e, FrameError::TooMany { max: 3, .. }));
    assert_eq!(code, 1009);
    // At the bounds exactly: fine.
    let mut ok = sf(0x02, &[1; 500]);
    ok.extend(sf(0x00, &[2; 250]));
    ok.extend(sf(0x80, &[3; 250]));
    let mut ws = ws0.clone();
    let r = decode_split(&mut ws, &ok, 0).unwrap();
    assert!(matches!(&r[2], Got::Assembled(_, b) if b.len() == 1000));
}

#[test]
fn close_codes_are_classified() {
    let d = Duration::from_secs(2);
    let c = |code| classify_close(code, false, d);
    assert_eq!(c(1000), AfterClose::Done);
    assert_eq!(c(1005), AfterClose::Done);
    assert_eq!(classify_close(1000, true, d), AfterClose::Reconnect);
    for code in [1001, 1009, 1011, 1014, 3000, 4999] {
        assert_eq!(c(code), AfterClose::Reconnect, "{code}");
    }
    assert_eq!(c(1012), AfterClose::ReconnectAfter(d));
    assert_eq!(c(1013), AfterClose::ReconnectAfter(d));
    for code in [1002, 1003, 1007] {
        assert_eq!(c(code), AfterClose::GiveUp(NetError::Unsupported), "{code}");
    }
    assert_eq!(c(1008), AfterClose::GiveUp(NetError::PermissionDenied));
    // An empty Close is echoed empty.
    let mut ws = open_ws();
    let r = decode_split(&mut ws, &sf(0x88, b""), 0).unwrap();
    assert_eq!(r, [Got::Closing(1005, AfterClose::Done, Vec::new())]);
    let mut c = Vec::new();
    ws.write_control(&mut c);
    assert_eq!(client_frame(&c).1, b"");
}

#[test]
fn after_our_goodbye_the_servers_close_is_not_echoed() {
    let mut ws = open_ws();
    let mut out = Vec::new();
    assert!(ws.encode_goodbye(&mut out));
    let (op, p, _, _) = client_frame(&out);
    assert_eq!((op, &p[..]), (Opcode::Close, &1000u16.to_be_bytes()[..]));
    decode_split(&mut ws, &sf(0x88, b"\x03\xe8"), 0).unwrap();
    assert!(!ws.farewell_owed());
    assert_eq!(ws.control_pending(), 0);
    assert!(!ws.encode_goodbye(&mut out), "once");
}

#[test]
fn settings_are_validated_and_credentials_never_shown() {
    let ok = WebSocket::new("h:1", "/")
        .with_header("Authorization", "Basic c2VjcmV0")
        .with_header("Cookie", "session=hunter2");
    assert_eq!(ok.validate(), Ok(()));
    let shown = format!("{ok:?}");
    assert!(shown.contains("Authorization") && shown.contains("Cookie"));
    assert!(
        !shown.contains("c2VjcmV0") && !shown.contains("hunter2"),
        "{shown}"
    );
    for bad in [
        WebSocket::new("", "/"),
        WebSocket::new("h", "no-slash"),
        WebSocket::new("h", "/a b"),
        WebSocket::new("h", "/").with_header("X-A", "1\r\nHost: evil"),
        WebSocket::new("h", "/").with_header("Bad Name", "1"),
        WebSocket::new("h", "/").with_header("sec-websocket-key", "mine"),
        WebSocket::new("h", "/").with_subprotocol("a b"),
        WebSocket::new("h", "/")
            .with_subprotocol("a")
            .with_subprotocol("a"),
        WebSocket::new("h", "/").with_limits(WsLimits {
            max_message: 0,
            ..WsLimits::default()
        }),
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}
