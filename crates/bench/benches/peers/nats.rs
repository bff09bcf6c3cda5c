//! NATS on tokio (async-nats is tokio's): publishes of 64 B messages, flushed, and request/reply
//! round trips against a responder, a raw socket (twice, the A/A control) vs redial vs
//! async-nats, against one `nats-server`.

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::Instant;

use futures::stream::{FuturesOrdered, StreamExt as _};
use redial_bench::{rotation, WINDOW};
use redial_core::proto::nats::{self, Nats};
use redial_core::Delivery;
use redial_tokio::{Handle, Receipt, Reply};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::table::Table;

/// Payload size of both NATS workloads.
pub const SIZE: usize = 64;
const PUB_SUBJECT: &str = "bench.pub";
const SVC_SUBJECT: &str = "bench.svc";

/// Sides of a NATS table, in order: side 0 is the baseline.
pub const SIDES: [&str; 4] = [
    "raw socket A",
    "raw socket B (A/A control)",
    "redial",
    "async-nats",
];

/// Where a NATS protocol operation ends in `buf`, and whether it is the server's `PING` (to
/// answer) or a `MSG` (a reply, for the raw requester); `None` if it is not all there yet.
/// Enough of the grammar for what these workloads receive: `INFO`, `PING`, `PONG`, `+OK`,
/// `-ERR`, `MSG subject sid [reply] len`.
fn next_op(buf: &[u8]) -> Option<(usize, Op)> {
    let nl = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    if line.starts_with(b"MSG ") {
        let len: usize = std::str::from_utf8(line.rsplit(|&b| b == b' ').next()?)
            .ok()?
            .parse()
            .ok()?;
        let total = nl + 1 + len + 2;
        if buf.len() < total {
            return None;
        }
        return Some((total, Op::Msg { line_end: nl + 1 }));
    }
    if line.starts_with(b"-ERR") {
        panic!("nats-server: {}", String::from_utf8_lossy(line));
    }
    Some((nl + 1, if line == b"PING" { Op::Ping } else { Op::Other }))
}

enum Op {
    Ping,
    Msg { line_end: usize },
    Other,
}

/// A raw NATS connection: `CONNECT` (verbose off) done, `PONG` seen.
struct RawNats {
    s: tokio::net::TcpStream,
    inb: Vec<u8>,
    have: usize,
}

impl RawNats {
    async fn connect(addr: SocketAddr) -> RawNats {
        let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let mut c = RawNats {
            s,
            inb: vec![0u8; 256 << 10],
            have: 0,
        };
        c.s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
            .await
            .expect("connect line");
        c.until_pong().await;
        c
    }

    /// Reads until the server's `PONG`, answering its `PING`s; returns the `MSG`s seen.
    async fn until_pong(&mut self) -> usize {
        let mut msgs = 0;
        loop {
            let (ops, pong) = self.read_ops(true).await;
            msgs += ops;
            if pong {
                return msgs;
            }
        }
    }

    /// One read; returns the `MSG`s in it and whether a `PONG` came (with `want_pong`, the
    /// read stops at it).
    async fn read_ops(&mut self, want_pong: bool) -> (usize, bool) {
        if self.have == self.inb.len() {
            self.inb.resize(self.inb.len() * 2, 0);
        }
        let k = self.s.read(&mut self.inb[self.have..]).await.expect("read");
        assert!(k > 0, "nats-server closed the raw connection");
        self.have += k;
        let (mut at, mut msgs, mut pong, mut ping) = (0, 0, false, false);
        while let Some((len, op)) = next_op(&self.inb[at..self.have]) {
            match op {
                Op::Msg { .. } => msgs += 1,
                Op::Ping => ping = true,
                Op::Other => {
                    pong |= &self.inb[at..at + 4] == b"PONG";
                }
            }
            at += len;
            if pong && want_pong {
                break;
            }
        }
        self.inb.copy_within(at..self.have, 0);
        self.have -= at;
        if ping {
            self.s.write_all(b"PONG\r\n").await.expect("pong");
        }
        (msgs, pong)
    }
}

