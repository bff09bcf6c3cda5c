//! Invariant 7: once warmed up, stepping a connected session allocates nothing. Reads, pings,
//! pongs, timers, the peer's pings and transmits of already-queued messages with their acks
//! are all counted by a global allocator that records allocations made on this thread.
#![allow(unsafe_code)] // A counting global allocator needs `unsafe impl GlobalAlloc`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use redial_core::*;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: during thread teardown the locals may be gone; those allocations are not ours.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(|a| a.get())
}

const ADDR: [Addr; 1] = [Addr::Ip(std::net::SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    6379,
))];

/// The peer: answers what a transmit carried, into a buffer kept between calls.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Length frames: one data reply per data frame, a PONG per PING.
    Frames,
    /// RESP: `+PONG` per PING, a bulk reply per command.
    Resp,
    /// NATS: `PONG` per `PING` (which confirms the `PUB`s before it).
    Nats,
    /// WebSocket: the 101, a Pong per Ping (which confirms the messages before it), a text
    /// message per message.
    Ws,
}

struct Driver<P: Protocol> {
    s: Session<P>,
    peer: Peer,
    now: Instant,
    epoch: Epoch,
    out: Vec<u8>,
    replies: Vec<u8>,
    /// Counts instead of storing, so the driver itself does not allocate.
    transmits: usize,
    pings: usize,
    messages: usize,
    replies_seen: usize,
    delivered: usize,
}

impl<P: Protocol> Driver<P> {
    fn new(s: Session<P>, peer: Peer) -> Self {
        let mut d = Driver {
            s,
            peer,
            now: Instant::ZERO,
            epoch: Epoch::NONE,
            out: Vec::with_capacity(1 << 20),
            replies: Vec::with_capacity(1 << 20),
            transmits: 0,
            pings: 0,
            messages: 0,
            replies_seen: 0,
            delivered: 0,
        };
        let epoch = loop {
            if let Action::Resolve { epoch } = d.s.poll(d.now) {
                break epoch;
            }
        };
        let _ = d.s.handle_input(
            d.now,
            Input::Resolved {
                epoch,
                addrs: &ADDR,
            },
        );
        let _ = d.s.handle_input(d.now, Input::DialOk { epoch });
        d.epoch = epoch;
        if peer == Peer::Nats {
            // The handshake's PING is answered by the peer model in `round`.
            d.read(b"INFO {\"max_payload\":1048576}\r\n");
        }
        d.round();
        assert_eq!(d.s.connection(), Some(epoch));
        d
    }

