//! Scenarios generic over [`Runtime`], shared by the adapters' own tests (included with
//! `#[path]`), with a tiny std-thread line server.
//!
//! Every scenario is `async fn name<R: Runtime>(rt: R)`; an adapter runs it with its own
//! `block_on`. The session runs wherever `R::spawn` puts it.

#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use futures::future::{select, Either};
use futures::StreamExt;
use redial_driver::{
    AbandonReason, Backoff, Builder, CloseMode, Config, ConfigError, Delivery, DisconnectReason,
    GiveUp, GiveUpWhen, Heartbeat, Jitter, Notification, Outcome, RejectReason, Runtime,
    SessionEvent, State,
};

/// A line server: answers `PING` with `PONG`, echoes other lines as `echo:<line>` and logs
/// them. It can be muted (reads, answers nothing), killed and restarted on the same port.
pub struct LineServer {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    log: Mutex<Vec<String>>,
    conns: Mutex<Vec<TcpStream>>,
    muted: AtomicBool,
    stalled: AtomicBool,
    stopped: AtomicBool,
    accepted: Mutex<u64>,
}

impl LineServer {
    pub fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let s = LineServer {
            addr,
            inner: Arc::default(),
        };
        s.serve(l);
        s
    }

    fn serve(&self, l: TcpListener) {
        l.set_nonblocking(true).unwrap();
        let inner = Arc::clone(&self.inner);
        thread::spawn(move || loop {
            if inner.stopped.load(SeqCst) {
                return;
            }
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    *inner.accepted.lock().unwrap() += 1;
                    inner.conns.lock().unwrap().push(s.try_clone().unwrap());
                    let inner = Arc::clone(&inner);
                    thread::spawn(move || serve_conn(s, &inner));
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        });
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Lines received (not PING/PONG).
    pub fn log(&self) -> Vec<String> {
        self.inner.log.lock().unwrap().clone()
    }

    pub fn accepted(&self) -> u64 {
        *self.inner.accepted.lock().unwrap()
    }

    pub fn mute(&self, on: bool) {
        self.inner.muted.store(on, SeqCst);
    }

    /// Stops reading from connections (their receive buffers fill up).
    pub fn stall(&self, on: bool) {
        self.inner.stalled.store(on, SeqCst);
    }

    /// Sends `line` to every live connection.
    pub fn push(&self, line: &str) {
        for c in self.inner.conns.lock().unwrap().iter_mut() {
            let _ = c.write_all(format!("{line}\r\n").as_bytes());
        }
    }

    /// Stops listening and closes every connection.
    pub fn kill(&self) {
        self.inner.stopped.store(true, SeqCst);
        for c in self.inner.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        thread::sleep(Duration::from_millis(20));
    }

    /// Listens again on the same port.
    pub fn restart(&self) {
        self.inner.stopped.store(false, SeqCst);
        let l = TcpListener::bind(self.addr).unwrap();
        self.serve(l);
    }
}

fn serve_conn(s: TcpStream, inner: &Inner) {
    let mut w = s.try_clone().unwrap();
    let mut lines = BufReader::new(s).lines();
    loop {
        while inner.stalled.load(SeqCst) && !inner.stopped.load(SeqCst) {
            thread::sleep(Duration::from_millis(5));
        }
        let Some(line) = lines.next() else { return };
        let Ok(line) = line else { return };
        if inner.stopped.load(SeqCst) {
            return;
        }
        if inner.muted.load(SeqCst) {
            continue;
        }
        let reply = match line.as_str() {
            "PING" => "PONG".to_owned(),
            "PONG" => {
                inner.log.lock().unwrap().push(line);
                continue;
            }
            _ => {
                let r = format!("echo:{line}");
                inner.log.lock().unwrap().push(line);
                r
            }
        };
        // Keep reading after a failed write: the client may have closed its side already.
        let _ = w.write_all(format!("{reply}\r\n").as_bytes());
    }
}

/// `f`, or `None` after `d` on the runtime's clock.
pub async fn timeout<R: Runtime, F: Future>(rt: &R, d: Duration, f: F) -> Option<F::Output> {
    let sleep = pin!(rt.sleep_until(rt.now() + d));
    match select(pin!(f), sleep).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(_) => None,
    }
}

