//! `redial demo`: a session on redial-tokio rides through the classic faults, live.
//!
//! Everything is in-process and on loopback: a line server that answers every request with
//! `+OK <request>` (so outcomes are exact) and a fault proxy between it and the session.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redial_core::{
    AckMode, Backoff, CloseMode, Config, Delivery, DisconnectReason, GiveUp, Heartbeat, Jitter,
    LineCodec, Notification, Outcome, State,
};
use redial_testkit::proxy::{FaultProxy, Mode};
use redial_testkit::servers::LineServer;
use redial_tokio::{Handle, Receipt};

use crate::describe::describe;
use crate::CmdResult;

/// Arguments of `redial demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Shrink every timing about 4× (for CI); the story is the same.
    #[arg(long)]
    fast: bool,
}

/// Timings of the demo, scaled by `--fast`.
struct Pace {
    k: f64,
}

impl Pace {
    fn d(&self, ms: u64) -> Duration {
        Duration::from_millis((ms as f64 * self.k) as u64)
    }
}

/// What the event printer saw, for the summary.
#[derive(Default)]
struct Seen {
    attempts_failed: u32,
    heartbeat_detection: Option<Duration>,
    cut_at: Option<Instant>,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> CmdResult {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(demo(args))
}

fn config(p: &Pace) -> Config {
    Config::default()
        .with_backoff(
            Backoff::new()
                .with_initial(p.d(100))
                .with_cap(p.d(2000))
                .with_jitter(Jitter::Full),
        )
        .with_give_up(GiveUp::NEVER)
        .with_connect_timeout(p.d(1000))
        .with_stable_after(p.d(2000))
        .with_heartbeat(Some(Heartbeat {
            interval: p.d(1000),
            timeout: p.d(1500),
            adaptive_floor: None,
        }))
}

fn say(start: Instant, what: &str) {
    println!("{:>8.3}s  {what}", start.elapsed().as_secs_f64());
}

fn outcome_text(r: &Result<(), redial_tokio::Undelivered>) -> String {
    match r {
        Ok(()) => "delivered".into(),
        Err(u) => match u.outcome {
            Outcome::InDoubt => "IN DOUBT (handed back, not resent)".into(),
            o => format!("{o:?}"),
        },
    }
}

async fn settle(start: Instant, label: &str, r: Receipt) -> Result<(), redial_tokio::Undelivered> {
    let r = r.await;
    say(
        start,
        &format!("outcome    {label:<22} {}", outcome_text(&r)),
    );
    r
}

async fn wait_state(h: &Handle, want: State, limit: Duration) -> CmdResult {
    let t = Instant::now();
    while h.state() != want {
        if t.elapsed() > limit {
            return Err(format!("session did not reach {want:?} within {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn demo(args: DemoArgs) -> CmdResult {
    let p = Pace {
        k: if args.fast { 0.25 } else { 1.0 },
    };
    let cfg = config(&p);
    let hb = cfg.heartbeat.expect("on");
    let server = LineServer::start();
    server.set_reply(Some("+OK "));
    let proxy = FaultProxy::start(server.addr());
    proxy.set_mode(Mode::Refuse);
    let start = Instant::now();

    println!(
        "redial demo: line server {} behind fault proxy {}",
        server.addr(),
        proxy.addr()
    );
    println!(
        "policy: backoff {} ms x2 capped at {} ms, full jitter; heartbeat {} ms + {} ms; replies ack requests\n",
        cfg.backoff.initial.as_millis(),
        cfg.backoff.cap.as_millis(),
        hb.interval.as_millis(),
        hb.timeout.as_millis()
    );

    let (handle, _inbound, mut events) = redial_tokio::builder(proxy.addr())
        .config(cfg)
        .codec(LineCodec::plain())
        .acks(AckMode::InOrder)
        .spawn()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let printer = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                let mut s = seen.lock().expect("printer");
                match e.notification {
                    Notification::AttemptFailed { .. } => s.attempts_failed += 1,
                    Notification::Disconnected {
                        reason: DisconnectReason::HeartbeatTimeout { .. },
                        ..
                    } => {
                        if let (Some(cut), None) = (s.cut_at, s.heartbeat_detection) {
                            s.heartbeat_detection = Some(cut.elapsed());
                        }
                    }
                    _ => {}
                }
                drop(s);
                if !matches!(e.notification, Notification::Rtt { .. }) {
                    say(start, &describe(&e.notification, e.detail.as_deref()));
                }
            }
        })
    };

    // Act 1: the server is down when the session starts.
    say(
        start,
        "== act 1: server down at start: backoff with jitter, every attempt logged",
    );
    let first = handle.send(b"HELLO".to_vec(), Delivery::Idempotent);
    while seen.lock().expect("seen").attempts_failed < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    say(start, "** server comes up");
    proxy.set_mode(Mode::PassThrough);
    settle(start, "HELLO (queued at start)", first)
        .await
        .map_err(|e| format!("HELLO: {e}"))?;

    // Act 2: a partition that leaves both sockets open.
    tokio::time::sleep(p.d(1500)).await;
    say(
        start,
        "== act 2: partition: packets vanish, both sockets stay open (half-open)",
    );
    seen.lock().expect("seen").cut_at = Some(Instant::now());
    proxy.set_mode(Mode::Blackhole);
    let limit = hb.interval + hb.timeout + p.d(2000);
    let t = Instant::now();
    while seen.lock().expect("seen").heartbeat_detection.is_none() {
        if t.elapsed() > limit {
            return Err("the heartbeat did not detect the partition".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let detected = seen.lock().expect("seen").heartbeat_detection.expect("set");
    say(start, &format!(
        "** dead peer found {:.2}s after the cut (bound: interval + timeout = {:.2}s); a plain socket would wait for hours",
        detected.as_secs_f64(),
        (hb.interval + hb.timeout).as_secs_f64()
    ));
    tokio::time::sleep(p.d(500)).await;
    say(start, "** partition heals");
    proxy.set_mode(Mode::PassThrough);
    settle(
        start,
        "AFTER-HEAL",
        handle.send(b"AFTER-HEAL".to_vec(), Delivery::Idempotent),
    )
    .await
    .map_err(|e| format!("after heal: {e}"))?;

    // Act 3: the server restarts; messages sent meanwhile wait in the queue.
    tokio::time::sleep(p.d(1000)).await;
    say(
        start,
        "== act 3: server restart: messages queue while it is down, flushed in order",
    );
    // The proxy stands for the network: with the server gone, its port refuses connections.
    server.stop();
    proxy.set_mode(Mode::Refuse);
    // (A line sent before the EOF is read would be written to the dying socket and come back
    // in doubt — act 4 shows that case on purpose.)
    let t = Instant::now();
    while handle.state() == State::Connected {
        if t.elapsed() > p.d(10_000) {
            return Err("the session never noticed the server going away".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let queued: Vec<(String, Receipt)> = (1..=3)
        .map(|i| {
            let m = format!("SET k{i} v{i}");
            say(start, &format!("send       {m:<22} (server down: queued)"));
            (m.clone(), handle.send(m.into_bytes(), Delivery::AtMostOnce))
        })
        .collect();
    tokio::time::sleep(p.d(2000)).await;
    say(start, "** server is back");
    server.start_again();
    proxy.set_mode(Mode::PassThrough);
    for (m, r) in queued {
        settle(start, &m, r)
            .await
            .map_err(|e| format!("{m}: {e}"))?;
    }

    // Act 4: a cut while requests are on the wire, unanswered.
    wait_state(&handle, State::Connected, p.d(10_000)).await?;
    tokio::time::sleep(p.d(1000)).await;
    say(
        start,
        "== act 4: connection cut while requests are unanswered",
    );
    server.set_silent(true);
    let before = server.received().len();
    let transfer = handle.send(b"TRANSFER 100 alice bob".to_vec(), Delivery::AtMostOnce);
    let balance = handle.send(b"GET balance".to_vec(), Delivery::Idempotent);
    let t = Instant::now();
    while server.received().len() < before + 2 {
        if t.elapsed() > p.d(10_000) {
            return Err("requests never reached the server".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    say(
        start,
        "** server got both requests, replies never come; connection reset",
    );
    // The two replies were swallowed already; the next connection's replies flow again.
    server.set_silent(false);
    proxy.reset_all();
    let transfer = settle(start, "TRANSFER (at most once)", transfer).await;
    let balance = settle(start, "GET balance (idempotent)", balance).await;

    handle.close(CloseMode::Graceful { drain: p.d(2000) }).await;
    let stats = handle.stats();
    drop(handle);
    let _ = printer.await;

    let log = server.received();
    let transfers = log.iter().filter(|l| l.starts_with("TRANSFER")).count();
    let balances = log.iter().filter(|l| l.starts_with("GET balance")).count();
    let in_doubt = matches!(&transfer, Err(u) if u.outcome == Outcome::InDoubt);
    let detected_ok = detected <= hb.interval + hb.timeout + p.d(500);
    println!("\nsummary after {:.1}s", start.elapsed().as_secs_f64());
    println!(
        "  attempts {}  failures {}  connects {}  reconnects {}",
        stats.attempts, stats.failures, stats.connects, stats.reconnects
    );
    println!(
        "  heartbeat detection {:.2}s (bound {:.2}s)",
        detected.as_secs_f64(),
        (hb.interval + hb.timeout).as_secs_f64()
    );
    println!(
        "  messages: delivered {}  in doubt {}  abandoned {}  rejected {}  replayed {}",
        stats.delivered, stats.in_doubt, stats.abandoned, stats.rejected, stats.replayed
    );
    println!("  server saw TRANSFER {transfers}x (never resent), GET balance {balances}x (replayed after the cut)");
    let ok = in_doubt && transfers == 1 && balance.is_ok() && balances == 2 && detected_ok;
    println!("RESULT: {}", if ok { "ok" } else { "UNEXPECTED" });
    if ok {
        Ok(())
    } else {
        Err("the demo did not go as expected (see above)".into())
    }
}