    /// What the peer answers to `bytes`.
    fn answer(&mut self) {
        self.replies.clear();
        let mut rest = &self.out[..];
        match self.peer {
            Peer::Frames => {
                let mut c = LengthCodec::default();
                while let Ok(Some((f, n))) = c.decode(rest) {
                    match f {
                        Frame::Ping => {
                            self.pings += 1;
                            c.encode(Frame::Pong, &mut self.replies).unwrap();
                        }
                        Frame::Data(_) => {
                            self.messages += 1;
                            c.encode(Frame::Data(b"ok"), &mut self.replies).unwrap();
                        }
                        Frame::Pong => {}
                    }
                    rest = &rest[n..];
                }
            }
            Peer::Resp => {
                while !rest.is_empty() {
                    let n = resp_len(rest);
                    if &rest[..n] == b"*1\r\n$4\r\nPING\r\n" {
                        self.pings += 1;
                        self.replies.extend_from_slice(b"+PONG\r\n");
                    } else {
                        self.messages += 1;
                        self.replies.extend_from_slice(b"$5\r\n+PONG\r\n");
                    }
                    rest = &rest[n..];
                }
            }
            Peer::Ws => {
                use redial_core::proto::ws::frame::{self, Opcode};
                if rest.starts_with(b"GET ") {
                    // The handshake (warm-up only: it may allocate).
                    let req = String::from_utf8(rest.to_vec()).unwrap();
                    let key = req
                        .lines()
                        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                        .unwrap();
                    let accept = redial_core::proto::ws::accept_for_key(key.as_bytes());
                    self.replies.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
                    self.replies.extend_from_slice(&accept);
                    self.replies.extend_from_slice(b"\r\n\r\n");
                    return;
                }
                while let Ok(Some(h)) = frame::parse_header(rest) {
                    let len = h.len as usize;
                    let mut payload = [0u8; 256];
                    let p = &mut payload[..len];
                    p.copy_from_slice(&rest[h.header_len..h.header_len + len]);
                    frame::apply_mask(p, h.mask.unwrap(), 0);
                    match h.opcode {
                        Opcode::Ping => {
                            self.pings += 1;
                            frame::encode(&mut self.replies, Opcode::Pong, p, None);
                        }
                        Opcode::Text => {
                            self.messages += 1;
                            frame::encode(&mut self.replies, Opcode::Text, b"ok", None);
                        }
                        _ => {}
                    }
                    rest = &rest[h.header_len + len..];
                }
            }
            Peer::Nats => {
                while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                    let line = &rest[..nl + 1];
                    if line == b"PING\r\n" {
                        self.pings += 1;
                        self.replies.extend_from_slice(b"PONG\r\n");
                        rest = &rest[nl + 1..];
                    } else if !line.starts_with(b"PUB ") {
                        // CONNECT, SUB, PONG: nothing to answer.
                        rest = &rest[nl + 1..];
                    } else {
                        // PUB subject len\r\npayload\r\n
                        self.messages += 1;
                        let len: usize = std::str::from_utf8(&line[..nl - 1])
                            .unwrap()
                            .rsplit(' ')
                            .next()
                            .unwrap()
                            .parse()
                            .unwrap();
                        rest = &rest[nl + 1 + len + 2..];
                    }
                }
            }
        }
    }

    fn read(&mut self, bytes: &[u8]) {
        let (e, now) = (self.epoch, self.now);
        let mut seen = (0, 0);
        let used = self.s.handle_read(now, e, bytes, bytes.len(), &mut |r| {
            seen.0 += 1;
            seen.1 += r.len();
        });
        assert_eq!(used, bytes.len());
        self.replies_seen += seen.0;
        self.s.inbound_taken(now, seen.0, seen.1);
    }

    /// Polls to Wait, writing every transmit and answering it.
    fn round(&mut self) {
        loop {
            match self.s.poll(self.now) {
                Action::Wait { .. } => return,
                Action::Transmit { epoch } => {
                    assert_eq!(epoch, self.epoch);
                    self.transmits += 1;
                    self.out.clear();
                    self.s.encode_transmit(&mut self.out);
                    let _ = self.s.handle_input(self.now, Input::Written { epoch });
                    self.answer();
                    let replies = std::mem::take(&mut self.replies);
                    if !replies.is_empty() {
                        self.read(&replies);
                    }
                    self.replies = replies;
                }
                Action::Notify(Notification::Outcome { outcome, .. }) => {
                    assert_eq!(outcome, Outcome::Delivered);
                    self.delivered += 1;
                }
                Action::Close { reason, .. } => panic!("connection dropped: {reason:?}"),
                _ => {}
            }
        }
    }

    /// One cycle of steady-state traffic: some data read, an idle heartbeat interval, its
    /// answer, the peer's own ping where the protocol has one.
    fn cycle(&mut self, ping_frame: &[u8]) {
        self.round();
        let next = self.s.next_deadline().expect("heartbeat deadline");
        self.now = next;
        self.round();
        self.now = self.now + Duration::from_millis(3);
        self.round();
        if !ping_frame.is_empty() {
            self.read(ping_frame);
            self.round();
        }
        self.now = self.now + Duration::from_millis(1);
        self.round();
    }
}