/// Polls `cond` every 10 ms until it holds (panics after 5 s).
pub async fn wait_for<R: Runtime>(rt: &R, what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        sleep(rt, Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

pub async fn sleep<R: Runtime>(rt: &R, d: Duration) {
    rt.sleep_until(rt.now() + d).await;
}

/// Fast policy for tests: 20 ms backoff without jitter, 200 ms + 200 ms heartbeat.
pub fn fast() -> Config {
    Config::default()
        .with_backoff(
            Backoff::new()
                .with_initial(Duration::from_millis(20))
                .with_cap(Duration::from_millis(100))
                .with_jitter(Jitter::None),
        )
        .with_heartbeat(Some(Heartbeat {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(200),
            adaptive_floor: None,
        }))
        .with_connect_timeout(Duration::from_secs(2))
        .with_close_timeout(Duration::from_millis(100))
}

/// Waits for the first event matching `f`.
pub async fn wait_event<R: Runtime>(
    rt: &R,
    events: &mut redial_driver::Events,
    what: &str,
    f: impl Fn(&SessionEvent) -> bool,
) -> SessionEvent {
    let found = timeout(rt, Duration::from_secs(5), async {
        while let Some(e) = events.next().await {
            if f(&e) {
                return Some(e);
            }
        }
        None
    })
    .await;
    found.flatten().unwrap_or_else(|| panic!("no {what} event"))
}

fn is_connected(e: &SessionEvent) -> bool {
    matches!(e.notification, Notification::Connected { .. })
}

pub async fn connect_send_receive<R: Runtime>(rt: R) {
    let server = LineServer::start();
    let (h, mut inbound, mut events) = Builder::new(rt.clone(), server.addr())
        .config(fast())
        .spawn()
        .unwrap();
    let r1 = h.send(b"hello".to_vec(), Delivery::AtMostOnce);
    let r2 = h.send(b"world".to_vec(), Delivery::Idempotent);
    assert_eq!(timeout(&rt, Duration::from_secs(5), r1).await, Some(Ok(())));
    assert_eq!(timeout(&rt, Duration::from_secs(5), r2).await, Some(Ok(())));
    let a = timeout(&rt, Duration::from_secs(5), inbound.next()).await;
    let b = timeout(&rt, Duration::from_secs(5), inbound.next()).await;
    assert_eq!(a.flatten().as_deref(), Some(&b"echo:hello"[..]));
    assert_eq!(b.flatten().as_deref(), Some(&b"echo:world"[..]));
    wait_for(&rt, "two lines", || server.log().len() == 2).await;
    assert_eq!(server.log(), ["hello", "world"]);
    wait_event(&rt, &mut events, "connected", is_connected).await;
    assert_eq!(h.state(), State::Connected);
    assert_eq!(h.stats().delivered, 2);
    // A line payload with a line break cannot be framed: handed back at once.
    let bad = h
        .send(b"a\nb".to_vec(), Delivery::AtMostOnce)
        .await
        .unwrap_err();
    assert!(bad.frame_error.is_some());
    assert_eq!(bad.payload, b"a\nb");
    timeout(&rt, Duration::from_secs(5), h.close(CloseMode::Immediate))
        .await
        .expect("closed");
    assert_eq!(h.state(), State::Closed);
    assert!(timeout(&rt, Duration::from_secs(5), inbound.next())
        .await
        .unwrap()
        .is_none());
    let late = h
        .send(b"late".to_vec(), Delivery::AtMostOnce)
        .await
        .unwrap_err();
    assert_eq!(late.outcome, Outcome::Rejected(RejectReason::Closed));
    assert_eq!(late.payload, b"late");
}

pub async fn ping_pong_keeps_idle_connection<R: Runtime>(rt: R) {
    let server = LineServer::start();
    let (h, _inbound, mut events) = Builder::new(rt.clone(), server.addr())
        .config(fast())
        .spawn()
        .unwrap();
    wait_event(&rt, &mut events, "connected", is_connected).await;
    wait_for(&rt, "accept", || server.accepted() == 1).await;
    // Peer PING is answered with PONG.
    server.push("PING");
    sleep(&rt, Duration::from_millis(1000)).await;
    let s = h.stats();
    assert!(s.pings >= 3, "{s:?}");
    assert!(s.pongs >= 3, "{s:?}");
    assert!(s.rtt.is_some());
    assert_eq!(s.liveness_timeouts, 0);
    assert_eq!(s.connects, 1);
    assert_eq!(h.state(), State::Connected);
    wait_for(&rt, "PONG to the server's PING", || {
        server.log().iter().any(|l| l == "PONG")
    })
    .await;
    // A silent peer is declared dead by interval + timeout.
    server.mute(true);
    let e = wait_event(&rt, &mut events, "disconnected", |e| {
        matches!(e.notification, Notification::Disconnected { .. })
    })
    .await;
    assert!(matches!(
        e.notification,
        Notification::Disconnected {
            reason: DisconnectReason::HeartbeatTimeout { .. },
            ..
        }
    ));
    server.mute(false);
    wait_event(&rt, &mut events, "reconnected", is_connected).await;
    h.close(CloseMode::Immediate).await;
}

pub async fn restart_reconnects_and_flushes_in_order<R: Runtime>(rt: R) {
    let server = LineServer::start();
    let (h, _inbound, mut events) = Builder::new(rt.clone(), server.addr())
        .config(fast())
        .spawn()
        .unwrap();
    assert_eq!(
        timeout(
            &rt,
            Duration::from_secs(5),
            h.send(b"one".to_vec(), Delivery::AtMostOnce)
        )
        .await,
        Some(Ok(()))
    );
    wait_for(&rt, "first line", || server.log().len() == 1).await;
    server.kill();
    wait_event(&rt, &mut events, "disconnected", |e| {
        matches!(e.notification, Notification::Disconnected { .. })
    })
    .await;
    // Down: attempts fail with the OS error text.
    let failed = wait_event(&rt, &mut events, "attempt failed", |e| {
        matches!(e.notification, Notification::AttemptFailed { .. })
    })
    .await;
    assert!(failed.detail.is_some(), "{failed:?}");
    let queued: Vec<_> = (0..5)
        .map(|i| h.send(format!("m{i}").into_bytes(), Delivery::AtMostOnce))
        .collect();
    server.restart();
    for r in queued {
        assert_eq!(timeout(&rt, Duration::from_secs(5), r).await, Some(Ok(())));
    }
    wait_for(&rt, "all lines", || server.log().len() == 6).await;
    assert_eq!(server.log(), ["one", "m0", "m1", "m2", "m3", "m4"]);
    assert!(h.stats().reconnects >= 1);
    assert!(server.accepted() >= 2);
    h.close(CloseMode::Immediate).await;
}

pub async fn gives_up_and_abandons<R: Runtime>(rt: R) {
    // A port nothing listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = fast().with_give_up(GiveUp {
        max_failures: Some(3),
        max_elapsed: None,
        when: GiveUpWhen::Either,
    });
    let (h, mut inbound, mut events) = Builder::new(rt.clone(), addr).config(cfg).spawn().unwrap();
    let r = h.send(b"never".to_vec(), Delivery::AtMostOnce);
    let u = timeout(&rt, Duration::from_secs(5), r)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(u.outcome, Outcome::Abandoned(AbandonReason::GaveUp));
    assert_eq!(u.payload, b"never");
    let mut all = Vec::new();
    while let Some(e) = timeout(&rt, Duration::from_secs(5), events.next())
        .await
        .unwrap()
    {
        all.push(e);
    }
    let fails: Vec<_> = all
        .iter()
        .filter(|e| matches!(e.notification, Notification::AttemptFailed { .. }))
        .collect();
    assert_eq!(fails.len(), 3, "{all:?}");
    assert!(fails[0]
        .detail
        .as_deref()
        .unwrap()
        .to_lowercase()
        .contains("refused"));
    assert!(all
        .iter()
        .any(|e| matches!(e.notification, Notification::GaveUp { .. })));
    assert!(timeout(&rt, Duration::from_secs(5), inbound.next())
        .await
        .unwrap()
        .is_none());
    assert_eq!(h.state(), State::Closed);
}

