//! Arbitrary bytes as a server's side of an open WebSocket connection, through our frame
//! decoder and through tungstenite's (a differential oracle, `default-features = false`): the
//! same messages (text, binary, ping, pong, close code and reason) in the same order, and an
//! error where the other errs, except where tungstenite is laxer than RFC 6455 (each case
//! named below). Our decoder also runs split at a byte the first input byte picks, and must
//! give the same units as whole.
#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;
use redial_core::proto::ws::{accept_for_key, WebSocket, WsLimits};
use redial_core::proto::{Handshake, Match, Open, Protocol, Unit};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::Message;

const MAX: usize = 1 << 16;

/// A message as both sides see it.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Seen {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, Vec<u8>),
}

fn open() -> WebSocket {
    let mut ws = WebSocket::new("h", "/").with_limits(WsLimits {
        max_message: MAX,
        max_fragments: u32::MAX,
        max_header: 1024,
    });
    ws.open(Open {
        nonce: 1,
        unconfirmed: false,
    })
    .unwrap();
    let mut req = Vec::new();
    ws.write_control(&mut req);
    let req = String::from_utf8(req).unwrap();
    let key = req
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap()
        .to_owned();
    let accept = accept_for_key(key.as_bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        std::str::from_utf8(&accept).unwrap()
    );
    let r = ws.decode(answer.as_bytes()).unwrap().unwrap();
    assert!(matches!(r.0, Unit::Handshake(Handshake::Accepted { .. })));
    ws
}

/// Our decoder over `data`, given the first `split` bytes, then all: the messages, and
/// whether it stopped on an error (vs. needing more bytes).
fn ours(data: &[u8], split: usize) -> (Vec<Seen>, bool) {
    let mut ws = open();
    let mut seen = Vec::new();
    let mut used = 0;
    for end in [split.min(data.len()), data.len()] {
        loop {
            let before = ws.control_pending();
            let rest = &data[used..end];
            if rest.is_empty() {
                break;
            }
            match ws.decode(rest) {
                Ok(None) => {
                    assert!(rest.len() <= MAX + 14, "waits for at most one frame");
                    break;
                }
                Err(_) => return (seen, true),
                Ok(Some((u, n))) => {
                    assert!(n > 0 && n <= rest.len());
                    used += n;
                    let s = match u {
                        Unit::Message { body, meta, .. } if meta.topic == b"text" => {
                            Some(Seen::Text(body.to_vec()))
                        }
                        Unit::Message { body, .. } => Some(Seen::Binary(body.to_vec())),
                        Unit::Assembled { meta } => {
                            let body = ws.assembled().unwrap().clone();
                            Some(if meta.topic == b"text" {
                                Seen::Text(body)
                            } else {
                                Seen::Binary(body)
                            })
                        }
                        Unit::Reply {
                            to: Match::Heartbeat { .. },
                            body,
                            ..
                        } => Some(Seen::Pong(body.to_vec())),
                        Unit::Closing(pc) => Some(Seen::Close(pc.code, pc.text.to_vec())),
                        Unit::Control => {
                            // A ping (a Pong is owed) or a pong, or a fragment.
                            let frame = &rest[..n];
                            match frame[0] & 0x0f {
                                0x9 => {
                                    assert!(ws.control_pending() > before, "ping answered");
                                    Some(Seen::Ping(payload(frame)))
                                }
                                0xA => Some(Seen::Pong(payload(frame))),
                                _ => None,
                            }
                        }
                        other => panic!("unexpected {other:?}"),
                    };
                    if let Some(s) = s {
                        let close = matches!(s, Seen::Close(..));
                        seen.push(s);
                        if close {
                            // The session reads nothing after the peer's Close.
                            return (seen, false);
                        }
                    }
                }
            }
        }
    }
    (seen, false)
}

/// The payload of an unmasked frame whose header `parse_header` accepted.
fn payload(frame: &[u8]) -> Vec<u8> {
    let h = redial_core::proto::ws::frame::parse_header(frame)
        .unwrap()
        .unwrap();
    frame[h.header_len..].to_vec()
}

/// A stream that yields `data` then EOF, and swallows writes.
struct Wire<'a>(&'a [u8]);
impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}
impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tungstenite over `data`: the messages, and whether it stopped on a protocol error (vs.
/// the end of the bytes).
fn theirs(data: &[u8]) -> (Vec<Seen>, bool) {
    let mut cfg = WebSocketConfig::default();
    cfg.max_message_size = Some(MAX);
    cfg.max_frame_size = Some(MAX);
    let mut t = tungstenite::WebSocket::from_raw_socket(Wire(data), Role::Client, Some(cfg));
    let mut seen = Vec::new();
    loop {
        match t.read() {
            Ok(Message::Text(s)) => seen.push(Seen::Text(s.as_bytes().to_vec())),
            Ok(Message::Binary(b)) => seen.push(Seen::Binary(b.to_vec())),
            Ok(Message::Ping(p)) => seen.push(Seen::Ping(p.to_vec())),
            Ok(Message::Pong(p)) => seen.push(Seen::Pong(p.to_vec())),
            Ok(Message::Close(c)) => {
                let (code, reason) = c.map_or((1005, Vec::new()), |c| {
                    (u16::from(c.code), c.reason.as_bytes().to_vec())
                });
                seen.push(Seen::Close(code, reason));
                return (seen, false);
            }
            Ok(Message::Frame(_)) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return (seen, false)
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                return (seen, false)
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return (seen, false)
            }
            Err(_) => return (seen, true),
        }
    }
}

/// Whether our message and tungstenite's agree. Named difference 2: tungstenite refuses
/// close code 1014 (Bad Gateway, registered with IANA after RFC 6455) and answers 1002; we
/// take it (and reconnect).
fn same(ours: &[Seen], theirs: &[Seen]) -> bool {
    ours.len() == theirs.len()
        && ours.iter().zip(theirs).all(|(o, t)| {
            o == t
                || matches!((o, t), (Seen::Close(1014, _), Seen::Close(1002, r))
                    if r == b"Protocol violation")
        })
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else {
        return;
    };
    let (whole, err) = ours(data, data.len());
    let split = usize::from(pick) * data.len() / 255;
    assert_eq!(ours(data, split), (whole.clone(), err), "split at {split}");
    let (mut t, mut t_err) = theirs(data);
    // Named laxness 1: tungstenite reports a Close with a reserved or invalid code as the
    // Close 1002 it answers with, not as an error; we call it an error (and answer 1002).
    if err && t.len() == whole.len() + 1 && t.last() == Some(&Seen::Close(1002, b"Protocol violation".to_vec())) {
        t.pop();
        t_err = true;
    }
    let n = whole.len().min(t.len());
    assert!(same(&whole[..n], &t[..n]), "the same messages, in order: {whole:?} {t:?}");
    if err {
        // Where we refuse, tungstenite must refuse at the same point.
        assert!(t_err && t.len() == whole.len(), "ours: {whole:?} error; tungstenite: {t:?} {t_err}");
    } else if t_err {
        // And the reverse, as far as our bytes went (we may just need more of them).
        assert!(whole.len() <= t.len(), "ours: {whole:?}; tungstenite: {t:?} error");
    } else {
        assert!(same(&whole, &t), "ours: {whole:?}; tungstenite: {t:?}");
    }
});
