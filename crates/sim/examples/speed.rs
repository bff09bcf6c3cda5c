//! Speed benchmark (not a test): run with `cargo run --release -p redial-sim --example speed`.
//!
//! 1. Raw core: one session driven through connect, then heartbeat and message rounds,
//!    without the simulator: core inputs (events + commands + timer wake-ups) per second.
//! 2. The simulator: 10,000 sessions × 10 virtual minutes with a message per second each, a
//!    60 s outage and a 20 s blackhole: wall time and core inputs per second, on one core.

use std::time::{Duration, Instant as Wall};

use redial_core::{
    Action, Addr, Codec, Config, Delivery, Frame, Framed, Input, Instant, LengthCodec, Session,
};
use redial_sim::{Fault, FaultKind, FaultSchedule, Policy, Scenario, Simulation, Workload};

/// Whether the frames in `wire` hold a PING.
fn has_ping(wire: &[u8]) -> bool {
    let mut codec = LengthCodec::default();
    let mut at = 0;
    while let Ok(Some((frame, used))) = codec.decode(&wire[at..]) {
        at += used;
        if frame == Frame::Ping {
            return true;
        }
    }
    false
}

fn raw_core(rounds: u64) -> (u64, Duration) {
    let addr: std::net::SocketAddr = "10.0.0.1:6379".parse().unwrap();
    let addrs = [Addr::from(addr)];
    let cfg = Config::default();
    let mut s = Session::new(cfg, Framed::new(LengthCodec::default()), Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    let mut events = 0u64;
    let started = Wall::now();
    let step = Duration::from_millis(10);
    let mut pending: Vec<Input<'_>> = Vec::with_capacity(8);
    let mut wire = Vec::with_capacity(4096);
    let mut pong = Vec::new();
    LengthCodec::default()
        .encode(Frame::Pong, &mut pong)
        .unwrap();
    let mut pongs = Vec::with_capacity(2);
    for r in 0..rounds {
        if r % 4 == 0 {
            // Enqueue a message every fourth round (the payload allocation is the caller's).
            let _ = s.enqueue(now, vec![0u8; 16], Delivery::AtMostOnce);
            events += 1;
        }
        loop {
            match s.poll(now) {
                Action::Resolve { epoch } => pending.push(Input::Resolved {
                    epoch,
                    addrs: &addrs,
                }),
                Action::Dial { epoch, .. } => pending.push(Input::DialOk { epoch }),
                Action::Transmit { epoch } => {
                    wire.clear();
                    s.encode_transmit(&mut wire);
                    pending.push(Input::Written { epoch });
                    if has_ping(&wire) {
                        pongs.push(epoch);
                    }
                }
                Action::Close { epoch, .. } => pending.push(Input::Closed { epoch }),
                Action::Wait { until } => {
                    if pending.is_empty() && pongs.is_empty() {
                        // A timer wake-up: jump to the deadline (or a little ahead).
                        now = until.map_or(now + step, |u| u.min(now + step).max(now));
                        events += 1;
                    }
                    break;
                }
                _ => {}
            }
        }
        for e in pending.drain(..) {
            let _ = s.handle_input(now, e);
            events += 1;
        }
        for epoch in pongs.drain(..) {
            s.handle_read(now, epoch, &pong, pong.len(), &mut |_| {});
            events += 1;
        }
        now = now + step;
    }
    (events, started.elapsed())
}

/// CPU time of this thread (Linux), so a busy shared machine does not hide the real cost;
/// `None` elsewhere.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn main() {
    // Warm up, then measure.
    raw_core(100_000);
    let cpu_start = cpu_time();
    let (events, wall) = raw_core(5_000_000);
    let busy = cpu_start
        .and_then(|s| Some(cpu_time()? - s))
        .unwrap_or(wall);
    println!(
        "raw core: {events} inputs in {:.3} s wall, {:.3} s CPU = {:.1} M core events/s \
         (one session, one core)",
        wall.as_secs_f64(),
        busy.as_secs_f64(),
        events as f64 / busy.as_secs_f64() / 1e6
    );

    let s = Duration::from_secs;
    let faults = FaultSchedule::new(vec![
        Fault::new(FaultKind::Refuse, s(120), s(60)),
        Fault::new(FaultKind::Blackhole, s(360), s(20)),
    ]);
    let scenario = Scenario::new(
        10_000,
        Scenario::sim_config(Policy::DEFAULT.backoff),
        s(600),
    )
    .with_faults(faults)
    .with_workload(Some(Workload::default()))
    .with_seed(1);
    let started = Wall::now();
    let cpu_start = cpu_time();
    let report = Simulation::new(scenario).unwrap().run();
    let wall = started.elapsed();
    let cpu = cpu_start.and_then(|s| Some(cpu_time()? - s));
    let sum = report.summary();
    if let Some(v) = report.violations.first() {
        println!("first invariant violation: {v}");
    }
    let busy = cpu.unwrap_or(wall).as_secs_f64();
    println!(
        "simulator: 10,000 sessions x 10 virtual min in {:.2} s wall, {} CPU; {} core inputs \
         ({:.1} M/s of CPU), {} polls ({:.1} M/s); {} messages, {} dials, {} violations",
        wall.as_secs_f64(),
        cpu.map_or("?".into(), |c| format!("{:.2} s", c.as_secs_f64())),
        report.core_events,
        report.core_events as f64 / busy / 1e6,
        report.polls,
        report.polls as f64 / busy / 1e6,
        sum.messages.enqueued,
        sum.dials,
        sum.violations
    );
}
