//! TLS benchmark (issue #14): redial-tokio over TLS (`redial_tokio::tls::TlsConnector`) vs raw
//! tokio-rustls, side by side in one run, interleaved rounds with rotating order, and an A/A
//! control (raw vs raw) that shows the noise floor. Prints a markdown table.
//!
//! `cargo bench -p redial-bench --bench tls [-- --rounds N]`
//!
//! - Throughput: length-prefixed messages to a TLS sink that decrypts and discards them, timed
//!   until the sink has read every byte. 64 B messages (raw: a `BufWriter`; redial:
//!   `send_batch` of about 8 KiB, and `send`) and 4 KiB messages (`send`, and `send_batch`).
//! - Handshake: a fresh connection (TCP + full TLS 1.3 handshake, resumption off) and the first
//!   message written. Raw: connect, handshake, write, flush. redial, new session: spawn a
//!   session, await the first message's receipt, close. redial, reconnect: `reconnect_now` on a
//!   running session, await the receipt of a message sent right after (written on the new
//!   connection: checked).
//!
//! Ratios are redial's rate over raw A's in the same round (for the handshake: raw A's time
//! over redial's), so ≥ 1 means redial is as fast; the goal is ≥ 0.95.

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redial_tokio::tls::{rustls, TlsSettings};
use redial_tokio::{CloseMode, Config, Delivery, LengthCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use redial_bench::{header, rotation, send_redial, send_redial_batch, Spread};

const HANDSHAKES_PER_ROUND: usize = 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(9);
    let pki = Pki::new();
    let sink = Sink::start(Some(pki.server_config()));
    let plain = Sink::start(None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // `profile SIDE SIZE N`: one side alone (raw, send, batch; hs-raw, hs-redial: N
    // handshakes), for perf or callgrind.
    if let Some(i) = args.iter().position(|a| a == "profile") {
        let arg = |k: usize| args.get(i + k).map(String::as_str).unwrap_or("");
        let (size, n): (usize, usize) = (
            arg(2).parse().expect("size"),
            arg(3).parse().expect("count"),
        );
        rt.block_on(profile(&pki, &sink, arg(1), size, n));
        return;
    }
    let mut rows = Vec::new();
    rt.block_on(async {
        rows.extend(throughput(&pki, &sink, rounds, 64, 200_000).await);
        rows.extend(throughput(&pki, &sink, rounds, 4096, 20_000).await);
        rows.extend(handshakes(&pki, &sink, rounds).await);
        rows.extend(plain_connects(&plain, rounds).await);
    });
    println!();
    println!(
        "TLS (rustls 0.23, ring, TLS 1.3, AES-GCM) over loopback, {rounds} interleaved rounds; \
         redial-tokio vs raw tokio-rustls. Rate: until the TLS sink (its own thread) has read \
         every byte. Client CPU: the client thread's CPU time (user + system; the session task \
         runs on it) per message or connection. Ratios are per round against raw A, median \
         (min – max): rate / raw A's rate, and raw A's CPU / CPU (so ≥ 1 means as fast or \
         cheaper)."
    );
    println!();
    println!("| workload | side | rate | ratio | client CPU | CPU ratio |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} {} | {} | {} {} | {} |",
            r.workload,
            r.side,
            r.rate.show(0),
            r.unit,
            r.rate_ratio.show(3),
            r.cpu.show(0),
            r.cpu_unit,
            r.cpu_ratio.show(3)
        );
    }
}

/// The CPU time of the calling thread.
#[allow(unsafe_code)]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid, owned timespec and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

// ----- certificates -----

struct Pki {
    ca: rustls::pki_types::CertificateDer<'static>,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: Vec<u8>,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("cert");
        Pki {
            ca: ca_cert.der().clone(),
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key.clone().into());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(redial_tls::crypto_provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(vec![self.cert.clone()], key)
                .expect("server config"),
        )
    }

    /// A client config trusting the CA; `resume: false` forces full handshakes.
    fn client_config(&self, resume: bool) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("root");
        let mut c = rustls::ClientConfig::builder_with_provider(redial_tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        if !resume {
            c.resumption = rustls::client::Resumption::disabled();
        }
        Arc::new(c)
    }
}

