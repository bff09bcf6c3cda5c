//! A bounded soak (not a unit test): many sessions against a flapping server and a flooding
//! server for a fixed time, sampling the process's resident memory, open file descriptors and
//! live tasks every second. It must end where it began: once every session is closed, the
//! descriptors and tasks are back to their baseline, every receipt has resolved (nothing lost
//! without a report) and memory has stopped growing.
//!
//! `cargo bench -p redial-bench --bench soak -- [--sessions N] [--minutes M] [--out FILE]`:
//! defaults 1,000 sessions for 10 minutes; with `--out`, the summary replaces the soak
//! section of that markdown file (`BENCHMARKS.md`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use redial_core::{Config, Delivery, Heartbeat, LineCodec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const BEGIN: &str = "<!-- soak:begin -->";
const END: &str = "<!-- soak:end -->";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Hands freed heap pages back to the OS (glibc keeps them otherwise), so the end figure
/// shows what is still allocated, not what the allocator cached.
#[allow(unsafe_code)]
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages of the allocator's own heap to the OS; it
    // has no preconditions and touches no memory the program holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// A line server that answers every line and `PING`, drops each connection after a while, and
/// every `restart_every` stops listening for `down` (a restart).
async fn flapping(port_tx: tokio::sync::oneshot::Sender<u16>, stop: Arc<AtomicU64>) {
    let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = first.local_addr().expect("addr");
    let _ = port_tx.send(addr.port());
    let mut listener = Some(first);
    let mut n: u64 = 0;
    let restart_every = Duration::from_secs(30);
    let down = Duration::from_secs(3);
    let mut next_restart = Instant::now() + restart_every;
    while stop.load(Ordering::SeqCst) == 0 {
        let Some(l) = &listener else {
            tokio::time::sleep(down).await;
            listener = TcpListener::bind(addr).await.ok();
            next_restart = Instant::now() + restart_every;
            continue;
        };
        let accept = tokio::time::timeout(Duration::from_millis(200), l.accept()).await;
        if let Ok(Ok((c, _))) = accept {
            n += 1;
            // Lifetimes from 0.5 s to 6 s, spread by the connection's number.
            let life = Duration::from_millis(500 + (n * 7919) % 5500);
            tokio::spawn(async move {
                let (r, mut w) = c.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = tokio::time::timeout(life, async {
                    while let Ok(Some(line)) = lines.next_line().await {
                        let answer = if line == "PING" {
                            "PONG\r\n".to_owned()
                        } else {
                            format!("ok {line}\r\n")
                        };
                        if w.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                })
                .await;
            });
        }
        if Instant::now() >= next_restart {
            listener = None;
        }
    }
}

/// A server that writes lines as fast as each connection takes them.
async fn flooding(port_tx: tokio::sync::oneshot::Sender<u16>, stop: Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let _ = port_tx.send(l.local_addr().expect("addr").port());
    let chunk: Vec<u8> = [b"y".repeat(98), b"\r\n".to_vec()].concat().repeat(100);
    while stop.load(Ordering::SeqCst) == 0 {
        let Ok(Ok((mut c, _))) = tokio::time::timeout(Duration::from_millis(200), l.accept()).await
        else {
            continue;
        };
        let chunk = chunk.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while stop.load(Ordering::SeqCst) == 0 {
                if c.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    settled: AtomicU64,
    delivered: AtomicU64,
    received: AtomicU64,
}

struct Args {
    sessions: usize,
    minutes: f64,
    out: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        sessions: 1000,
        minutes: 10.0,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--sessions" => a.sessions = it.next().and_then(|v| v.parse().ok()).unwrap_or(1000),
            "--minutes" => a.minutes = it.next().and_then(|v| v.parse().ok()).unwrap_or(10.0),
            "--out" => a.out = it.next(),
            _ => {} // cargo bench passes `--bench`
        }
    }
    a
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(soak(&a));
    println!("{report}");
    if let Some(path) = &a.out {
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let section = format!("{BEGIN}\n{report}\n{END}");
        let new = match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if b < e => {
                format!("{}{section}{}", &old[..b], &old[e + END.len()..])
            }
            _ => format!("{}\n\n{section}\n", old.trim_end()),
        };
        std::fs::write(path, new).expect("write the report");
    }
}

