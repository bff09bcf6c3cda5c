//! 1. Core step cost: a steady-state mix of events on a connected session.

use std::hint::black_box;
use std::time::{Duration, Instant as StdInstant};

use redial_core::{
    AckMode, Action, Addr, Codec, Config, Delivery, Epoch, Frame, Framed, Heartbeat, Input,
    Instant, LengthCodec, Notification, Session,
};

use crate::util::{allocs, Spread};

/// Events fed per cycle (`enqueue` and the 5 s timer wake-up count as one each).
pub const EVENTS_PER_CYCLE: u64 = 8;

/// The benchmark's protocol: length-delimited frames, every message confirmed in order.
type Proto = Framed<LengthCodec>;

/// What one cycle produced, to check the mix is what it claims.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub transmit_msg: u32,
    pub transmit_ping: u32,
    pub transmit_pong: u32,
    pub delivered: u32,
    pub rtt: u32,
}

/// A connected session and what a driver keeps beside it: the write buffer and the frames
/// the peer sends (encoded once, up front).
pub struct Bench {
    s: Session<Proto>,
    epoch: Epoch,
    t: Instant,
    wire: Vec<u8>,
    reply: Vec<u8>,
    pong: Vec<u8>,
    ping: Vec<u8>,
}

// Inlined into `cycle`, as a driver's own drain loop would be.
#[inline(always)]
fn drain(b: &mut Bench, seen: &mut Seen) {
    loop {
        match b.s.poll(b.t) {
            Action::Wait { .. } => break,
            Action::Transmit { .. } => {
                b.wire.clear();
                b.s.encode_transmit(&mut b.wire);
                count_frames(&b.wire, seen);
            }
            Action::Notify(Notification::Outcome { .. }) => seen.delivered += 1,
            Action::Notify(Notification::Rtt { .. }) => seen.rtt += 1,
            other => {
                black_box(other);
            }
        }
    }
}

/// Counts what a transmit holds, as the peer would read it.
#[inline(always)]
fn count_frames(mut wire: &[u8], seen: &mut Seen) {
    let mut codec = LengthCodec::default();
    while let Ok(Some((frame, used))) = codec.decode(wire) {
        wire = &wire[used..];
        match frame {
            Frame::Data(_) => seen.transmit_msg += 1,
            Frame::Ping => seen.transmit_ping += 1,
            Frame::Pong => seen.transmit_pong += 1,
        }
    }
}

fn frame(f: Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    LengthCodec::default().encode(f, &mut out).expect("frame");
    out
}

/// A connected session (acks in order, default heartbeat 5 s + 5 s).
pub fn setup() -> Bench {
    let cfg = Config::default().with_heartbeat(Some(Heartbeat::default()));
    let now = Instant::ZERO;
    let proto = Framed::new(LengthCodec::default()).with_acks(AckMode::InOrder);
    let mut s = Session::new(cfg, proto, now).expect("valid config");
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let addr = Addr::from(addr);
    let mut epoch = None;
    for _ in 0..8 {
        match s.poll(now) {
            Action::Resolve { epoch: e } => {
                let _ = s.handle_input(
                    now,
                    Input::Resolved {
                        epoch: e,
                        addrs: core::slice::from_ref(&addr),
                    },
                );
            }
            Action::Dial { epoch: e, .. } => {
                let _ = s.handle_input(now, Input::DialOk { epoch: e });
                epoch = Some(e);
            }
            _ => {}
        }
    }
    let mut b = Bench {
        s,
        epoch: epoch.expect("connected"),
        t: now,
        wire: Vec::with_capacity(4096),
        // A 64-byte reply frame: the answer to the cycle's message.
        reply: frame(Frame::Data(&[b'+'; 59])),
        pong: frame(Frame::Pong),
        ping: frame(Frame::Ping),
    };
    let mut seen = Seen::default();
    drain(&mut b, &mut seen);
    b
}

#[inline(always)]
fn written(b: &mut Bench, seen: &mut Seen) {
    let _ = b.s.handle_input(b.t, Input::Written { epoch: b.epoch });
    drain(b, seen);
}

/// A frame the peer sends.
#[derive(Clone, Copy)]
enum Peer {
    Reply,
    Pong,
    Ping,
}

