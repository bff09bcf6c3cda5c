//! Dead-peer detection through the fault proxy's blackhole (section 3), and recovery after
//! a server restart side by side with stubborn-io (section 4).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redial_tests::proxy::{FaultProxy, Mode};
use redial_tests::servers::LenServer;
use redial_tokio::{
    Backoff, CloseMode, Config, Delivery, DisconnectReason, GiveUp, Heartbeat, LengthCodec,
    Notification,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tput::header;

pub struct Detection {
    pub interval: Duration,
    pub timeout: Duration,
    /// Blackhole start → redial's heartbeat-timeout disconnect, per trial (ms).
    pub redial_ms: Vec<f64>,
    /// Trials in which a plain tokio stream noticed anything within `window`.
    pub raw_detected: usize,
    pub window: Duration,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A plain tokio stream through the proxy: writes a frame every 50 ms and reads; true when
/// it sees an error or EOF within `window`.
async fn raw_notices(
    addr: SocketAddr,
    window: Duration,
    ready: tokio::sync::oneshot::Sender<()>,
) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return true;
    };
    let _ = ready.send(());
    let mut frame = header(8).to_vec();
    frame.extend_from_slice(&[1u8; 8]);
    let deadline = tokio::time::Instant::now() + window;
    let mut buf = [0u8; 256];
    loop {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        if s.write_all(&frame).await.is_err() {
            return true;
        }
        match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            _ => {}
        }
    }
}

pub fn detection(trials: usize, interval: Duration, timeout: Duration) -> Detection {
    let server = LenServer::start();
    // One proxy for redial, one for the plain stream, blackholed at the same instant.
    let proxy = FaultProxy::start(server.addr());
    let raw_proxy = FaultProxy::start(server.addr());
    let window = 2 * (interval + timeout);
    let cfg = Config::default()
        .with_heartbeat(Some(Heartbeat {
            interval,
            timeout,
            adaptive_floor: None,
        }))
        .with_stable_after(Duration::from_millis(100))
        .with_give_up(GiveUp::NEVER)
        .with_backoff(Backoff::new().with_initial(Duration::from_millis(20)));
    rt().block_on(async {
        let (h, _inbound, mut events) = redial_tokio::builder(proxy.addr())
            .config(cfg)
            .codec(LengthCodec::default())
            .spawn()
            .expect("spawn");
        let mut redial_ms = Vec::new();
        let mut raw_detected = 0;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..trials {
            proxy.set_mode(Mode::PassThrough);
            raw_proxy.set_mode(Mode::PassThrough);
            // Wait for a connection made while passing through.
            let current = loop {
                let ev = events.next().await.expect("events");
                if let Notification::Connected { epoch, .. } = ev.notification {
                    break epoch;
                }
            };
            let (rtx, rrx) = tokio::sync::oneshot::channel();
            let raw = tokio::spawn(raw_notices(raw_proxy.addr(), window, rtx));
            let _ = rrx.await;
            // A pseudo-random phase against the heartbeat schedule (stays above stable_after).
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let phase = 150 + seed % interval.as_millis().max(1) as u64;
            tokio::time::sleep(Duration::from_millis(phase)).await;
            drop(h.send(vec![1u8; 8], Delivery::AtMostOnce));
            proxy.set_mode(Mode::Blackhole);
            raw_proxy.set_mode(Mode::Blackhole);
            let t0 = Instant::now();
            loop {
                let ev = events.next().await.expect("events");
                match ev.notification {
                    Notification::Disconnected { epoch, reason, .. } if epoch == current => {
                        assert!(
                            matches!(reason, DisconnectReason::HeartbeatTimeout { .. }),
                            "unexpected disconnect: {reason}"
                        );
                        redial_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                        break;
                    }
                    _ => {}
                }
            }
            // Heal at once, so the next connection is a real one.
            proxy.set_mode(Mode::PassThrough);
            if raw.await.unwrap_or(true) {
                raw_detected += 1;
            }
        }
        h.close(CloseMode::Immediate).await;
        Detection {
            interval,
            timeout,
            redial_ms,
            raw_detected,
            window,
        }
    })
}