/// The length of the RESP value at the start of `b` (the test's own, allocation-free).
fn resp_len(b: &[u8]) -> usize {
    let line = |from: usize| from + b[from..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    match b[0] {
        b'*' => {
            let end = line(0);
            let n: usize = std::str::from_utf8(&b[1..end - 2])
                .unwrap()
                .parse()
                .unwrap();
            let mut pos = end;
            for _ in 0..n {
                pos += resp_len(&b[pos..]);
            }
            pos
        }
        b'$' => {
            let end = line(0);
            let n: usize = std::str::from_utf8(&b[1..end - 2])
                .unwrap()
                .parse()
                .unwrap();
            end + n + 2
        }
        _ => line(0),
    }
}

fn config() -> Config {
    let hb = Heartbeat {
        interval: Duration::from_millis(500),
        timeout: Duration::from_millis(500),
        adaptive_floor: Some(Duration::from_millis(50)),
    };
    Config::default()
        .with_heartbeat(Some(hb))
        .with_read_idle_timeout(Some(Duration::from_secs(5)))
}

/// Warms `d` up (every path once, and one burst as large as the measured one, so buffers
/// that grow on demand have reached their high-water mark), queues the messages the measured
/// cycles will send (their payloads are allocated by the caller), then counts allocations of
/// 200 cycles.
fn measure<P: Protocol>(mut d: Driver<P>, message: impl Fn(u16) -> Vec<u8>, ping: &[u8]) {
    let enqueue_burst = |d: &mut Driver<P>| {
        for i in 0..300u16 {
            let delivery = if i % 3 == 0 {
                Delivery::Idempotent
            } else {
                Delivery::AtMostOnce
            };
            d.s.enqueue(d.now, message(i), delivery).unwrap();
        }
    };
    for i in 0..4u16 {
        d.s.enqueue(d.now, message(i), Delivery::AtMostOnce)
            .unwrap();
        d.cycle(ping);
    }
    enqueue_burst(&mut d);
    while d.delivered < 304 {
        d.cycle(ping);
    }
    enqueue_burst(&mut d);
    let before = (d.transmits, d.pings, d.messages, d.delivered);
    let n = allocations_in(|| {
        for _ in 0..200 {
            d.cycle(ping);
        }
    });
    let (transmits, pings, messages, delivered) = (
        d.transmits - before.0,
        d.pings - before.1,
        d.messages - before.2,
        d.delivered - before.3,
    );
    // The measured stretch really did all of it.
    assert!(transmits >= 200, "{transmits}");
    assert!(pings >= 100, "{pings}");
    assert_eq!(messages, 300);
    assert_eq!(delivered, 300);
    assert!(d.s.stats().rtt.is_some());
    assert_eq!(d.s.connection(), Some(d.epoch));
    assert_eq!(n, 0, "steady-state stepping allocated {n} times");
}

#[test]
fn steady_state_stepping_allocates_nothing() {
    let proto = Framed::new(LengthCodec::default()).with_acks(AckMode::InOrder);
    let d = Driver::new(
        Session::new(config(), proto, Instant::ZERO).unwrap(),
        Peer::Frames,
    );
    let mut ping = Vec::new();
    LengthCodec::default()
        .encode(Frame::Ping, &mut ping)
        .unwrap();
    measure(d, |i| i.to_be_bytes().repeat(8), &ping);
}

#[test]
fn resp_requests_and_replies_allocate_nothing_but_their_payloads() {
    use redial_core::proto::resp::{cmd, Resp};
    let d = Driver::new(
        Session::new(config(), Resp::new(), Instant::ZERO).unwrap(),
        Peer::Resp,
    );
    measure(d, |i| cmd(["SET", "k", &format!("+PONG {i}")]), b"");
}

#[test]
fn nats_publishes_allocate_nothing_but_their_payloads() {
    use redial_core::proto::nats::{publish, Nats};
    let d = Driver::new(
        Session::new(config(), Nats::new().with_inbox("_INBOX.z"), Instant::ZERO).unwrap(),
        Peer::Nats,
    );
    measure(
        d,
        |i| publish("s", format!("PING {i}").as_bytes()).unwrap(),
        b"PING\r\n",
    );
}

#[test]
fn websocket_messages_allocate_nothing_but_their_payloads() {
    use redial_core::proto::ws::WebSocket;
    let d = Driver::new(
        Session::new(config(), WebSocket::new("h:1", "/"), Instant::ZERO).unwrap(),
        Peer::Ws,
    );
    // A server Ping between cycles: answered through the control buffer.
    measure(d, |i| format!("PING {i}").into_bytes(), b"\x89\x04ping");
}