/// An `Events` kept but never read holds at most its capacity: the oldest events are
/// dropped, and the first event read then counts them in `missed`.
pub async fn events_are_bounded<R: Runtime>(rt: R) {
    // A port nothing listens on: every attempt fails at once, a few events each.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = fast().with_backoff(
        Backoff::new()
            .with_initial(Duration::from_millis(1))
            .with_cap(Duration::from_millis(1))
            .with_jitter(Jitter::None),
    );
    let (h, _inbound, mut events) = Builder::new(rt.clone(), addr)
        .config(cfg)
        .event_capacity(8)
        .spawn()
        .unwrap();
    wait_for(&rt, "20 failed attempts", || h.stats().failures >= 20).await;
    timeout(&rt, Duration::from_secs(5), h.close(CloseMode::Immediate))
        .await
        .expect("closed");
    let mut all = Vec::new();
    while let Some(e) = timeout(&rt, Duration::from_secs(5), events.next())
        .await
        .expect("the stream ends")
    {
        all.push(e);
    }
    assert!(all.len() <= 8, "{} events kept: {all:?}", all.len());
    // 20 attempts are far more than 8 events (attempt started + failed each).
    assert!(all[0].missed >= 32, "{all:?}");
    assert!(all[1..].iter().all(|e| e.missed == 0), "{all:?}");
    assert!(matches!(
        all.last().unwrap().notification,
        Notification::StateChanged {
            to: State::Closed,
            ..
        }
    ));
}