async fn soak(a: &Args) -> String {
    let stop = Arc::new(AtomicU64::new(0));
    let (ftx, frx) = tokio::sync::oneshot::channel();
    let (otx, orx) = tokio::sync::oneshot::channel();
    let servers = [
        tokio::spawn(flapping(ftx, stop.clone())),
        tokio::spawn(flooding(otx, stop.clone())),
    ];
    let flap = frx.await.expect("port");
    let flood = orx.await.expect("port");
    let counts = Arc::new(Counts::default());
    // Baseline: servers up, no session yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss0, fds0, tasks0) = (rss_kib(), fds(), tasks());
    let cfg = Config::default().with_heartbeat(Some(Heartbeat {
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        adaptive_floor: None,
    }));
    let mut handles = Vec::new();
    let mut workers = Vec::new();
    for i in 0..a.sessions {
        let flooded = i % 2 == 1;
        let port = if flooded { flood } else { flap };
        let (handle, mut inbound, mut events) = redial_tokio::builder(format!("127.0.0.1:{port}"))
            .config(cfg.clone())
            .inbound_capacity(32, 16 << 10)
            .codec(LineCodec::plain())
            .spawn()
            .expect("valid");
        let c = counts.clone();
        // A slow consumer on the flooded half (100 lines a second at most), a prompt one on
        // the flapping half; events drained.
        workers.push(tokio::spawn(async move {
            while let Some(_line) = inbound.next().await {
                c.received.fetch_add(1, Ordering::Relaxed);
                if flooded {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
        workers.push(tokio::spawn(async move {
            while events.next().await.is_some() {}
        }));
        if !flooded {
            let (h, c) = (handle.clone(), counts.clone());
            workers.push(tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if h.is_closed() {
                        return;
                    }
                    n += 1;
                    c.sent.fetch_add(1, Ordering::Relaxed);
                    let r = h.send(format!("m{n}").into_bytes(), Delivery::AtMostOnce);
                    let c = c.clone();
                    tokio::spawn(async move {
                        if r.await.is_ok() {
                            c.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        c.settled.fetch_add(1, Ordering::Relaxed);
                    });
                }
            }));
        }
        handles.push(handle);
    }
    let started = Instant::now();
    let total = Duration::from_secs_f64(a.minutes * 60.0);
    let mut samples: Vec<(u64, usize, usize)> = Vec::new();
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((rss_kib(), fds(), tasks()));
    }
    // The end: close every session, stop the servers, and wait (bounded) for the process to
    // come back to its baseline.
    for h in &handles {
        h.close(redial_core::CloseMode::Immediate).await;
    }
    drop(handles);
    let settle_by = Instant::now() + Duration::from_secs(30);
    while (counts.settled.load(Ordering::SeqCst) < counts.sent.load(Ordering::SeqCst)
        || fds() > fds0
        || tasks() > tasks0)
        && Instant::now() < settle_by
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_closed = rss_kib();
    release_free_memory();
    let (rss1, fds1, tasks1) = (rss_kib(), fds(), tasks());
    stop.store(1, Ordering::SeqCst);
    for s in servers {
        let _ = s.await;
    }
    for w in workers {
        w.abort();
    }
    let peak = |f: fn(&(u64, usize, usize)) -> u64| samples.iter().map(f).max().unwrap_or(0);
    let (sent, settled, delivered) = (
        counts.sent.load(Ordering::SeqCst),
        counts.settled.load(Ordering::SeqCst),
        counts.delivered.load(Ordering::SeqCst),
    );
    // Memory growth during the run: the last minute's mean against the first minute after
    // warm-up (the connections and buffers of every session exist by then).
    let mean =
        |s: &[(u64, usize, usize)]| s.iter().map(|x| x.0).sum::<u64>() / (s.len().max(1) as u64);
    let early = mean(&samples[samples.len().min(30)..samples.len().min(90)]);
    let late = mean(&samples[samples.len().saturating_sub(60)..]);
    let ok = fds1 <= fds0 && tasks1 <= tasks0 && settled == sent;
    format!(
        "## Soak: {sessions} sessions, {minutes} min (`cargo bench -p redial-bench --bench soak`)\n\n\
         Half the sessions talk to a line server that drops every connection after 0.5–6 s and\n\
         restarts (3 s down) every 30 s; they send a line a second, at most once. The other half\n\
         read a server that floods lines, through a consumer taking 100 lines a second at most\n\
         (inbound bound 32 lines / 16 KiB). Sampled every second.\n\n\
         | | baseline | peak | end (all closed) |\n|---|---|---|---|\n\
         | resident memory | {r0} MiB | {rp} MiB | {rc} MiB; {r1} MiB once free pages are returned |\n\
         | open descriptors | {fds0} | {fp} | {fds1} |\n\
         | live tasks | {tasks0} | {tp} | {tasks1} |\n\n\
         Memory, mean of the minute after warm-up vs the last minute: {e} MiB vs {l} MiB.\n\
         Lines sent {sent}, every receipt resolved: {settled} ({delivered} delivered, the rest\n\
         reported undelivered); lines read from the flood: {received}.\n\
         Verdict: {verdict}.\n",
        sessions = a.sessions,
        minutes = a.minutes,
        r0 = rss0 / 1024,
        rp = peak(|x| x.0) / 1024,
        r1 = rss1 / 1024,
        rc = rss_closed / 1024,
        fp = peak(|x| x.1 as u64),
        tp = peak(|x| x.2 as u64),
        e = early / 1024,
        l = late / 1024,
        received = counts.received.load(Ordering::SeqCst),
        verdict = if ok {
            "back to the baseline (descriptors and tasks), nothing unreported"
        } else {
            "DID NOT return to the baseline"
        },
    )
}
