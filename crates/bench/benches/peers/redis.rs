//! Redis, pipelined, a window of [`WINDOW`] requests in flight: a raw socket (twice, the A/A
//! control), redial's `request`, redis-rs's `MultiplexedConnection` and `ConnectionManager`,
//! on tokio and on smol, against one `redis-server`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use futures::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use futures::stream::{FuturesOrdered, StreamExt as _};
use redial_bench::{rotation, WINDOW};
use redial_core::proto::resp::{cmd, Resp};
use redial_core::{Config, Delivery};
use redial_tokio::{Handle, Receipt, Reply};
use tokio_util::compat::TokioAsyncReadCompatExt as _;

use crate::table::Table;

/// One workload: the commands a round cycles through, and how many a round sends.
pub struct Workload {
    /// The table's title.
    pub name: String,
    /// Encoded commands (the raw side and redial send these bytes).
    pub encoded: Vec<Vec<u8>>,
    /// The same commands for redis-rs.
    pub cmds: Vec<redis::Cmd>,
    /// Commands per round.
    pub n: usize,
}

impl Workload {
    /// `INCR counter`.
    pub fn incr(n: usize) -> Workload {
        Workload {
            name: "INCR".into(),
            encoded: vec![cmd(["INCR", "counter"])],
            cmds: vec![redis::cmd("INCR").arg("counter").clone()],
            n,
        }
    }

    /// `SET k v` then `GET k`, alternating, with a `size`-byte value.
    pub fn set_get(size: usize, n: usize) -> Workload {
        let key = format!("key{size}");
        let value = vec![b'v'; size];
        Workload {
            name: format!("SET/GET {size} B"),
            encoded: vec![
                cmd([&b"SET"[..], key.as_bytes(), &value]),
                cmd([&b"GET"[..], key.as_bytes()]),
            ],
            cmds: vec![
                redis::cmd("SET").arg(&key).arg(&value).clone(),
                redis::cmd("GET").arg(&key).clone(),
            ],
            n,
        }
    }
}

/// The bytes one RESP reply of a simple type, an integer or a bulk string takes at the front
/// of `buf`, if it is all there (the replies of INCR, SET and GET; the raw side needs no more).
fn reply_len(buf: &[u8]) -> Option<usize> {
    let nl = buf.iter().position(|&b| b == b'\n')?;
    match buf.first()? {
        b'+' | b'-' | b':' => Some(nl + 1),
        b'$' => {
            let len: i64 = std::str::from_utf8(&buf[1..nl.saturating_sub(1)])
                .ok()?
                .parse()
                .ok()?;
            let total = if len < 0 {
                nl + 1
            } else {
                nl + 1 + len as usize + 2
            };
            (buf.len() >= total).then_some(total)
        }
        other => panic!("raw client: unexpected reply type {:?}", *other as char),
    }
}

/// The raw pipelined client: writes as many commands as the window allows in one `write_all`,
/// then reads whatever replies came, counting whole replies, until `n` are answered.
pub async fn raw_round<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, w: &Workload, n: usize) {
    let mut out = Vec::with_capacity(64 << 10);
    let mut inb = vec![0u8; 256 << 10];
    let (mut have, mut sent, mut done) = (0usize, 0usize, 0usize);
    while done < n {
        while sent < n && sent - done < WINDOW {
            out.extend_from_slice(&w.encoded[sent % w.encoded.len()]);
            sent += 1;
        }
        if !out.is_empty() {
            s.write_all(&out).await.expect("raw write");
            out.clear();
        }
        if have == inb.len() {
            inb.resize(inb.len() * 2, 0);
        }
        let k = s.read(&mut inb[have..]).await.expect("raw read");
        assert!(k > 0, "redis closed the raw connection");
        have += k;
        let mut at = 0;
        while let Some(len) = reply_len(&inb[at..have]) {
            at += len;
            done += 1;
        }
        inb.copy_within(at..have, 0);
        have -= at;
    }
}

/// redial's pipelined requests: each command its own `Vec`, a window of receipts.
pub async fn redial_round(h: &Handle, w: &Workload, n: usize) {
    let mut win: VecDeque<Receipt<Reply>> = VecDeque::with_capacity(WINDOW);
    for i in 0..n {
        if win.len() == WINDOW {
            check(win.pop_front().expect("receipt").await);
        }
        let c = w.encoded[i % w.encoded.len()].clone();
        win.push_back(h.request(c, Delivery::AtMostOnce));
    }
    for r in win {
        check(r.await);
    }
}

