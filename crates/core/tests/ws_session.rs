//! WebSocket through a whole session, against a scripted server that reads our frames by the
//! grammar (unmasking them) and answers as RFC 6455 says: what confirms a message (the Pong
//! of a later Ping), what a server's Close does to what was written and what was not, the
//! Close echoed before the socket closes (within its deadline), peer Pings answered ahead of
//! queued data, and the upgrade answers that retry or give up.

use std::net::SocketAddr;
use std::time::Duration;

use redial_core::proto::ws::frame::{self, apply_mask, parse_header, Opcode};
use redial_core::proto::ws::{accept_for_key, WebSocket};
use redial_core::*;

const SECRET: &str = "Bearer hunter2-secret";

fn addr() -> [Addr; 1] {
    [Addr::from(SocketAddr::from(([127, 0, 0, 1], 9001)))]
}

/// A frame as the server reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Got(Opcode, Vec<u8>);

struct Host {
    s: Session<WebSocket>,
    now: Instant,
    epoch: Epoch,
    notes: Vec<Notification>,
    received: Vec<(Vec<u8>, Vec<u8>)>,
    /// What we wrote on the current connection, not yet read by the server.
    wire: Vec<u8>,
    /// The request line and headers of the current connection's Upgrade.
    request: String,
    /// Writes are reported complete at once unless the server stops reading.
    stalled: bool,
    /// A transmit written into `wire` but not yet reported.
    unreported: bool,
    closes: Vec<(Epoch, DisconnectReason, Instant)>,
    dials: Vec<Instant>,
    /// How the next dials' upgrades are answered (None: 101).
    answers: Vec<Option<&'static str>>,
}

impl Host {
    fn new(cfg: Config, ws: WebSocket) -> Host {
        let s = Session::new(cfg, ws, Instant::ZERO).expect("valid");
        Host {
            s,
            now: Instant::ZERO,
            epoch: Epoch::NONE,
            notes: Vec::new(),
            received: Vec::new(),
            wire: Vec::new(),
            request: String::new(),
            stalled: false,
            unreported: false,
            closes: Vec::new(),
            dials: Vec::new(),
            answers: Vec::new(),
        }
    }

    fn ws() -> WebSocket {
        WebSocket::new("127.0.0.1:9001", "/echo").with_header("Authorization", SECRET)
    }

    fn cfg() -> Config {
        Config::default().with_heartbeat(Some(Heartbeat {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            adaptive_floor: None,
        }))
    }

    /// Drains the actions of this round; returns the wait.
    fn round(&mut self) -> Option<Instant> {
        loop {
            match self.s.poll(self.now) {
                Action::Resolve { epoch } => {
                    let a = addr();
                    let _ = self
                        .s
                        .handle_input(self.now, Input::Resolved { epoch, addrs: &a });
                }
                Action::Dial { epoch, .. } => {
                    self.dials.push(self.now);
                    self.epoch = epoch;
                    self.wire.clear();
                    self.request.clear();
                    let _ = self.s.handle_input(self.now, Input::DialOk { epoch });
                }
                Action::Transmit { epoch } => {
                    self.s.encode_transmit(&mut self.wire);
                    if self.stalled {
                        self.unreported = true;
                    } else {
                        let _ = self.s.handle_input(self.now, Input::Written { epoch });
                    }
                }
                Action::Close { epoch, reason } => {
                    self.closes.push((epoch, reason, self.now));
                    let _ = self.s.handle_input(self.now, Input::Closed { epoch });
                }
                Action::Notify(n) => self.notes.push(n),
                Action::Wait { until } => return until,
                _ => {}
            }
        }
    }

    /// Runs rounds, jumping to deadlines, until `until` (virtual time).
    fn run_until(&mut self, until: Instant) {
        // A session that keeps waking at a past deadline would loop here forever: fail instead.
        for _ in 0..100_000 {
            let mut wait = self.round();
            if self.answer_upgrade() {
                // The answer changed the deadlines.
                wait = self.round();
            }
            match wait {
                Some(t) if t <= until => self.now = self.now.max(t),
                _ => {
                    self.now = until;
                    self.round();
                    return;
                }
            }
        }
        panic!(
            "the session livelocked at {:?}: {:#?}",
            self.now, self.notes
        );
    }

    fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// If the Upgrade request is on the wire, answer it.
    fn answer_upgrade(&mut self) -> bool {
        if !self.request.is_empty() {
            return false;
        }
        let Some(end) = self.wire.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        self.request = String::from_utf8(self.wire[..end + 4].to_vec()).unwrap();
        self.wire.drain(..end + 4);
        let key = self
            .request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_owned();
        let answer = if self.answers.is_empty() {
            None
        } else {
            self.answers.remove(0)
        };
        let bytes = match answer {
            Some(a) => a.as_bytes().to_vec(),
            None => format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                std::str::from_utf8(&accept_for_key(key.as_bytes())).unwrap()
            )
            .into_bytes(),
        };
        self.peer(&bytes);
        true
    }

    fn connect(&mut self) {
        self.run_for(Duration::from_millis(1));
        assert_eq!(self.s.state(), State::Connected, "{:?}", self.notes);
    }

    /// The server sends bytes.
    fn peer(&mut self, bytes: &[u8]) {
        let epoch = self.epoch;
        let (received, _) = (&mut self.received, ());
        let mut taken = (0, 0);
        let used = self
            .s
            .handle_read(self.now, epoch, bytes, bytes.len(), &mut |r| {
                if let Received::Message { body, meta, .. } = r {
                    taken.0 += 1;
                    taken.1 += body.len();
                    received.push((meta.topic.to_vec(), body.to_vec()));
                }
            });
        assert_eq!(used, bytes.len(), "whole frames only in these tests");
        self.s.inbound_taken(self.now, taken.0, taken.1);
    }

    fn server_frame(&mut self, b0: u8, payload: &[u8]) {
        let mut out = Vec::new();
        frame::encode(&mut out, Opcode::Binary, payload, None);
        out[0] = b0;
        self.peer(&out);
    }

    /// The frames the server reads from what we wrote.
    fn frames(&mut self) -> Vec<Got> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Ok(Some(h)) = parse_header(&self.wire[at..]) {
            let mask = h.mask.expect("client frames are masked");
            let end = at + h.header_len + h.len as usize;
            let mut p = self.wire[at + h.header_len..end].to_vec();
            apply_mask(&mut p, mask, 0);
            out.push(Got(h.opcode, p));
            at = end;
        }
        self.wire.drain(..at);
        out
    }

    fn report_written(&mut self) {
        if std::mem::take(&mut self.unreported) {
            let _ = self
                .s
                .handle_input(self.now, Input::Written { epoch: self.epoch });
        }
    }

    fn outcome(&self, id: MsgId) -> Option<Outcome> {
        self.notes.iter().find_map(|n| match n {
            Notification::Outcome { id: i, outcome, .. } if *i == id => Some(*outcome),
            _ => None,
        })
    }

    fn send(&mut self, m: &str) -> MsgId {
        self.s
            .enqueue(self.now, m.as_bytes().to_vec(), Delivery::AtMostOnce)
            .expect("queued")
    }
}

fn text(m: &str) -> Got {
    Got(Opcode::Text, m.as_bytes().to_vec())
}

fn ping_token(g: &Got) -> Option<u64> {
    (g.0 == Opcode::Ping).then(|| u64::from_be_bytes(g.1[..].try_into().unwrap()))
}

#[test]
fn a_message_is_delivered_only_when_the_pong_of_a_later_ping_proves_it_read() {
    let mut h = Host::new(Host::cfg(), Host::ws());
    h.connect();
    assert!(h.request.contains(&format!("Authorization: {SECRET}")));
    let a = h.send("a");
    let b = h.send("\u{81}\u{5}looks like a frame");
    h.run_for(Duration::from_millis(1));
    let f = h.frames();
    assert_eq!(f[..2], [text("a"), text("\u{81}\u{5}looks like a frame")]);
    let token = ping_token(&f[2]).expect("a Ping follows the messages");
    assert_eq!(f.len(), 3);
    assert_eq!(h.outcome(a), None, "written is not delivered");
    // An unsolicited Pong, and one with another counter, confirm nothing.
    h.server_frame(0x8A, b"unsolicited");
    h.server_frame(0x8A, &(token + 1).to_be_bytes());
    h.run_for(Duration::from_millis(1));
    assert_eq!(h.outcome(a), None);
    h.server_frame(0x8A, &token.to_be_bytes());
    h.run_for(Duration::from_millis(1));
    assert_eq!(h.outcome(a), Some(Outcome::Delivered));
    assert_eq!(h.outcome(b), Some(Outcome::Delivered));
    assert!(h
        .notes
        .iter()
        .any(|n| matches!(n, Notification::Rtt { .. })));
}

#[test]
fn a_peer_ping_is_answered_ahead_of_queued_data_while_the_user_only_sends() {
    let mut h = Host::new(Host::cfg(), Host::ws());
    h.connect();
    h.stalled = true;
    h.send("first");
    h.run_for(Duration::from_millis(1));
    assert!(h.unreported, "a write in progress");
    for i in 0..5 {
        h.send(&format!("queued {i}"));
    }
    h.server_frame(0x89, b"are you there");
    h.run_for(Duration::from_millis(1));
    h.frames();
    h.stalled = false;
    h.report_written();
    h.run_for(Duration::from_millis(1));
    let f = h.frames();
    assert_eq!(f[0], Got(Opcode::Pong, b"are you there".to_vec()), "{f:?}");
    assert_eq!(f[1], text("queued 0"));
}

