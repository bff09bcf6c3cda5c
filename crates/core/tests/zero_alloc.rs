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

const ADDR: [std::net::SocketAddr; 1] = [std::net::SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    6379,
)];

struct Driver {
    s: Session,
    now: Instant,
    epoch: Epoch,
    /// Counts instead of storing, so the driver itself does not allocate.
    transmits: usize,
    pings: usize,
    pongs: usize,
    messages: usize,
    payload_bytes: usize,
    delivered: usize,
}

impl Driver {
    /// Polls to Wait, answering Transmit with Written (and acks for the messages it carried).
    fn round(&mut self) {
        loop {
            match self.s.poll(self.now) {
                Action::Wait { .. } => return,
                Action::Transmit {
                    epoch,
                    pongs,
                    ping,
                    messages,
                } => {
                    assert_eq!(epoch, self.epoch);
                    self.transmits += 1;
                    self.pings += usize::from(ping);
                    self.pongs += usize::from(pongs);
                    self.messages += messages;
                    self.payload_bytes +=
                        self.s.transmit_payloads().map(<[u8]>::len).sum::<usize>();
                    self.s.handle(self.now, Event::Written { epoch });
                    if messages > 0 {
                        self.s.handle(
                            self.now,
                            Event::Acked {
                                epoch,
                                count: messages,
                            },
                        );
                    }
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

    fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.s.handle(self.now, Event::Timer);
        self.round();
    }

    /// One cycle of steady-state traffic.
    fn cycle(&mut self) {
        let e = self.epoch;
        self.s
            .handle(self.now, Event::BytesRead { epoch: e, len: 64 });
        self.round();
        // Idle for the heartbeat interval: a PING goes out.
        let next = self.s.next_deadline().expect("heartbeat deadline");
        self.now = next;
        self.round();
        self.advance(Duration::from_millis(3));
        self.s.handle(self.now, Event::Pong { epoch: e });
        self.round();
        self.s.handle(self.now, Event::PeerPing { epoch: e });
        self.round();
        self.advance(Duration::from_millis(1));
        self.s.handle(self.now, Event::Timer);
        self.round();
    }
}

#[test]
fn steady_state_stepping_allocates_nothing() {
    let hb = Heartbeat {
        interval: Duration::from_millis(500),
        timeout: Duration::from_millis(500),
        adaptive_floor: Some(Duration::from_millis(50)),
    };
    let cfg = Config::default()
        .with_heartbeat(Some(hb))
        .with_read_idle_timeout(Some(Duration::from_secs(5)))
        .with_acks(AckMode::InOrder);
    let mut d = Driver {
        s: Session::new(cfg, Instant::ZERO).unwrap(),
        now: Instant::ZERO,
        epoch: Epoch::NONE,
        transmits: 0,
        pings: 0,
        pongs: 0,
        messages: 0,
        payload_bytes: 0,
        delivered: 0,
    };
    // Connect.
    let epoch = loop {
        if let Action::Resolve { epoch } = d.s.poll(d.now) {
            break epoch;
        }
    };
    d.s.handle(
        d.now,
        Event::Resolved {
            epoch,
            addrs: &ADDR,
        },
    );
    d.s.handle(d.now, Event::DialOk { epoch });
    d.epoch = epoch;
    d.round();
    assert_eq!(d.s.connection(), Some(epoch));

    // Warm up: every path once, and one burst as large as the measured one, so buffers that
    // grow on demand (and keep their capacity) have reached their high-water mark. Then queue
    // the messages the measured cycles will send: their payloads are allocated here, by the
    // caller.
    let enqueue_burst = |d: &mut Driver| {
        for i in 0..300u16 {
            let delivery = if i % 3 == 0 {
                Delivery::Idempotent
            } else {
                Delivery::AtMostOnce
            };
            d.s.enqueue(d.now, i.to_be_bytes().repeat(8), delivery)
                .unwrap();
        }
    };
    for i in 0..4u8 {
        d.s.enqueue(d.now, vec![i; 16], Delivery::AtMostOnce)
            .unwrap();
        d.cycle();
    }
    enqueue_burst(&mut d);
    while d.delivered < 304 {
        d.cycle();
    }
    enqueue_burst(&mut d);
    let before = (d.transmits, d.pings, d.pongs, d.messages, d.delivered);

    let n = allocations_in(|| {
        for _ in 0..200 {
            d.cycle();
        }
    });

    let (transmits, pings, pongs, messages, delivered) = (
        d.transmits - before.0,
        d.pings - before.1,
        d.pongs - before.2,
        d.messages - before.3,
        d.delivered - before.4,
    );
    // The measured stretch really did all of it.
    assert!(transmits >= 400, "{transmits}");
    assert!(pings >= 100, "{pings}");
    assert!(pongs >= 100, "{pongs}");
    assert_eq!(messages, 300);
    assert_eq!(delivered, 300);
    assert!(d.payload_bytes >= 300 * 16);
    assert!(d.s.stats().rtt.is_some());
    assert_eq!(d.s.connection(), Some(epoch));
    assert_eq!(n, 0, "steady-state stepping allocated {n} times");
}