pub async fn bad_config_fails_before_spawn<R: Runtime>(rt: R) {
    let cfg = Config::default().with_connect_timeout(Duration::ZERO);
    let e = Builder::new(rt.clone(), "127.0.0.1:1")
        .config(cfg)
        .spawn()
        .unwrap_err();
    assert_eq!(e, ConfigError::ZeroDuration("connect_timeout"));
    let e = Builder::new(rt, Vec::<SocketAddr>::new())
        .spawn()
        .unwrap_err();
    assert_eq!(e, ConfigError::NoAddresses);
}

pub async fn hostname_is_resolved<R: Runtime>(rt: R) {
    let server = LineServer::start();
    let target = format!("localhost:{}", server.addr().port());
    let (h, _i, mut events) = Builder::new(rt.clone(), target)
        .config(fast())
        .spawn()
        .unwrap();
    // localhost may resolve to ::1 first; the core rotates, so some attempt connects.
    wait_event(&rt, &mut events, "connected", is_connected).await;
    h.close(CloseMode::Immediate).await;
}

pub async fn dropping_handles_closes<R: Runtime>(rt: R) {
    let server = LineServer::start();
    let (h, mut inbound, mut events) = Builder::new(rt.clone(), server.addr())
        .config(fast())
        .spawn()
        .unwrap();
    let r = h.send(b"bye".to_vec(), Delivery::AtMostOnce);
    drop(h);
    assert_eq!(timeout(&rt, Duration::from_secs(5), r).await, Some(Ok(())));
    assert!(timeout(&rt, Duration::from_secs(5), inbound.next())
        .await
        .is_some());
    let ended = timeout(&rt, Duration::from_secs(5), async {
        while events.next().await.is_some() {}
    })
    .await;
    assert!(
        ended.is_some(),
        "event stream ends after the last handle is dropped"
    );
    wait_for(&rt, "bye", || server.log() == ["bye"]).await;
}

pub async fn graceful_close_drains<R: Runtime>(rt: R) {
    let server = LineServer::start();
    let (h, _i, _e) = Builder::new(rt.clone(), server.addr())
        .config(fast())
        .spawn()
        .unwrap();
    let receipts: Vec<_> = (0..50)
        .map(|i| h.send(format!("g{i}").into_bytes(), Delivery::AtMostOnce))
        .collect();
    timeout(
        &rt,
        Duration::from_secs(5),
        h.close_graceful(Duration::from_secs(3)),
    )
    .await
    .expect("drained");
    for r in receipts {
        assert_eq!(r.await, Ok(()));
    }
    wait_for(&rt, "50 lines", || server.log().len() == 50).await;
}

