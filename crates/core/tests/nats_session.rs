//! NATS through a whole session: what a `SUB`, `UNSUB` or `PUB` is confirmed by. NATS answers
//! none of them (in non-verbose mode); the server handles operations in order, so the `PONG`
//! answering a later `PING` proves every operation written before it was processed. The core
//! must credit that PONG to each of them: a subscription is in place, an unsubscription done,
//! a publish delivered, and never before.

use std::net::SocketAddr;

use redial_core::proto::nats::{self, Nats};
use redial_core::*;

const T0: Instant = Instant::ZERO;

fn addr() -> [Addr; 1] {
    [Addr::from(SocketAddr::from(([127, 0, 0, 1], 4222)))]
}

struct Peer {
    s: Session<Nats>,
    epoch: Epoch,
    now: Instant,
    notes: Vec<Notification>,
    received: Vec<(Option<SubId>, Vec<u8>)>,
    /// Written but not yet looked at by the test.
    pending: Vec<u8>,
}

impl Peer {
    fn new() -> Peer {
        let cfg = Config::default().with_heartbeat(None);
        let s = Session::new(cfg, Nats::new(), T0).expect("valid");
        let mut p = Peer {
            s,
            epoch: Epoch::NONE,
            now: T0,
            notes: Vec::new(),
            received: Vec::new(),
            pending: Vec::new(),
        };
        p.connect();
        p
    }

    /// Resolves, dials and completes the handshake (INFO in, CONNECT + PING out, PONG in).
    fn connect(&mut self) {
        let epoch = loop {
            match self.s.poll(self.now) {
                Action::Resolve { epoch } => break epoch,
                Action::Wait { until: Some(t) } => self.now = t,
                Action::Notify(n) => self.notes.push(n),
                other => panic!("before resolving: {other:?}"),
            }
        };
        let addrs = addr();
        let _ = self.s.handle_input(
            self.now,
            Input::Resolved {
                epoch,
                addrs: &addrs,
            },
        );
        loop {
            match self.s.poll(self.now) {
                Action::Dial { epoch: e, .. } => {
                    assert_eq!(e, epoch);
                    break;
                }
                Action::Notify(n) => self.notes.push(n),
                other => panic!("before dialing: {other:?}"),
            }
        }
        let _ = self.s.handle_input(self.now, Input::DialOk { epoch });
        self.epoch = epoch;
        let hello = self.read(b"INFO {\"max_payload\":1048576}\r\n");
        assert!(hello.starts_with(b"CONNECT {"), "{hello:?}");
        assert!(hello.ends_with(b"PING\r\n"), "{hello:?}");
        let after = self.read(b"PONG\r\n");
        assert_eq!(self.s.connection(), Some(epoch), "connected");
        self.pending = after;
    }