impl Bench {
    fn frame_mut(&mut self, which: Peer) -> &mut Vec<u8> {
        match which {
            Peer::Reply => &mut self.reply,
            Peer::Pong => &mut self.pong,
            Peer::Ping => &mut self.ping,
        }
    }
}

/// The peer's frame `which` is read, in one read, as a driver would hand it over (the read
/// buffer is the driver's, separate from the session).
#[inline(always)]
fn read(b: &mut Bench, which: Peer, seen: &mut Seen) {
    let bytes = std::mem::take(b.frame_mut(which));
    let (epoch, t) = (b.epoch, b.t);
    let (mut units, mut taken) = (0, 0);
    let used = b.s.handle_read(t, epoch, &bytes, bytes.len(), &mut |r| {
        units += 1;
        taken += r.len();
        black_box(r);
    });
    debug_assert_eq!(used, bytes.len());
    if units > 0 {
        b.s.inbound_taken(t, units, taken);
    }
    *b.frame_mut(which) = bytes;
    drain(b, seen);
}

/// One cycle of the steady-state mix: enqueue → transmit → written → 64-byte reply (→
/// outcome); timer 5 s later (→ PING transmit) → written; PONG (→ RTT); peer PING (→ PONG
/// transmit) → written.
pub fn cycle(b: &mut Bench, payload: Vec<u8>, seen: &mut Seen) {
    let _ = b.s.enqueue(b.t, payload, Delivery::AtMostOnce);
    drain(b, seen);
    written(b, seen);
    read(b, Peer::Reply, seen);
    b.t = b.t + Duration::from_secs(5);
    drain(b, seen);
    written(b, seen);
    b.t = b.t + Duration::from_millis(1);
    read(b, Peer::Pong, seen);
    read(b, Peer::Ping, seen);
    written(b, seen);
}

/// `cycles` cycles (the callgrind workload). `alloc_only`: only build and drop the payloads,
/// to subtract the user's own allocation.
pub fn run(cycles: u64, alloc_only: bool) -> Seen {
    let mut b = setup();
    let mut seen = Seen::default();
    for _ in 0..cycles {
        let p = black_box(vec![7u8; 64]);
        if alloc_only {
            drop(black_box(p));
        } else {
            cycle(&mut b, p, &mut seen);
        }
    }
    black_box(&b.s);
    seen
}

pub struct Timed {
    pub ns_per_event: Spread,
    pub allocs_per_event: f64,
    pub cycles: u64,
}

/// ns per event over `rounds` rounds of `cycles`, and core allocations per event.
pub fn timed(rounds: usize, cycles: u64) -> Timed {
    let mut b = setup();
    // Warm up, and check the mix once.
    let mut seen = Seen::default();
    cycle(&mut b, vec![7u8; 64], &mut seen);
    let expect = Seen {
        transmit_msg: 1,
        transmit_ping: 1,
        transmit_pong: 1,
        delivered: 1,
        rtt: 1,
    };
    assert_eq!(seen, expect, "the steady-state mix is not what it claims");
    for _ in 0..1000 {
        cycle(&mut b, vec![7u8; 64], &mut seen);
    }
    let payloads: Vec<Vec<u8>> = (0..cycles).map(|_| vec![7u8; 64]).collect();
    let mut ns = Vec::new();
    let mut core_allocs = 0;
    let mut pool = payloads;
    for _ in 0..rounds {
        // Payloads are built before the clock and the counter start.
        let batch: Vec<Vec<u8>> = std::mem::take(&mut pool);
        let a0 = allocs();
        let t0 = StdInstant::now();
        for p in batch {
            cycle(&mut b, p, &mut seen);
        }
        let el = t0.elapsed();
        core_allocs += allocs() - a0;
        ns.push(el.as_nanos() as f64 / (cycles * EVENTS_PER_CYCLE) as f64);
        pool = (0..cycles).map(|_| vec![7u8; 64]).collect();
    }
    Timed {
        ns_per_event: Spread::of(&ns),
        allocs_per_event: core_allocs as f64 / (rounds as u64 * cycles * EVENTS_PER_CYCLE) as f64,
        cycles,
    }
}