/// Raw publishes through an 8 KiB buffer, then `PING` and its `PONG` (the flush).
async fn raw_publish(c: &mut RawNats, n: usize) {
    let msg = nats::publish(PUB_SUBJECT, &[7u8; SIZE]).expect("PUB");
    let mut out = Vec::with_capacity(8 << 10);
    for _ in 0..n {
        if out.len() + msg.len() > out.capacity() {
            c.s.write_all(&out).await.expect("write");
            out.clear();
        }
        out.extend_from_slice(&msg);
    }
    out.extend_from_slice(b"PING\r\n");
    c.s.write_all(&out).await.expect("write");
    c.until_pong().await;
}

/// Raw requests: `PUB svc <inbox>.<i>`, a window of them in flight, replies counted.
async fn raw_requests(c: &mut RawNats, inbox: &str, n: usize) {
    let payload = [7u8; SIZE];
    let (mut sent, mut done) = (0usize, 0usize);
    let mut out = Vec::with_capacity(64 << 10);
    while done < n {
        while sent < n && sent - done < WINDOW {
            let m = nats::publish_with_reply(SVC_SUBJECT, &format!("{inbox}.{sent}"), &payload)
                .expect("PUB");
            out.extend_from_slice(&m);
            sent += 1;
        }
        if !out.is_empty() {
            c.s.write_all(&out).await.expect("write");
            out.clear();
        }
        done += c.read_ops(false).await.0;
    }
}

async fn redial_publish(h: &Handle, n: usize) {
    let payload = [7u8; SIZE];
    let mut win: VecDeque<Receipt> = VecDeque::with_capacity(WINDOW);
    for _ in 0..n {
        if win.len() == WINDOW {
            win.pop_front().expect("receipt").await.expect("delivered");
        }
        let m = nats::publish(PUB_SUBJECT, &payload).expect("PUB");
        win.push_back(h.send(m, Delivery::AtMostOnce));
    }
    for r in win {
        r.await.expect("delivered");
    }
}

async fn redial_requests(h: &Handle, proto: &Nats, token: &mut u64, n: usize) {
    let payload = [7u8; SIZE];
    let mut win: VecDeque<Receipt<Reply>> = VecDeque::with_capacity(WINDOW);
    let check = |r: Result<Reply, redial_tokio::Undelivered>| {
        let r = r.expect("answered");
        assert!(!r.refused && r.body.len() == SIZE, "a wrong reply");
    };
    for _ in 0..n {
        if win.len() == WINDOW {
            check(win.pop_front().expect("receipt").await);
        }
        *token += 1;
        let m = proto
            .request(*token, SVC_SUBJECT, &payload)
            .expect("request");
        win.push_back(h.request(m, Delivery::AtMostOnce));
    }
    for r in win {
        check(r.await);
    }
}

async fn async_nats_publish(c: &async_nats::Client, n: usize) {
    let payload = bytes::Bytes::from_static(&[7u8; SIZE]);
    for _ in 0..n {
        c.publish(PUB_SUBJECT, payload.clone())
            .await
            .expect("publish");
    }
    c.flush().await.expect("flush");
}

async fn async_nats_requests(c: &async_nats::Client, n: usize) {
    let payload = bytes::Bytes::from_static(&[7u8; SIZE]);
    let mut win = FuturesOrdered::new();
    let check = |r: Result<async_nats::Message, async_nats::RequestError>| {
        assert_eq!(r.expect("answered").payload.len(), SIZE, "a wrong reply");
    };
    for _ in 0..n {
        if win.len() == WINDOW {
            check(win.next().await.expect("reply"));
        }
        win.push_back(c.request(SVC_SUBJECT, payload.clone()));
    }
    while let Some(r) = win.next().await {
        check(r);
    }
}

