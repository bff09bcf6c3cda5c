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
        let thread = std::thread::Builder::new().name("bench-sink".into());
        let _ = thread.spawn(move || {
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

// ----- the seed's channel writer -----

/// Bound of the channel writer's channel: as many messages as redial's receipt window.
const CHANNEL_CAP: usize = 512;

/// The seed's design (issue #13): each message its own buffer through a bounded mpsc channel
/// to a writer task that owns a `BufWriter` and flushes when the channel is momentarily
/// empty. It tells the caller nothing about each message; its round ends, like every side's,
/// when the sink has read every byte.
pub struct ChannelWriter<T, D> {
    tx: T,
    /// The writer task; it ends once the sender is gone and everything is written.
    done: D,
}

impl ChannelWriter<tokio::sync::mpsc::Sender<Vec<u8>>, tokio::task::JoinHandle<()>> {
    /// Connects and spawns the writer task on the current tokio runtime.
    pub async fn tokio(addr: SocketAddr) -> Self {
        let mut w = raw_tokio(addr).await;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHANNEL_CAP);
        let done = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                w.write_all(&header(m.len())).await.expect("write");
                w.write_all(&m).await.expect("write");
                while let Ok(m) = rx.try_recv() {
                    w.write_all(&header(m.len())).await.expect("write");
                    w.write_all(&m).await.expect("write");
                }
                w.flush().await.expect("flush");
            }
        });
        ChannelWriter { tx, done }
    }

    /// Sends `n` messages of `size` bytes, each its own `Vec`.
    pub async fn send(&self, n: usize, size: usize) {
        for _ in 0..n {
            self.tx.send(vec![7u8; size]).await.expect("writer task");
        }
    }

    /// Drops the sender and waits until the writer task has written everything.
    pub async fn finish(self) {
        drop(self.tx);
        self.done.await.expect("writer task");
    }
}

impl ChannelWriter<smol::channel::Sender<Vec<u8>>, smol::Task<()>> {
    /// Connects and spawns the writer task on smol's executor.
    pub async fn smol(addr: SocketAddr) -> Self {
        let mut w = raw_smol(addr).await;
        let (tx, rx) = smol::channel::bounded::<Vec<u8>>(CHANNEL_CAP);
        let done = smol::spawn(async move {
            while let Ok(m) = rx.recv().await {
                w.write_all(&header(m.len())).await.expect("write");
                w.write_all(&m).await.expect("write");
                while let Ok(m) = rx.try_recv() {
                    w.write_all(&header(m.len())).await.expect("write");
                    w.write_all(&m).await.expect("write");
                }
                w.flush().await.expect("flush");
            }
        });
        ChannelWriter { tx, done }
    }

    /// Sends `n` messages of `size` bytes, each its own `Vec`.
    pub async fn send(&self, n: usize, size: usize) {
        for _ in 0..n {
            self.tx.send(vec![7u8; size]).await.expect("writer task");
        }
    }

    /// Drops the sender and waits until the writer task has written everything.
    pub async fn finish(self) {
        drop(self.tx);
        self.done.await;
    }
}

// ----- the tokio comparison -----

pub struct Comparison {
    /// (name, msgs/s spread, ratio vs raw A spread)
    pub rows: Vec<(String, Spread, Spread)>,
    /// `rates[side][round]`, for ratios between any two sides.
    pub rates: Vec<Vec<f64>>,
}

impl Comparison {
    /// Side `a` over side `b`, round by round.
    pub fn ratio(&self, a: usize, b: usize) -> Spread {
        let r: Vec<f64> = self.rates[a]
            .iter()
            .zip(&self.rates[b])
            .map(|(x, y)| x / y)
            .collect();
        Spread::of(&r)
    }
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
    Comparison {
        rows,
        rates: rates.to_vec(),
    }
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
        let chan = ChannelWriter::tokio(sink.addr).await;
        let target = sink.arm((1000 * (size + 5)) as u64);
        chan.send(1000, size).await;
        sink.wait(target).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let bytes = (n * (size + 5)) as u64;
        let mut rates = vec![Vec::new(); 6];
        for r in 0..rounds {
            for side in rotation(6, r) {
                let target = sink.arm(bytes);
                let t0 = Instant::now();
                match side {
                    0 => send_tokio(&mut raw_a, n, size).await,
                    1 => send_tokio(&mut raw_b, n, size).await,
                    2 => send_redial(&h, n, size).await,
                    3 => send_redial_batch(&h, n, size).await,
                    4 => send_tokio(&mut stub, n, size).await,
                    _ => chan.send(n, size).await,
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
                "channel writer (the seed's design)",
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
        let chan = ChannelWriter::smol(sink.addr).await;
        let target = sink.arm((1000 * (size + 5)) as u64);
        chan.send(1000, size).await;
        sink.wait(target).await;
        let bytes = (n * (size + 5)) as u64;
        let mut rates = vec![Vec::new(); 5];
        for r in 0..rounds {
            for side in rotation(5, r) {
                let target = sink.arm(bytes);
                let t0 = Instant::now();
                match side {
                    0 => send_futures(&mut raw_a, n, size).await,
                    1 => send_futures(&mut raw_b, n, size).await,
                    2 => send_redial(&h, n, size).await,
                    3 => send_redial_batch(&h, n, size).await,
                    _ => chan.send(n, size).await,
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
                "channel writer (the seed's design)",
            ],
            &rates,
        )
    })
}

/// The callgrind workload: one client sending `n` messages of `size` to `addr`.
/// `which`: `raw-tokio`, `redial-tokio`, `redial-tokio-batch`, `raw-smol`, `redial-smol`,
/// `redial-smol-batch`, `chan-tokio`, `chan-smol` (the seed's channel writer).
pub fn cg_client(which: &str, n: usize, size: usize, addr: SocketAddr) {
    let batch = which.ends_with("-batch");
    match which {
        "chan-tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let chan = ChannelWriter::tokio(addr).await;
                chan.send(n, size).await;
                chan.finish().await;
            });
        }
        "chan-smol" => redial_smol::block_on(async {
            let chan = ChannelWriter::smol(addr).await;
            chan.send(n, size).await;
            chan.finish().await;
        }),
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
