//! The conformance scenarios that measure the whole process (file descriptors, CPU time), in a
//! binary of their own so no other test's work is counted: 1,000 reconnect cycles leak no
//! descriptors and no tasks; an idle session uses (almost) no CPU, with its heartbeat on (a few
//! PING/PONG round trips) and off (it wakes for nothing at all). Both adapters, one scenario at
//! a time; on redial-blocking a session is a thread, so its threads are counted as tasks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redial_core::{CloseMode, Delivery, Heartbeat, State};
use redial_tests::conformance::fast_config;
use redial_tests::servers::LineServer;
use redial_tests::wait::wait_until;

/// The two scenarios measure the process: never let them overlap.
static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("procfs").count()
}

fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("procfs");
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|x| x.parse().expect("number"))
        .collect();
    // In clock ticks of USER_HZ, which the Linux ABI fixes at 100 for user space.
    Duration::from_millis((f[0] + f[1]) * 10)
}

const CYCLES: u64 = 1000;
const IDLE: Duration = Duration::from_secs(4);
/// 4 s idle with a 1 s heartbeat is ~4 PING/PONG round trips: microseconds of work. Anything
/// near a busy-poll burns the whole 4 s.
const IDLE_CPU_BUDGET: Duration = Duration::from_millis(150);
/// Idle with no heartbeat: the session has no deadline at all, so it must not wake. 2 s of a
/// timer or poll loop would cost far more than this; the budget leaves room for the harness
/// and the server's threads (a few clock ticks).
const SILENT: Duration = Duration::from_secs(2);
const SILENT_CPU_BUDGET: Duration = Duration::from_millis(50);

macro_rules! silent {
    ($name:ident, $krate:ident, $block_on:expr) => {
        #[test]
        fn $name() {
            let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
            let server = LineServer::start();
            let addr = server.addr();
            let block_on = $block_on;
            block_on(async move {
                let (handle, _inbound, _events) = $krate::builder(addr)
                    .config(fast_config().with_heartbeat(None))
                    .spawn()
                    .expect("config");
                handle
                    .send(b"first".to_vec(), Delivery::AtMostOnce)
                    .await
                    .expect("delivered");
                wait_until(Duration::from_secs(10), "the line read", || {
                    server.received() == ["first"]
                });
                let cpu0 = cpu_time();
                sleep(SILENT).await;
                let used = cpu_time().saturating_sub(cpu0);
                eprintln!(
                    "{}: CPU {used:?} over {SILENT:?} idle without heartbeat",
                    stringify!($krate)
                );
                assert!(
                    used <= SILENT_CPU_BUDGET,
                    "an idle session used {used:?} of CPU in {SILENT:?}"
                );
                let stats = handle.stats();
                assert_eq!(handle.state(), State::Connected);
                assert_eq!((stats.connects, stats.pings), (1, 0), "{stats:?}");
                handle.close(CloseMode::Immediate).await;
            });
        }
    };
}

