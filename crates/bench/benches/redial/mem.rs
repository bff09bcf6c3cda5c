//! Memory (section 5): static sizes, and RSS / live heap of N idle sessions vs N raw streams
//! with a reader task each. Each measurement runs in a fresh child process against a holder child
//! that accepts and keeps every connection (so server-side sockets are not counted).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use redial_tokio::{Config, Heartbeat, LengthCodec, State};
use tokio::io::AsyncReadExt;

use crate::util::{live_bytes, proc_status_kib};

/// Child: accept and hold connections forever; prints the address on stdout.
pub fn hold() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.set_reuse_address(true).expect("reuse");
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        sock.bind(&addr.into()).expect("bind");
        sock.listen(8192).expect("listen");
        sock.set_nonblocking(true).expect("nonblocking");
        let l = tokio::net::TcpListener::from_std(sock.into()).expect("listener");
        println!("{}", l.local_addr().expect("addr"));
        std::io::stdout().flush().expect("flush");
        let mut held = Vec::new();
        loop {
            if let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        }
    });
}

/// Spawns a holder child; returns it with its address.
pub fn spawn_holder(exe: &std::path::Path) -> (std::process::Child, SocketAddr) {
    let mut child = std::process::Command::new(exe)
        .arg("hold")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn holder");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("holder address");
    (child, line.trim().parse().expect("holder address"))
}

/// Child: `which` = "redial-tokio" | "redial-tokio-no-events" | "raw-tokio"; prints
/// `rss_kib_delta heap_bytes_delta`.
pub fn measure(which: &str, n: usize, addr: SocketAddr) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rss0 = proc_status_kib("VmRSS:");
        let heap0 = live_bytes();
        let mut sessions = Vec::new();
        let mut raws = Vec::new();
        // Idle sessions: a heartbeat far away so nothing happens while measuring. One
        // configuration shared by every session, as a program with many sessions holds it.
        let cfg = Arc::new(Config::default().with_heartbeat(Some(Heartbeat {
            interval: Duration::from_secs(600),
            timeout: Duration::from_secs(60),
            adaptive_floor: None,
        })));
        for batch in 0..n.div_ceil(500) {
            let k = 500.min(n - batch * 500);
            for _ in 0..k {
                if which.starts_with("redial-tokio") {
                    let (handle, inbound, events) = redial_tokio::builder(addr)
                        .config(Arc::clone(&cfg))
                        .codec(LengthCodec::default())
                        .spawn()
                        .expect("spawn");
                    // The second redial side drops its `Events` (a program that does not
                    // want them): nothing is queued for it then.
                    let events = (which == "redial-tokio").then_some(events);
                    sessions.push((handle, inbound, events));
                } else {
                    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                    raws.push(tokio::spawn(async move {
                        let mut s = s;
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    }));
                }
            }
            // Let this batch connect before the next (listen backlog).
            for _ in 0..400 {
                let up = sessions
                    .iter()
                    .filter(|(h, _, _)| h.state() == State::Connected)
                    .count();
                if up == sessions.len() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let connected = if which.starts_with("redial-tokio") {
            sessions
                .iter()
                .filter(|(h, _, _)| h.state() == State::Connected)
                .count()
        } else {
            raws.len()
        };
        let rss1 = proc_status_kib("VmRSS:");
        let heap1 = live_bytes();
        println!(
            "{connected} {} {}",
            rss1.saturating_sub(rss0),
            heap1 - heap0
        );
        std::process::exit(0);
    });
}