/// The responder: its own thread and plain socket; answers every request on [`SVC_SUBJECT`]
/// with its payload, writing a read's answers at once. Ends when the server goes away.
pub fn responder(addr: SocketAddr) {
    let mut s = std::net::TcpStream::connect(addr).expect("responder connect");
    s.set_nodelay(true).expect("nodelay");
    s.write_all(
        format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {SVC_SUBJECT} 1\r\nPING\r\n"
        )
        .as_bytes(),
    )
    .expect("responder SUB");
    // Subscribed once its PONG is read: requests sent after `start` returns are seen.
    let mut inb = vec![0u8; 256 << 10];
    let mut have = 0;
    let mut out = Vec::with_capacity(64 << 10);
    let mut ready = false;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || loop {
        if have == inb.len() {
            inb.resize(inb.len() * 2, 0);
        }
        let k = match s.read(&mut inb[have..]) {
            Ok(0) | Err(_) => return,
            Ok(k) => k,
        };
        have += k;
        let mut at = 0;
        while let Some((len, op)) = next_op(&inb[at..have]) {
            let unit = &inb[at..at + len];
            match op {
                Op::Ping => out.extend_from_slice(b"PONG\r\n"),
                Op::Msg { line_end } => {
                    let line = &unit[..line_end - 2];
                    let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
                    // MSG subject sid reply len
                    if let [_, _, _, reply, _] = words[..] {
                        let payload = &unit[line_end..len - 2];
                        out.extend_from_slice(b"PUB ");
                        out.extend_from_slice(reply);
                        out.extend_from_slice(format!(" {}\r\n", payload.len()).as_bytes());
                        out.extend_from_slice(payload);
                        out.extend_from_slice(b"\r\n");
                    }
                }
                Op::Other => {
                    if !ready && unit.starts_with(b"PONG") {
                        ready = true;
                        let _ = tx.send(());
                    }
                }
            }
            at += len;
        }
        inb.copy_within(at..have, 0);
        have -= at;
        if !out.is_empty() {
            if s.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("responder subscribed");
}

/// Both NATS tables: (publish, request/reply).
pub fn tables(addr: SocketAddr, rounds: usize, n_pub: usize, n_req: usize) -> (Table, Table) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut raw_a, mut raw_b) = (RawNats::connect(addr).await, RawNats::connect(addr).await);
        let inbox = format!("_INBOX.redial{}", std::process::id());
        let proto = Nats::new().with_inbox(&inbox);
        let (h, _inbound, _events) = redial_tokio::builder(addr)
            .protocol(proto.clone())
            .spawn()
            .expect("spawn");
        let peer = async_nats::connect(addr.to_string())
            .await
            .expect("async-nats connect");
        let raw_inbox = |c: &str| format!("_INBOX.raw{c}{}", std::process::id());
        for (c, name) in [(&mut raw_a, "a"), (&mut raw_b, "b")] {
            let sub = format!("SUB {}.* 1\r\nPING\r\n", raw_inbox(name));
            c.s.write_all(sub.as_bytes()).await.expect("SUB");
            c.until_pong().await;
        }
        let mut token = 0u64;
        // Warm up every side (and let redial connect and subscribe its inbox).
        raw_publish(&mut raw_a, 2000).await;
        raw_publish(&mut raw_b, 2000).await;
        redial_publish(&h, 2000).await;
        async_nats_publish(&peer, 2000).await;
        raw_requests(&mut raw_a, &raw_inbox("a"), 1000).await;
        raw_requests(&mut raw_b, &raw_inbox("b"), 1000).await;
        redial_requests(&h, &proto, &mut token, 1000).await;
        async_nats_requests(&peer, 1000).await;
        let mut publish = Table::new(&SIDES);
        let mut request = Table::new(&SIDES);
        for r in 0..rounds {
            for side in rotation(SIDES.len(), r) {
                let t0 = Instant::now();
                match side {
                    0 => raw_publish(&mut raw_a, n_pub).await,
                    1 => raw_publish(&mut raw_b, n_pub).await,
                    2 => redial_publish(&h, n_pub).await,
                    _ => async_nats_publish(&peer, n_pub).await,
                }
                publish.push(side, n_pub as f64 / t0.elapsed().as_secs_f64());
            }
            for side in rotation(SIDES.len(), r) {
                let t0 = Instant::now();
                match side {
                    0 => raw_requests(&mut raw_a, &raw_inbox("a"), n_req).await,
                    1 => raw_requests(&mut raw_b, &raw_inbox("b"), n_req).await,
                    2 => redial_requests(&h, &proto, &mut token, n_req).await,
                    _ => async_nats_requests(&peer, n_req).await,
                }
                request.push(side, n_req as f64 / t0.elapsed().as_secs_f64());
            }
        }
        h.close(redial_tokio::CloseMode::Immediate).await;
        (publish, request)
    })
}