#[test]
fn close_1012_mid_stream_settles_what_was_written_and_holds_what_was_not() {
    let mut h = Host::new(Host::cfg(), Host::ws());
    h.connect();
    let m1 = h.send("m1");
    h.run_for(Duration::from_millis(1));
    let t = ping_token(&h.frames()[1]).unwrap();
    h.server_frame(0x8A, &t.to_be_bytes());
    h.run_for(Duration::from_millis(1));
    assert_eq!(h.outcome(m1), Some(Outcome::Delivered));
    h.stalled = true;
    let m2 = h.send("m2");
    h.run_for(Duration::from_millis(1));
    let m3 = h.send("m3");
    let closed_at = h.now;
    // The server's Close arrives while m2 is being written: m2 was written after it.
    h.server_frame(0x88, b"\x03\xf4service restart");
    h.run_for(Duration::from_millis(1));
    assert!(h.closes.is_empty(), "our Close goes out first");
    h.stalled = false;
    h.report_written();
    h.run_for(Duration::from_millis(1));
    let f = h.frames();
    assert_eq!(f[..2], [text("m2"), Got(Opcode::Ping, f[1].1.clone())]);
    assert_eq!(
        f[2],
        Got(Opcode::Close, b"\x03\xf4".to_vec()),
        "echoed: nothing after it"
    );
    assert_eq!(f.len(), 3, "m3 never written: {f:?}");
    assert_eq!(h.closes.len(), 1);
    assert_eq!(h.outcome(m2), Some(Outcome::InDoubt));
    assert_eq!(h.outcome(m3), None, "held for the next connection");
    assert!(h.notes.iter().any(|n| matches!(
        n,
        Notification::Disconnected {
            reason: DisconnectReason::PeerClosed { code: 1012 },
            ..
        }
    )));
    assert!(h.notes.iter().any(|n| matches!(n,
        Notification::PeerSaid { text, .. } if text == b"service restart")));
    // Reconnects no sooner than the restart delay, and writes m3 there, once.
    h.run_for(Duration::from_secs(3));
    assert_eq!(h.dials.len(), 2);
    assert!(
        h.dials[1] >= closed_at + Duration::from_secs(2),
        "{:?}",
        h.dials
    );
    let f = h.frames();
    assert_eq!(f[0], text("m3"));
    let t = ping_token(&f[1]).unwrap();
    h.server_frame(0x8A, &t.to_be_bytes());
    h.run_for(Duration::from_millis(1));
    assert_eq!(h.outcome(m3), Some(Outcome::Delivered));
}

#[test]
fn a_server_that_closes_and_stops_reading_cannot_hang_the_session() {
    let cfg = Host::cfg().with_close_timeout(Duration::from_millis(800));
    let mut h = Host::new(cfg, Host::ws());
    h.connect();
    h.stalled = true;
    h.send(&"x".repeat(100_000));
    h.run_for(Duration::from_millis(1));
    let at = h.now;
    h.server_frame(0x88, b"\x03\xe9going away");
    // Our write never completes: the close deadline ends it.
    h.run_for(Duration::from_secs(2));
    let (_, reason, when) = h.closes[0];
    assert_eq!(reason, DisconnectReason::PeerClosed { code: 1001 });
    assert!(when <= at + Duration::from_millis(800), "{when:?}");
}

#[test]
fn policy_violation_gives_up_naming_the_code_and_reason() {
    let mut h = Host::new(Host::cfg(), Host::ws());
    h.connect();
    let m = h.send("m");
    h.server_frame(0x88, b"\x03\xf0not allowed");
    h.run_for(Duration::from_secs(30));
    assert_eq!(h.dials.len(), 1, "no retry");
    assert_eq!(h.s.state(), State::Closed);
    assert!(h.notes.iter().any(|n| matches!(
        n,
        Notification::GaveUp {
            last_error: NetError::PermissionDenied,
            ..
        }
    )));
    assert!(h.notes.iter().any(|n| matches!(n,
        Notification::PeerSaid { text, .. } if text == b"not allowed")));
    assert!(matches!(h.outcome(m), Some(Outcome::Abandoned(_))));
}