macro_rules! hygiene {
    ($name:ident, $krate:ident, $block_on:expr, $tasks:expr) => {
        hygiene!($name, $krate, $block_on, $tasks, 0);
    };
    // `$own_fds`: descriptors a live session holds besides its socket (redial-blocking: its
    // thread's poller), allowed while it lives, gone after it ends.
    ($name:ident, $krate:ident, $block_on:expr, $tasks:expr, $own_fds:expr) => {
        #[test]
        fn $name() {
            let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
            let server = LineServer::start();
            let addr = server.addr();
            let block_on = $block_on;
            block_on(async move {
                // Warm up: runtimes create their reactor, threads and fds lazily.
                let (warm, _, _) = $krate::builder(addr).spawn().expect("config");
                warm.send(b"warm".to_vec(), Delivery::AtMostOnce).await.expect("delivered");
                warm.close(CloseMode::Immediate).await;
                drop(warm);
                wait_until(Duration::from_secs(10), "warm-up socket closed", || server.live() == 0);
                sleep(Duration::from_millis(50)).await;
                let tasks_before: Option<usize> = $tasks;
                let fds_before = open_fds();
                let cfg = fast_config().with_heartbeat(Some(Heartbeat {
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_secs(2),
                    adaptive_floor: None,
                }));
                let (handle, _inbound, _events) = $krate::builder(addr)
                    .config(cfg)
                    .spawn()
                    .expect("config");
                handle.send(b"first".to_vec(), Delivery::AtMostOnce).await.expect("delivered");
                let t = Instant::now();
                for cycle in 1..=CYCLES {
                    handle.reconnect_now();
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while handle.stats().connects < cycle + 1 {
                        assert!(Instant::now() < deadline, "cycle {cycle} did not reconnect");
                        futures::future::ready(()).await;
                        yield_now().await;
                    }
                }
                eprintln!("{}: {CYCLES} reconnect cycles in {:?}", stringify!($krate), t.elapsed());
                wait_until(Duration::from_secs(10), "old server-side sockets closed", || server.live() == 1);
                // Old sockets may still be closing under load: wait (bounded) rather than sample.
                let deadline = Instant::now() + Duration::from_secs(5);
                let allowed = fds_before + 2 + $own_fds;
                let mut fds_cycled = open_fds();
                while fds_cycled > allowed && Instant::now() < deadline {
                    sleep(Duration::from_millis(10)).await;
                    fds_cycled = open_fds();
                }
                assert!(
                    fds_cycled <= allowed,
                    "{} fds before, {fds_cycled} after {CYCLES} cycles",
                    fds_before
                );

                // Idle: connected, nothing to send. Measure process CPU time.
                assert_eq!(handle.state(), State::Connected);
                let cpu0 = cpu_time();
                let wall0 = Instant::now();
                sleep(IDLE).await;
                let used = cpu_time().saturating_sub(cpu0);
                eprintln!("{}: idle CPU {used:?} over {:?}", stringify!($krate), wall0.elapsed());
                assert!(used <= IDLE_CPU_BUDGET, "idle session used {used:?} of CPU in {IDLE:?}");
                assert_eq!(handle.state(), State::Connected, "heartbeat kept it up");

                handle.close(CloseMode::Immediate).await;
                drop(handle);
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    let fds = open_fds();
                    let tasks: Option<usize> = $tasks;
                    if fds <= fds_before && tasks <= tasks_before {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "leak after close: fds {fds_before} -> {fds}, tasks {tasks_before:?} -> {tasks:?}"
                    );
                    sleep(Duration::from_millis(10)).await;
                }
            });
        }
    };
}

mod tokio_adapter {
    use super::*;

    async fn sleep(d: Duration) {
        tokio::time::sleep(d).await
    }

    async fn yield_now() {
        tokio::task::yield_now().await
    }

    fn runtime() -> impl Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
        |f| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f)
        }
    }

    silent!(
        idle_without_heartbeat_wakes_for_nothing,
        redial_tokio,
        |f| runtime()(Box::pin(f))
    );

    hygiene!(
        reconnect_cycles_leak_nothing_and_idle_is_quiet,
        redial_tokio,
        |f| runtime()(Box::pin(f)),
        Some(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        )
    );
}

mod smol_adapter {
    use super::*;

    async fn sleep(d: Duration) {
        smol::Timer::after(d).await;
    }

    async fn yield_now() {
        smol::future::yield_now().await
    }

    silent!(idle_without_heartbeat_wakes_for_nothing, redial_smol, |f| {
        smol::block_on(f)
    });

    hygiene!(
        reconnect_cycles_leak_nothing_and_idle_is_quiet,
        redial_smol,
        |f| smol::block_on(f),
        None
    );
}

mod blocking_adapter {
    use super::*;

    async fn sleep(d: Duration) {
        redial_blocking::Sleep::until(Instant::now() + d).await
    }

    async fn yield_now() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await
    }

    /// A session is a thread here: a leaked session is a leaked thread.
    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("procfs")
            .count()
    }

    /// The descriptors of one thread's poller (closed when the thread ends).
    fn poller_fds() -> usize {
        std::thread::spawn(|| {
            let before = open_fds();
            redial_blocking::block_on(async {});
            open_fds() - before
        })
        .join()
        .expect("probe thread")
    }

    silent!(
        idle_without_heartbeat_wakes_for_nothing,
        redial_blocking,
        redial_blocking::block_on
    );

    hygiene!(
        reconnect_cycles_leak_nothing_and_idle_is_quiet,
        redial_blocking,
        redial_blocking::block_on,
        Some(threads()),
        poller_fds()
    );
}