pub struct Recovery {
    /// Restart → redial's next scheduled attempt (ms), per round.
    pub scheduled_ms: Vec<f64>,
    /// Restart → redial's first delivered message (ms).
    pub redial_ms: Vec<f64>,
    /// Restart → stubborn-io's first completed write (ms); `None`: not within the wait.
    pub stubborn_ms: Vec<Option<f64>>,
    pub down: Duration,
    pub wait: Duration,
}

type Stamp = Arc<Mutex<Option<Instant>>>;

fn stamp_after(s: &Stamp, after: &Arc<Mutex<Option<Instant>>>) {
    let now = Instant::now();
    if let Some(a) = *after.lock().expect("lock") {
        if now >= a {
            let mut g = s.lock().expect("lock");
            if g.is_none() {
                *g = Some(now);
            }
        }
    }
}

/// Server down `down`, then back: restart → first delivery, for redial-tokio (default
/// policy) and stubborn-io (defaults), in the same rounds against the same server.
pub fn recovery(rounds: usize, down: Duration, wait: Duration) -> Recovery {
    let server = LenServer::start();
    let addr = server.addr();
    let mut out = Recovery {
        scheduled_ms: Vec::new(),
        redial_ms: Vec::new(),
        stubborn_ms: Vec::new(),
        down,
        wait,
    };
    for _ in 0..rounds {
        server.start_again();
        rt().block_on(async {
            let restart: Stamp = Arc::new(Mutex::new(None));
            let redial_first: Stamp = Arc::new(Mutex::new(None));
            let stub_first: Stamp = Arc::new(Mutex::new(None));
            let schedule: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));

            let (h, _inbound, mut events) = redial_tokio::builder(addr)
                .config(Config::default())
                .codec(LengthCodec::default())
                .spawn()
                .expect("spawn");
            let sched = schedule.clone();
            let ev_task = tokio::spawn(async move {
                while let Some(ev) = events.next().await {
                    let next = match ev.notification {
                        Notification::Disconnected { next_delay, .. }
                        | Notification::AttemptFailed { next_delay, .. } => next_delay,
                        _ => None,
                    };
                    if let Some(d) = next {
                        sched.lock().expect("lock").push(Instant::now() + d);
                    }
                }
            });
            let stub = stubborn_io::StubbornTcpStream::connect(addr)
                .await
                .expect("stubborn connect");
            // Redial sender: a message every 10 ms, receipts stamped when delivered.
            let (rs, rf, hh) = (restart.clone(), redial_first.clone(), h.clone());
            let sender = tokio::spawn(async move {
                loop {
                    let r = hh.send(vec![3u8; 16], Delivery::AtMostOnce);
                    let (rs, rf) = (rs.clone(), rf.clone());
                    tokio::spawn(async move {
                        if r.await.is_ok() {
                            stamp_after(&rf, &rs);
                        }
                    });
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
            // stubborn-io writer: a frame every 10 ms; a write completes once connected.
            let (rs, sf) = (restart.clone(), stub_first.clone());
            let stub_task = tokio::spawn(async move {
                let mut s = stub;
                let mut frame = header(16).to_vec();
                frame.extend_from_slice(&[3u8; 16]);
                loop {
                    if s.write_all(&frame).await.is_ok() && s.flush().await.is_ok() {
                        stamp_after(&sf, &rs);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            server.stop();
            tokio::time::sleep(down).await;
            server.start_again();
            let t_restart = Instant::now();
            *restart.lock().expect("lock") = Some(t_restart);
            let deadline = t_restart + wait;
            while Instant::now() < deadline
                && (redial_first.lock().expect("lock").is_none()
                    || stub_first.lock().expect("lock").is_none())
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let ms = |t: Option<Instant>| t.map(|t| (t - t_restart).as_secs_f64() * 1e3);
            let next = schedule
                .lock()
                .expect("lock")
                .iter()
                .copied()
                .filter(|t| *t >= t_restart)
                .min();
            out.scheduled_ms.push(ms(next).unwrap_or(f64::NAN));
            out.redial_ms
                .push(ms(*redial_first.lock().expect("lock")).unwrap_or(f64::NAN));
            out.stubborn_ms.push(ms(*stub_first.lock().expect("lock")));
            sender.abort();
            stub_task.abort();
            h.close(CloseMode::Immediate).await;
            ev_task.abort();
        });
    }
    out
}