/// CPU time (user + system) of this process, from `/proc/self/stat`, in clock ticks.
#[cfg(target_os = "linux")]
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// An idle connected session (heartbeat off) wakes for nothing: about zero CPU over 2 s.
#[cfg(target_os = "linux")]
pub async fn idle_session_uses_no_cpu<R: Runtime>(rt: R) {
    let server = LineServer::start();
    let (h, _i, mut events) = Builder::new(rt.clone(), server.addr())
        .config(fast().with_heartbeat(None))
        .spawn()
        .unwrap();
    wait_event(&rt, &mut events, "connected", is_connected).await;
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks() - before;
    // Ticks are usually 10 ms: allow a few for the test harness and the server threads.
    assert!(used <= 5, "an idle session used {used} ticks of CPU in 2 s");
    assert_eq!(h.state(), State::Connected);
    h.close(CloseMode::Immediate).await;
}

/// A `Write` into shared memory, for capturing a recorded trace.
#[cfg(feature = "record")]
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

#[cfg(feature = "record")]
impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Records a real session through a server restart and a heartbeat timeout, then proves the
/// replay on a fresh core takes exactly the recorded decisions.
#[cfg(feature = "record")]
pub async fn record_then_replay_is_identical<R: Runtime>(rt: R) {
    let server = LineServer::start();
    let buf = SharedBuf::default();
    let (h, _i, mut events) = Builder::new(rt.clone(), server.addr())
        .config(fast())
        .record(buf.clone())
        .spawn()
        .unwrap();
    assert_eq!(h.send(b"one".to_vec(), Delivery::AtMostOnce).await, Ok(()));
    let mut batch = redial_driver::Batch::new();
    batch.push(b"b1");
    batch.push(b"the longer b2");
    assert_eq!(
        h.send_batch(batch.clone(), Delivery::AtMostOnce).await,
        Ok(())
    );
    wait_for(&rt, "first lines", || server.log().len() == 3).await;
    server.kill();
    let _queued = h.send(b"two".to_vec(), Delivery::Idempotent);
    let _queued_batch = h.send_batch(batch, Delivery::Idempotent);
    wait_event(&rt, &mut events, "attempt failed", |e| {
        matches!(e.notification, Notification::AttemptFailed { .. })
    })
    .await;
    server.restart();
    wait_event(&rt, &mut events, "reconnected", is_connected).await;
    server.mute(true);
    wait_event(&rt, &mut events, "heartbeat timeout", |e| {
        matches!(e.notification, Notification::Disconnected { .. })
    })
    .await;
    h.close(CloseMode::Immediate).await;
    let trace = buf.0.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&trace);
    assert_eq!(
        text.matches(r#""batch":[2,13]"#).count(),
        2,
        "both batches recorded with their shape"
    );
    let replayed = redial_driver::trace::replay(&trace[..]).unwrap();
    assert!(replayed.recorded.len() > 20, "{}", replayed.recorded.len());
    assert_eq!(replayed.actions.len(), replayed.recorded.len());
    assert_eq!(
        replayed.first_mismatch(),
        None,
        "{}",
        String::from_utf8_lossy(&trace)
    );
}

/// A user connector creates every socket (here on a fresh thread, as a test in a network
/// namespace would); the session task itself is run by the caller via `build()`.
pub async fn connector_and_build<R: Runtime>(
    rt: R,
    run_task: impl FnOnce(redial_driver::SessionTask),
) {
    let server = LineServer::start();
    let calls = Arc::new(Mutex::new(0u32));
    let c = Arc::clone(&calls);
    let (h, mut inbound, _e, task) = Builder::new(rt.clone(), server.addr())
        .config(fast())
        .connector(move |addr| {
            *c.lock().unwrap() += 1;
            let (tx, rx) = futures::channel::oneshot::channel();
            thread::spawn(move || {
                let _ = tx.send(TcpStream::connect(addr));
            });
            Box::pin(async move {
                rx.await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::Other.into()))
            })
        })
        .build()
        .unwrap();
    run_task(task);
    assert_eq!(
        timeout(
            &rt,
            Duration::from_secs(5),
            h.send(b"via".to_vec(), Delivery::AtMostOnce)
        )
        .await,
        Some(Ok(()))
    );
    let echo = timeout(&rt, Duration::from_secs(5), inbound.next())
        .await
        .flatten();
    assert_eq!(echo.as_deref(), Some(&b"echo:via"[..]));
    assert_eq!(*calls.lock().unwrap(), 1);
    h.close(CloseMode::Immediate).await;
}