// ----- the sink -----

/// A TLS server on its own thread: decrypts and discards, counting plaintext bytes.
struct Sink {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    target: Arc<AtomicU64>,
    notify: Arc<Notify>,
}

impl Sink {
    /// A TLS sink with `config`, or a plain TCP one with `None`.
    fn start(config: Option<Arc<rustls::ServerConfig>>) -> Sink {
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
                let acceptor = config.map(tokio_rustls::TlsAcceptor::from);
                loop {
                    let Ok((s, _)) = l.accept().await else {
                        continue;
                    };
                    let counter = (r.clone(), t.clone(), n.clone());
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        match acceptor {
                            None => drain(s, counter).await,
                            Some(a) => {
                                if let Ok(s) = a.accept(s).await {
                                    drain(s, counter).await;
                                }
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

    fn arm(&self, bytes: u64) -> u64 {
        let t = self.received.load(SeqCst) + bytes;
        self.target.store(t, SeqCst);
        t
    }

    async fn wait(&self, target: u64) {
        while self.received.load(SeqCst) < target {
            let n = self.notify.notified();
            if self.received.load(SeqCst) >= target {
                break;
            }
            n.await;
        }
    }
}

/// Reads and discards, counting bytes and waking the waiter at the target.
async fn drain<S: tokio::io::AsyncRead + Unpin>(
    mut s: S,
    (received, target, notify): (Arc<AtomicU64>, Arc<AtomicU64>, Arc<Notify>),
) {
    let mut buf = vec![0u8; 256 << 10];
    while let Ok(k) = s.read(&mut buf).await {
        if k == 0 {
            break;
        }
        let got = received.fetch_add(k as u64, SeqCst) + k as u64;
        if got >= target.load(SeqCst) {
            notify.notify_one();
        }
    }
}

// ----- clients -----

type RawTls = tokio::io::BufWriter<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn raw_tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> RawTls {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, s)
        .await
        .expect("handshake");
    tokio::io::BufWriter::new(tls)
}

fn redial_session(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> redial_tokio::Handle {
    let tls = TlsSettings::from_config(config)
        .with_server_name("localhost")
        .expect("name");
    let (h, _inbound, _events) = redial_tokio::tls_builder(addr, tls)
        .config(Config::default().with_heartbeat(None))
        .codec(LengthCodec::default())
        .spawn()
        .expect("spawn");
    h
}

async fn send_raw(w: &mut RawTls, n: usize, size: usize) {
    let payload = vec![7u8; size];
    let h = header(size);
    for _ in 0..n {
        w.write_all(&h).await.expect("write");
        w.write_all(&payload).await.expect("write");
    }
    w.flush().await.expect("flush");
}

struct Row {
    workload: String,
    side: &'static str,
    unit: &'static str,
    cpu_unit: &'static str,
    rate: Spread,
    rate_ratio: Spread,
    cpu: Spread,
    cpu_ratio: Spread,
}

/// Per side, per round: the rate and the client CPU per unit.
#[derive(Clone, Default)]
struct Samples {
    rate: Vec<f64>,
    cpu: Vec<f64>,
}

fn rows(
    workload: &str,
    (unit, cpu_unit): (&'static str, &'static str),
    names: &[&'static str],
    sides: &[Samples],
) -> Vec<Row> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let per = |f: fn(f64, f64) -> f64, xs: &[f64], base: &[f64]| -> Vec<f64> {
                xs.iter().zip(base).map(|(x, b)| f(*x, *b)).collect()
            };
            Row {
                workload: workload.to_owned(),
                side: name,
                unit,
                cpu_unit,
                rate: Spread::of(&sides[i].rate),
                rate_ratio: Spread::of(&per(|x, b| x / b, &sides[i].rate, &sides[0].rate)),
                cpu: Spread::of(&sides[i].cpu),
                cpu_ratio: Spread::of(&per(|x, b| b / x, &sides[i].cpu, &sides[0].cpu)),
            }
        })
        .collect()
}

async fn throughput(pki: &Pki, sink: &Sink, rounds: usize, size: usize, n: usize) -> Vec<Row> {
    let mut raw_a = raw_tls(sink.addr, pki.client_config(true)).await;
    let mut raw_b = raw_tls(sink.addr, pki.client_config(true)).await;
    let h = redial_session(sink.addr, pki.client_config(true));
    send_redial(&h, 1000, size).await;
    send_redial_batch(&h, 1000, size).await;
    send_raw(&mut raw_a, 1000, size).await;
    send_raw(&mut raw_b, 1000, size).await;
    let bytes = (n * (size + 5)) as u64;
    let mut samples = vec![Samples::default(); 4];
    for r in 0..rounds {
        for side in rotation(4, r) {
            let target = sink.arm(bytes);
            let (t0, c0) = (Instant::now(), thread_cpu());
            match side {
                0 => send_raw(&mut raw_a, n, size).await,
                1 => send_raw(&mut raw_b, n, size).await,
                2 => send_redial(&h, n, size).await,
                _ => send_redial_batch(&h, n, size).await,
            }
            sink.wait(target).await;
            let (secs, cpu) = (t0.elapsed().as_secs_f64(), thread_cpu() - c0);
            samples[side].rate.push(n as f64 / secs);
            samples[side].cpu.push(cpu.as_nanos() as f64 / n as f64);
        }
    }
    h.close(CloseMode::Immediate).await;
    rows(
        &format!("{size} B messages"),
        ("msg/s", "ns/msg"),
        &[
            "raw tokio-rustls A",
            "raw tokio-rustls B (A/A control)",
            "redial-tokio TLS (send)",
            "redial-tokio TLS (send_batch)",
        ],
        &samples,
    )
}

async fn profile(pki: &Pki, sink: &Sink, side: &str, size: usize, n: usize) {
    let target = sink.arm((n * (size + 5)) as u64);
    let t0 = Instant::now();
    match side {
        "raw" => {
            // Kept until the sink has read everything: closing a socket with unread session
            // tickets in its receive queue sends a reset, and the sink would lose the tail.
            let mut w = raw_tls(sink.addr, pki.client_config(true)).await;
            send_raw(&mut w, n, size).await;
            sink.wait(target).await;
        }
        "send" | "batch" => {
            let h = redial_session(sink.addr, pki.client_config(true));
            if side == "send" {
                send_redial(&h, n, size).await;
            } else {
                send_redial_batch(&h, n, size).await;
            }
            sink.wait(target).await;
            h.close(CloseMode::Immediate).await;
        }
        "hs-raw" | "hs-redial" => {
            for _ in 0..n {
                if side == "hs-raw" {
                    handshake_raw(pki, sink).await;
                } else {
                    handshake_redial(pki, sink).await;
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            println!("{side} x {n}: {:.0} conn/s", n as f64 / secs);
            return;
        }
        other => panic!("unknown side {other}: raw, send, batch, hs-raw or hs-redial"),
    }
    sink.wait(target).await;
    let secs = t0.elapsed().as_secs_f64();
    println!("{side} {size} B x {n}: {:.0} msg/s", n as f64 / secs);
}

async fn handshake_raw(pki: &Pki, sink: &Sink) -> Duration {
    let config = pki.client_config(false);
    let target = sink.arm(69);
    let t0 = Instant::now();
    let mut w = raw_tls(sink.addr, config).await;
    send_raw(&mut w, 1, 64).await;
    let took = t0.elapsed();
    sink.wait(target).await;
    took
}

async fn handshake_redial(pki: &Pki, sink: &Sink) -> Duration {
    let config = pki.client_config(false);
    let target = sink.arm(69);
    let t0 = Instant::now();
    let h = redial_session(sink.addr, config);
    h.send(vec![7u8; 64], Delivery::AtMostOnce)
        .await
        .expect("delivered");
    let took = t0.elapsed();
    sink.wait(target).await;
    h.close(CloseMode::Immediate).await;
    took
}

/// A reconnect of a running session (`reconnect_now`), then its first message written.
async fn handshake_reconnect(h: &redial_tokio::Handle, sink: &Sink) -> Duration {
    let connects = h.stats().connects;
    let target = sink.arm(69);
    let t0 = Instant::now();
    h.reconnect_now();
    h.send(vec![7u8; 64], Delivery::AtMostOnce)
        .await
        .expect("delivered");
    let took = t0.elapsed();
    assert_eq!(
        h.stats().connects,
        connects + 1,
        "written on a new connection"
    );
    sink.wait(target).await;
    took
}

/// Plain TCP: connect, write the first message, flush.
async fn connect_plain(sink: &Sink) -> Duration {
    let target = sink.arm(69);
    let t0 = Instant::now();
    let s = tokio::net::TcpStream::connect(sink.addr)
        .await
        .expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut w = tokio::io::BufWriter::new(s);
    w.write_all(&header(64)).await.expect("write");
    w.write_all(&[7u8; 64]).await.expect("write");
    w.flush().await.expect("flush");
    let took = t0.elapsed();
    sink.wait(target).await;
    took
}

/// The control for the handshake rows: the same connections without TLS, so what redial adds
/// per connection (a new session, or a reconnect's close-then-dial) shows apart from TLS.
async fn plain_connects(sink: &Sink, rounds: usize) -> Vec<Row> {
    let (session, _inbound, _events) = redial_tokio::builder(sink.addr)
        .config(Config::default().with_heartbeat(None))
        .codec(LengthCodec::default())
        .spawn()
        .expect("spawn");
    connect_plain(sink).await;
    session
        .send(vec![7u8; 64], Delivery::AtMostOnce)
        .await
        .expect("delivered");
    handshake_reconnect(&session, sink).await;
    let mut samples = vec![Samples::default(); 3];
    for r in 0..rounds {
        for side in rotation(3, r) {
            let mut times = Vec::with_capacity(HANDSHAKES_PER_ROUND);
            let c0 = thread_cpu();
            for _ in 0..HANDSHAKES_PER_ROUND {
                times.push(match side {
                    0 | 1 => connect_plain(sink).await,
                    _ => handshake_reconnect(&session, sink).await,
                });
            }
            let cpu = (thread_cpu() - c0).as_secs_f64() / HANDSHAKES_PER_ROUND as f64;
            let secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
            samples[side].rate.push(1.0 / Spread::of(&secs).median);
            samples[side].cpu.push(cpu * 1e6);
        }
    }
    let r = rows(
        "control, plain TCP: connect + first message",
        ("conn/s", "µs/conn"),
        &[
            "raw tokio A",
            "raw tokio B (A/A control)",
            "redial-tokio (reconnect_now)",
        ],
        &samples,
    );
    session.close(CloseMode::Immediate).await;
    r
}

async fn handshakes(pki: &Pki, sink: &Sink, rounds: usize) -> Vec<Row> {
    let session = redial_session(sink.addr, pki.client_config(false));
    // Warm up every path (and let the session connect).
    handshake_raw(pki, sink).await;
    handshake_redial(pki, sink).await;
    session
        .send(vec![7u8; 64], Delivery::AtMostOnce)
        .await
        .expect("delivered");
    handshake_reconnect(&session, sink).await;
    let mut samples = vec![Samples::default(); 4];
    for r in 0..rounds {
        for side in rotation(4, r) {
            let mut times = Vec::with_capacity(HANDSHAKES_PER_ROUND);
            let c0 = thread_cpu();
            for _ in 0..HANDSHAKES_PER_ROUND {
                times.push(match side {
                    0 | 1 => handshake_raw(pki, sink).await,
                    2 => handshake_redial(pki, sink).await,
                    _ => handshake_reconnect(&session, sink).await,
                });
            }
            let cpu = (thread_cpu() - c0).as_secs_f64() / HANDSHAKES_PER_ROUND as f64;
            let secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
            samples[side].rate.push(1.0 / Spread::of(&secs).median);
            samples[side].cpu.push(cpu * 1e6);
        }
    }
    let r = rows(
        "connect + full handshake + first message",
        ("conn/s", "µs/conn"),
        &[
            "raw tokio-rustls A",
            "raw tokio-rustls B (A/A control)",
            "redial-tokio TLS (new session)",
            "redial-tokio TLS (reconnect_now)",
        ],
        &samples,
    );
    session.close(CloseMode::Immediate).await;
    r
}