    /// Runs the session until it waits; returns the bytes of every transmit (each reported
    /// written).
    fn write(&mut self) -> Vec<u8> {
        let mut wire = std::mem::take(&mut self.pending);
        loop {
            match self.s.poll(self.now) {
                Action::Transmit { epoch } => {
                    assert_eq!(epoch, self.epoch);
                    self.s.encode_transmit(&mut wire);
                    let _ = self.s.handle_input(self.now, Input::Written { epoch });
                }
                Action::Notify(n) => self.notes.push(n),
                Action::Wait { .. } => return wire,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The peer's `bytes` arrive; returns what the session wrote in answer.
    fn read(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        let used = self
            .s
            .handle_read(self.now, self.epoch, bytes, bytes.len(), &mut |r| {
                if let Received::Message { sub, body, .. } = r {
                    got.push((sub, body.to_vec()));
                }
            });
        assert_eq!(used, bytes.len(), "every byte is a whole operation");
        let n = got.len();
        self.s
            .inbound_taken(self.now, n, got.iter().map(|g| g.1.len()).sum());
        self.received.extend(got);
        self.write()
    }

    fn subscribed(&self, id: SubId) -> usize {
        self.notes
            .iter()
            .filter(|n| matches!(n, Notification::Subscribed { id: i, .. } if *i == id))
            .count()
    }

    fn unsubscribed(&self, id: SubId) -> bool {
        self.notes
            .iter()
            .any(|n| matches!(n, Notification::Unsubscribed { id: i, refused: false } if *i == id))
    }

    fn outcome(&self, id: MsgId) -> Option<Outcome> {
        self.notes.iter().find_map(|n| match n {
            Notification::Outcome { id: i, outcome, .. } if *i == id => Some(*outcome),
            _ => None,
        })
    }
}

#[test]
fn a_subscription_is_in_place_once_the_pong_after_its_sub_arrives() {
    let mut p = Peer::new();
    let id =
        p.s.subscribe(p.now, nats::subscription("t.a", None))
            .expect("valid subject");
    let wire = p.write();
    assert_eq!(
        wire,
        format!("SUB t.a {}\r\nPING\r\n", id.get()).into_bytes(),
        "nothing follows the SUB, so a PING does, to confirm it within a round trip"
    );
    assert_eq!(p.subscribed(id), 0, "not before the server answered");
    let _ = p.read(b"PONG\r\n");
    assert_eq!(p.subscribed(id), 1, "the PONG confirms the SUB before it");

    // A message for it, whose payload looks like the protocol.
    let _ = p.read(format!("MSG t.a {} 6\r\nPONG\r\n\r\n", id.get()).as_bytes());
    assert_eq!(p.received, [(Some(id), b"PONG\r\n".to_vec())]);

    assert!(p.s.unsubscribe(p.now, id));
    let wire = p.write();
    assert_eq!(wire, format!("UNSUB {}\r\nPING\r\n", id.get()).into_bytes());
    assert!(!p.unsubscribed(id), "not before the server answered");
    let _ = p.read(b"PONG\r\n");
    assert!(p.unsubscribed(id), "the PONG confirms the UNSUB before it");
    assert_eq!(p.s.subscriptions(), 0);
}

#[test]
fn subscriptions_and_publishes_share_one_confirming_pong_in_write_order() {
    let mut p = Peer::new();
    let a =
        p.s.subscribe(p.now, nats::subscription("t.a", None))
            .unwrap();
    let b =
        p.s.subscribe(p.now, nats::subscription("t.b", Some("q")))
            .unwrap();
    let m =
        p.s.enqueue(
            p.now,
            nats::publish("t.a", b"PING").unwrap(),
            Delivery::AtMostOnce,
        )
        .unwrap();
    let wire = p.write();
    let text = String::from_utf8_lossy(&wire);
    assert!(
        text.starts_with(&format!("SUB t.a {}\r\nSUB t.b q {}\r\n", a.get(), b.get())),
        "subscriptions go before anything queued: {text:?}"
    );
    assert!(text.ends_with("PUB t.a 4\r\nPING\r\nPING\r\n"), "{text:?}");
    assert_eq!(
        (p.subscribed(a), p.subscribed(b), p.outcome(m)),
        (0, 0, None)
    );
    let _ = p.read(b"PONG\r\n");
    assert_eq!((p.subscribed(a), p.subscribed(b)), (1, 1));
    assert_eq!(p.outcome(m), Some(Outcome::Delivered));
}

#[test]
fn subscriptions_are_restored_and_confirmed_on_every_new_connection() {
    let mut p = Peer::new();
    let a =
        p.s.subscribe(p.now, nats::subscription("t.a", None))
            .unwrap();
    let _ = p.write();
    let _ = p.read(b"PONG\r\n");
    assert_eq!(p.subscribed(a), 1);

    let _ = p.s.handle_input(p.now, Input::Eof { epoch: p.epoch });
    // Close the old socket, then reconnect after the backoff.
    loop {
        match p.s.poll(p.now) {
            Action::Close { epoch, .. } => {
                let _ = p.s.handle_input(p.now, Input::Closed { epoch });
            }
            Action::Notify(n) => p.notes.push(n),
            Action::Wait { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let old = p.epoch;
    p.connect();
    assert_ne!(p.epoch, old);
    let wire = p.write();
    assert_eq!(
        String::from_utf8_lossy(&wire),
        format!("SUB t.a {}\r\nPING\r\n", a.get()),
        "the subscription is replayed with its sid"
    );
    assert_eq!(p.subscribed(a), 1, "not in place on the new connection yet");
    let _ = p.read(b"PONG\r\n");
    assert_eq!(p.subscribed(a), 2, "in place again");
}