fn check(r: Result<Reply, redial_tokio::Undelivered>) {
    let r = r.expect("delivered");
    assert!(!r.refused, "redis refused a benchmark command");
}

/// redis-rs, pipelined the way its docs say: concurrent requests on a cloned connection
/// (either kind), at most a window of them in flight.
pub async fn redis_rs_round<C>(conn: &C, w: &Workload, n: usize)
where
    C: redis::aio::ConnectionLike + Clone + Send + 'static,
{
    let mut win = FuturesOrdered::new();
    for i in 0..n {
        if win.len() == WINDOW {
            let r: redis::RedisResult<redis::Value> = win.next().await.expect("reply");
            r.expect("redis-rs reply");
        }
        let mut c = conn.clone();
        let cmd = &w.cmds[i % w.cmds.len()];
        win.push_back(async move { cmd.query_async::<redis::Value>(&mut c).await });
    }
    while let Some(r) = win.next().await {
        r.expect("redis-rs reply");
    }
}

/// redis-rs's client config for throughput: no per-request timeout (redial has none; a
/// loaded two-core machine must not turn a slow round into an error).
fn redis_rs_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new().set_response_timeout(None)
}

fn redial_config() -> Config {
    Config::default()
}

/// Sides of a Redis table, in order: side 0 is the baseline.
pub const SIDES: [&str; 5] = [
    "raw socket A",
    "raw socket B (A/A control)",
    "redial `request`",
    "redis-rs MultiplexedConnection",
    "redis-rs ConnectionManager",
];

/// The runtime-neutral part of a table: redis-rs's two connections (made on whatever runtime
/// is current), a warm-up of every side, then `rounds` interleaved rounds in rotating order.
async fn measure<S: AsyncRead + AsyncWrite + Unpin>(
    addr: SocketAddr,
    (mut raw_a, mut raw_b): (S, S),
    h: &Handle,
    w: &Workload,
    rounds: usize,
) -> Table {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    let mux = client
        .get_multiplexed_async_connection_with_config(&redis_rs_config())
        .await
        .expect("redis-rs multiplexed");
    let mgr = redis::aio::ConnectionManager::new_with_config(
        client.clone(),
        redis::aio::ConnectionManagerConfig::new().set_response_timeout(None),
    )
    .await
    .expect("redis-rs manager");
    let warm = 2000.min(w.n);
    raw_round(&mut raw_a, w, warm).await;
    raw_round(&mut raw_b, w, warm).await;
    redial_round(h, w, warm).await;
    redis_rs_round(&mux, w, warm).await;
    redis_rs_round(&mgr, w, warm).await;
    let mut t = Table::new(&SIDES);
    for r in 0..rounds {
        for side in rotation(SIDES.len(), r) {
            let t0 = Instant::now();
            match side {
                0 => raw_round(&mut raw_a, w, w.n).await,
                1 => raw_round(&mut raw_b, w, w.n).await,
                2 => redial_round(h, w, w.n).await,
                3 => redis_rs_round(&mux, w, w.n).await,
                _ => redis_rs_round(&mgr, w, w.n).await,
            }
            t.push(side, w.n as f64 / t0.elapsed().as_secs_f64());
        }
    }
    h.close(redial_tokio::CloseMode::Immediate).await;
    t
}

/// The tokio table of `w`: `rounds` interleaved rounds, rotating order.
pub fn tokio_table(addr: SocketAddr, w: &Workload, rounds: usize) -> Table {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let raw = || async {
            let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.compat()
        };
        let raws = (raw().await, raw().await);
        let (h, _inbound, _events) = redial_tokio::builder(addr)
            .config(redial_config())
            .protocol(Resp::new())
            .spawn()
            .expect("spawn");
        measure(addr, raws, &h, w, rounds).await
    })
}

/// The smol table of `w` (redis-rs through its `smol-comp` feature: no tokio runtime is
/// current here, so it picks smol).
pub fn smol_table(addr: SocketAddr, w: &Workload, rounds: usize) -> Table {
    redial_smol::block_on(async {
        let raw = || async {
            let s = async_net::TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s
        };
        let raws = (raw().await, raw().await);
        let (h, _inbound, _events) = redial_smol::builder(addr)
            .config(redial_config())
            .protocol(Resp::new())
            .spawn()
            .expect("spawn");
        measure(addr, raws, &h, w, rounds).await
    })
}
