//! 2. Throughput: length-prefixed messages over loopback to a sink that discards them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::io::AsyncWriteExt as _;
use redial_tokio::{Config, LengthCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::util::{rotation, Spread};
pub use redial_bench::{header, send_redial, send_redial_batch};

/// A sink server on its own thread: reads and discards, counting bytes.
pub struct Sink {
    pub addr: SocketAddr,
    received: Arc<AtomicU64>,
    target: Arc<AtomicU64>,
    notify: Arc<Notify>,
}

impl Sink {
    pub fn start() -> Sink {
        let received = Arc::new(AtomicU64::new(0));
        let target = Arc::new(AtomicU64::new(u64::MAX));
        let notify = Arc::new(Notify::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let (r, t, n) = (received.clone(), target.clone(), notify.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(l.local_addr().expect("addr")).expect("send");
                loop {
                    let Ok((mut s, _)) = l.accept().await else {
                        continue;
                    };
                    let (r, t, n) = (r.clone(), t.clone(), n.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 256 << 10];
                        while let Ok(k) = s.read(&mut buf).await {
                            if k == 0 {
                                break;
                            }
                            let got = r.fetch_add(k as u64, SeqCst) + k as u64;
                            if got >= t.load(SeqCst) {
                                n.notify_one();
                            }
                        }
                    });
                }
            });
        });
        Sink {
            addr: rx.recv().expect("sink addr"),
            received,
            target,
            notify,
        }
    }

    /// Arms the sink for `bytes` more bytes; returns the target.
    pub fn arm(&self, bytes: u64) -> u64 {
        let t = self.received.load(SeqCst) + bytes;
        self.target.store(t, SeqCst);
        t
    }

    /// Waits until the sink has read up to `target` (runtime-neutral).
    pub async fn wait(&self, target: u64) {
        while self.received.load(SeqCst) < target {
            let n = self.notify.notified();
            if self.received.load(SeqCst) >= target {
                break;
            }
            n.await;
        }
    }
}

/// Throughput config: no heartbeat (the sink never answers), everything else default.
pub fn config() -> Config {
    Config::default().with_heartbeat(None)
}

// ----- senders -----

pub async fn send_tokio<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, n: usize, size: usize) {
    let payload = vec![7u8; size];
    let h = header(size);
    for _ in 0..n {
        w.write_all(&h).await.expect("write");
        w.write_all(&payload).await.expect("write");
    }
    w.flush().await.expect("flush");
}

pub async fn send_futures<W: futures::io::AsyncWrite + Unpin>(w: &mut W, n: usize, size: usize) {
    let payload = vec![7u8; size];
    let h = header(size);
    for _ in 0..n {
        w.write_all(&h).await.expect("write");
        w.write_all(&payload).await.expect("write");
    }
    w.flush().await.expect("flush");
}

// ----- the tokio comparison -----

pub struct Comparison {
    /// (name, msgs/s spread, ratio vs raw A spread)
    pub rows: Vec<(String, Spread, Spread)>,
}

async fn raw_tokio(addr: SocketAddr) -> tokio::io::BufWriter<tokio::net::TcpStream> {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    tokio::io::BufWriter::new(s)
}

async fn raw_smol(addr: SocketAddr) -> futures::io::BufWriter<async_net::TcpStream> {
    let s = async_net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    futures::io::BufWriter::new(s)
}

fn summarize(names: &[&str], rates: &[Vec<f64>]) -> Comparison {
    let rows = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let ratios: Vec<f64> = rates[i]
                .iter()
                .zip(&rates[0])
                .map(|(x, base)| x / base)
                .collect();
            (name.to_string(), Spread::of(&rates[i]), Spread::of(&ratios))
        })
        .collect();
    Comparison { rows }
}