/// An oversized inbound line closes that connection with a typed error; the session
/// reconnects.
pub async fn oversized_frame_recovers<R: Runtime>(rt: R) {
    let server = LineServer::start();
    let (h, _i, mut events) = Builder::new(rt.clone(), server.addr())
        .config(fast())
        .codec(redial_driver::LineCodec::plain().with_max_line(16))
        .spawn()
        .unwrap();
    wait_event(&rt, &mut events, "connected", is_connected).await;
    wait_for(&rt, "accept", || server.accepted() == 1).await;
    server.push(&"x".repeat(100));
    let e = wait_event(&rt, &mut events, "disconnected", |e| {
        matches!(e.notification, Notification::Disconnected { .. })
    })
    .await;
    assert!(
        matches!(
            e.notification,
            Notification::Disconnected {
                reason: DisconnectReason::Protocol(redial_driver::FrameError::TooLarge { .. }),
                ..
            }
        ),
        "{e:?}"
    );
    wait_event(&rt, &mut events, "reconnected", is_connected).await;
    h.close(CloseMode::Immediate).await;
}

/// With per-reply acks a message is delivered by its reply; one written but unanswered
/// when the connection dies comes back in doubt.
pub async fn in_order_acks_and_in_doubt<R: Runtime>(rt: R) {
    let server = LineServer::start();
    let (h, _i, mut events) = Builder::new(rt.clone(), server.addr())
        .config(fast().with_heartbeat(None))
        .acks(redial_driver::AckMode::InOrder)
        .spawn()
        .unwrap();
    let a = h.send(b"a".to_vec(), Delivery::AtMostOnce);
    assert_eq!(timeout(&rt, Duration::from_secs(5), a).await, Some(Ok(())));
    server.mute(true);
    let b = h.send(b"b".to_vec(), Delivery::AtMostOnce);
    wait_for(&rt, "b written", || {
        h.stats().delivered == 1 && h.stats().bytes_read > 0
    })
    .await;
    sleep(&rt, Duration::from_millis(100)).await;
    server.kill();
    let u = timeout(&rt, Duration::from_secs(5), b)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(u.outcome, Outcome::InDoubt);
    assert_eq!(u.payload, b"b");
    wait_event(&rt, &mut events, "disconnected", |e| {
        matches!(e.notification, Notification::Disconnected { .. })
    })
    .await;
    h.close(CloseMode::Immediate).await;
}

/// A write stuck on a peer that stopped reading never stops reads (a line the peer sends
/// still arrives) and is killed by the write deadline.
pub async fn blocked_write_keeps_reading_and_times_out<R: Runtime>(rt: R) {
    let server = LineServer::start();
    server.stall(true);
    let cfg = fast()
        .with_heartbeat(None)
        .with_write_timeout(Some(Duration::from_millis(500)))
        .with_queue(redial_driver::QueueLimits {
            max_messages: 4096,
            max_bytes: 64 << 20,
            max_message: 64 << 10,
            overflow: redial_driver::Overflow::Reject,
        });
    let (h, mut inbound, mut events) = Builder::new(rt.clone(), server.addr())
        .config(cfg)
        .spawn()
        .unwrap();
    wait_event(&rt, &mut events, "connected", is_connected).await;
    wait_for(&rt, "accept", || server.accepted() == 1).await;
    let chunk = vec![b'x'; 60 << 10];
    let _receipts: Vec<_> = (0..800)
        .map(|_| h.send(chunk.clone(), Delivery::AtMostOnce))
        .collect();
    sleep(&rt, Duration::from_millis(100)).await;
    server.push("still-reading");
    let got = timeout(&rt, Duration::from_secs(2), inbound.next())
        .await
        .flatten();
    assert_eq!(got.as_deref(), Some(&b"still-reading"[..]));
    let e = wait_event(&rt, &mut events, "write timeout", |e| {
        matches!(e.notification, Notification::Disconnected { .. })
    })
    .await;
    assert!(
        matches!(
            e.notification,
            Notification::Disconnected {
                reason: DisconnectReason::WriteTimeout(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(h.stats().write_timeouts, 1);
    server.kill();
    h.close(CloseMode::Immediate).await;
}