#[test]
fn http_401_and_403_give_up_at_once() {
    for status in ["401 Unauthorized", "403 Forbidden"] {
        let mut h = Host::new(Host::cfg(), Host::ws());
        let answer: &'static str =
            Box::leak(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").into_boxed_str());
        h.answers = vec![Some(answer)];
        h.run_for(Duration::from_secs(60));
        assert_eq!(h.dials.len(), 1, "{status}");
        assert!(h.notes.iter().any(|n| matches!(
            n,
            Notification::GaveUp {
                last_error: NetError::PermissionDenied,
                ..
            }
        )));
        assert!(h.notes.iter().any(|n| matches!(n,
            Notification::PeerSaid { text, .. } if text.ends_with(status.as_bytes()))));
        // The credential reaches no event.
        for n in &h.notes {
            assert!(!format!("{n:?}").contains("hunter2"), "{n:?}");
        }
    }
}

#[test]
fn http_503_is_retried_honouring_retry_after_then_delivers() {
    let mut h = Host::new(Host::cfg(), Host::ws());
    h.answers = vec![
        Some("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\n\r\n"),
        Some("HTTP/1.1 503 Service Unavailable\r\n\r\n"),
        None,
    ];
    let m = h.send("after the outage");
    h.run_for(Duration::from_secs(4));
    assert_eq!(h.dials.len(), 3, "{:?}", h.dials);
    assert!(h.dials[1] - h.dials[0] >= Duration::from_secs(3));
    assert_eq!(h.s.state(), State::Connected);
    let f = h.frames();
    assert_eq!(f[0], text("after the outage"));
    let t = ping_token(&f[1]).unwrap();
    h.server_frame(0x8A, &t.to_be_bytes());
    h.run_for(Duration::from_millis(1));
    assert_eq!(h.outcome(m), Some(Outcome::Delivered));
}

#[test]
fn a_protocol_violation_is_named_in_our_close_then_reconnects() {
    let mut h = Host::new(Host::cfg(), Host::ws());
    h.connect();
    // A masked frame from the server.
    let mut bad = Vec::new();
    frame::encode(&mut bad, Opcode::Text, b"masked", Some([9, 9, 9, 9]));
    h.peer(&bad);
    h.run_for(Duration::from_millis(1));
    let f = h.frames();
    assert_eq!(f, [Got(Opcode::Close, 1002u16.to_be_bytes().to_vec())]);
    assert!(matches!(
        h.closes[0].1,
        DisconnectReason::Protocol(FrameError::Malformed { .. })
    ));
    h.run_for(Duration::from_secs(5));
    assert_eq!(h.dials.len(), 2, "reconnected");
}

#[test]
fn fragments_with_a_ping_between_them_arrive_as_one_message() {
    let mut h = Host::new(Host::cfg(), Host::ws());
    h.connect();
    h.server_frame(0x01, b"one ");
    h.server_frame(0x89, b"mid");
    h.server_frame(0x00, b"two ");
    h.server_frame(0x80, b"three");
    h.server_frame(0x82, b"\x00\x01");
    h.run_for(Duration::from_millis(1));
    assert_eq!(
        h.received,
        [
            (b"text".to_vec(), b"one two three".to_vec()),
            (b"binary".to_vec(), b"\x00\x01".to_vec())
        ]
    );
    assert_eq!(h.frames()[0], Got(Opcode::Pong, b"mid".to_vec()));
}

#[test]
fn a_silent_server_is_declared_dead_within_interval_plus_timeout() {
    let mut h = Host::new(Host::cfg(), Host::ws());
    h.connect();
    let last_read = h.now;
    h.run_for(Duration::from_secs(6));
    assert!(
        h.frames().iter().any(|g| g.0 == Opcode::Ping),
        "the heartbeat went out"
    );
    h.run_for(Duration::from_secs(2));
    let (_, reason, when) = h.closes[0];
    assert!(
        matches!(reason, DisconnectReason::HeartbeatTimeout { .. }),
        "{reason:?}"
    );
    assert!(when <= last_read + Duration::from_secs(7));
}

#[test]
fn graceful_close_sends_close_1000_after_the_drain_and_ends_on_the_servers_answer() {
    let mut h = Host::new(Host::cfg(), Host::ws());
    h.connect();
    let m = h.send("last words");
    h.s.close(
        h.now,
        CloseMode::Graceful {
            drain: Duration::from_secs(5),
        },
    );
    h.run_for(Duration::from_millis(1));
    let f = h.frames();
    assert_eq!(f[0], text("last words"));
    let t = ping_token(&f[1]).unwrap();
    h.server_frame(0x8A, &t.to_be_bytes());
    h.run_for(Duration::from_millis(1));
    assert_eq!(h.outcome(m), Some(Outcome::Delivered));
    assert_eq!(
        h.frames(),
        [Got(Opcode::Close, 1000u16.to_be_bytes().to_vec())]
    );
    h.server_frame(0x88, b"\x03\xe8");
    h.run_for(Duration::from_millis(1));
    assert_eq!(h.s.state(), State::Closed);
    assert!(
        h.frames().is_empty(),
        "the server's Close is not echoed back"
    );
}