/// redial-tokio vs raw tokio (twice: the A/A control) vs stubborn-io, `rounds` interleaved
/// rounds with rotating order. Side 0 is the baseline.
pub fn tokio_side_by_side(sink: &Sink, rounds: usize, n: usize, size: usize) -> Comparison {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut raw_a = raw_tokio(sink.addr).await;
        let mut raw_b = raw_tokio(sink.addr).await;
        let stub = stubborn_io::StubbornTcpStream::connect(sink.addr)
            .await
            .expect("stubborn connect");
        // Same socket options as every other client (it derefs to the `TcpStream`).
        stub.set_nodelay(true).expect("nodelay");
        let mut stub = tokio::io::BufWriter::new(stub);
        let (h, _inbound, _events) = redial_tokio::builder(sink.addr)
            .config(config())
            .codec(LengthCodec::default())
            .spawn()
            .expect("spawn");
        // Warm up every side (and let redial connect).
        send_redial(&h, 1000, size).await;
        send_tokio(&mut raw_a, 1000, size).await;
        send_tokio(&mut raw_b, 1000, size).await;
        send_tokio(&mut stub, 1000, size).await;
        send_redial_batch(&h, 1000, size).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let bytes = (n * (size + 5)) as u64;
        let mut rates = vec![Vec::new(); 5];
        for r in 0..rounds {
            for side in rotation(5, r) {
                let target = sink.arm(bytes);
                let t0 = Instant::now();
                match side {
                    0 => send_tokio(&mut raw_a, n, size).await,
                    1 => send_tokio(&mut raw_b, n, size).await,
                    2 => send_redial(&h, n, size).await,
                    3 => send_redial_batch(&h, n, size).await,
                    _ => send_tokio(&mut stub, n, size).await,
                }
                sink.wait(target).await;
                rates[side].push(n as f64 / t0.elapsed().as_secs_f64());
            }
        }
        h.close(redial_tokio::CloseMode::Immediate).await;
        summarize(
            &[
                "raw tokio A",
                "raw tokio B (A/A control)",
                "redial-tokio (send)",
                "redial-tokio (send_batch)",
                "stubborn-io",
            ],
            &rates,
        )
    })
}

/// redial-smol vs raw async-net (twice), interleaved.
pub fn smol_side_by_side(sink: &Sink, rounds: usize, n: usize, size: usize) -> Comparison {
    redial_smol::block_on(async {
        let mut raw_a = raw_smol(sink.addr).await;
        let mut raw_b = raw_smol(sink.addr).await;
        let (h, _inbound, _events) = redial_smol::builder(sink.addr)
            .config(config())
            .codec(LengthCodec::default())
            .spawn()
            .expect("spawn");
        send_redial(&h, 1000, size).await;
        send_futures(&mut raw_a, 1000, size).await;
        send_futures(&mut raw_b, 1000, size).await;
        send_redial_batch(&h, 1000, size).await;
        let bytes = (n * (size + 5)) as u64;
        let mut rates = vec![Vec::new(); 4];
        for r in 0..rounds {
            for side in rotation(4, r) {
                let target = sink.arm(bytes);
                let t0 = Instant::now();
                match side {
                    0 => send_futures(&mut raw_a, n, size).await,
                    1 => send_futures(&mut raw_b, n, size).await,
                    2 => send_redial(&h, n, size).await,
                    _ => send_redial_batch(&h, n, size).await,
                }
                sink.wait(target).await;
                rates[side].push(n as f64 / t0.elapsed().as_secs_f64());
            }
        }
        h.close(redial_smol::CloseMode::Immediate).await;
        summarize(
            &[
                "raw async-net A",
                "raw async-net B (A/A control)",
                "redial-smol (send)",
                "redial-smol (send_batch)",
            ],
            &rates,
        )
    })
}

/// The callgrind workload: one client sending `n` messages of `size` to `addr`.
/// `which`: `raw-tokio`, `redial-tokio`, `redial-tokio-batch`, `raw-smol`, `redial-smol`,
/// `redial-smol-batch`.
pub fn cg_client(which: &str, n: usize, size: usize, addr: SocketAddr) {
    let batch = which.ends_with("-batch");
    match which {
        "raw-tokio" | "redial-tokio" | "redial-tokio-batch" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if which == "raw-tokio" {
                    let mut w = raw_tokio(addr).await;
                    send_tokio(&mut w, n, size).await;
                } else {
                    let (h, _i, _e) = redial_tokio::builder(addr)
                        .config(config())
                        .codec(LengthCodec::default())
                        .spawn()
                        .expect("spawn");
                    send_and_close(h, batch, n, size).await;
                }
            });
        }
        "raw-smol" | "redial-smol" | "redial-smol-batch" => redial_smol::block_on(async {
            if which == "raw-smol" {
                let mut w = raw_smol(addr).await;
                send_futures(&mut w, n, size).await;
            } else {
                let (h, _i, _e) = redial_smol::builder(addr)
                    .config(config())
                    .codec(LengthCodec::default())
                    .spawn()
                    .expect("spawn");
                send_and_close(h, batch, n, size).await;
            }
        }),
        other => panic!("unknown client {other}"),
    }
}

/// The redial side of the callgrind workload (either runtime: the handle is the same type).
async fn send_and_close(h: redial_tokio::Handle, batch: bool, n: usize, size: usize) {
    if batch {
        send_redial_batch(&h, n, size).await;
    } else {
        send_redial(&h, n, size).await;
    }
    h.close(redial_tokio::CloseMode::Immediate).await;
}
