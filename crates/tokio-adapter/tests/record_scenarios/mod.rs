//! Record → replay scenarios against real servers, for any adapter (included by the tokio
//! and smol `record` tests): a recorded real session replays identically, and no credential
//! reaches the trace. Sessions run on the test's thread (`spawn_local`).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redial_driver::core::proto::nats::{self, Nats};
use redial_driver::core::proto::resp::{cmd, Resp};
use redial_driver::{
    Builder, CloseMode, Config, Connector, Delivery, Heartbeat, Notification, Runtime, SpawnLocal,
};

const LONG: Duration = Duration::from_secs(15);

/// A `Write` into shared memory, for capturing a recorded trace.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A server child process on a free loopback port, killed (and reaped) on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    program: &'static str,
    args: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    fn start(program: &'static str, args: impl Fn(u16) -> Vec<String>) -> Server {
        let port = free_port();
        let args = args(port);
        let mut s = Server {
            child: spawn(program, &args),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            program,
            args,
        };
        s.wait_up();
        s
    }

    fn wait_up(&mut self) {
        let t = Instant::now();
        while TcpStream::connect(self.addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited at start: {status}", self.program);
            }
            assert!(t.elapsed() < LONG, "{} did not listen", self.program);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the server and starts it again on the same port.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.program, &self.args);
        self.wait_up();
    }
}

fn spawn(program: &str, args: &[String]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed for this test: {e}"))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fast() -> Config {
    let mut c = Config::default().with_heartbeat(Some(Heartbeat {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        adaptive_floor: None,
    }));
    c.backoff = c.backoff.with_initial(Duration::from_millis(10));
    c.give_up = redial_driver::GiveUp::NEVER;
    c
}

async fn sleep<R: Runtime>(rt: &R, d: Duration) {
    rt.sleep_until(rt.now() + d).await;
}

/// Waits (bounded) until `f` holds, checking every few milliseconds.
async fn wait_for<R: Runtime>(rt: &R, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < LONG, "timed out waiting for {what}");
        sleep(rt, Duration::from_millis(5)).await;
    }
}

fn assert_replays(trace: &SharedBuf, secrets: &[&str]) -> redial_driver::trace::Replayed {
    let text = trace.text();
    for s in secrets {
        let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(s), "secret {s:?} in the trace");
        assert!(!text.contains(&hex), "secret {s:?} in the trace as hex");
    }
    let replayed = redial_driver::trace::replay(text.as_bytes()).expect("the trace replays");
    assert!(replayed.recorded.len() > 20, "{}", replayed.recorded.len());
    assert!(replayed.reads > 0, "no reads recorded");
    assert_eq!(replayed.actions.len(), replayed.recorded.len());
    assert_eq!(replayed.first_mismatch(), None, "{text}");
    assert_eq!(replayed.read_mismatch, None, "{text}");
    assert!(replayed.truncated.is_none());
    replayed
}

/// A Redis session with a password: hostile values, a multi-line reply, a user's own PING, a
/// server restart (a reconnect with AUTH again), then replayed: identical, and the password
/// is nowhere in the trace.
pub async fn redis_session_replays_identically<R: SpawnLocal, C: Connector + 'static>(
    rt: R,
    builder: impl Fn(SocketAddr) -> Builder<R, C>,
) {
    const PASSWORD: &str = "pw-s3cret-never-recorded";
    let mut server = Server::start("redis-server", |port| {
        [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            PASSWORD,
        ]
        .map(str::to_owned)
        .to_vec()
    });
    let trace = SharedBuf::default();
    let (h, _inbound, mut events) = builder(server.addr)
        .config(fast())
        .protocol(Resp::new().with_auth(None, PASSWORD.as_bytes()))
        .record(trace.clone())
        .spawn_local()
        .unwrap();
    let req = |args: &[&str]| h.request(cmd(args), Delivery::AtMostOnce);
    assert_eq!(req(&["SET", "a", "+PONG"]).await.unwrap().body, b"+OK\r\n");
    assert_eq!(req(&["GET", "a"]).await.unwrap().body, b"$5\r\n+PONG\r\n");
    req(&["DEL", "l"]).await.unwrap();
    req(&["RPUSH", "l", "1", "a\r\nb", "$5"]).await.unwrap();
    assert_eq!(
        req(&["LRANGE", "l", "0", "-1"]).await.unwrap().body,
        b"*3\r\n$1\r\n1\r\n$4\r\na\r\nb\r\n$2\r\n$5\r\n"
    );
    assert_eq!(req(&["PING"]).await.unwrap().body, b"+PONG\r\n");
    // A reply larger than one small read: read on through the heap buffer (and recorded as
    // several reads that the replay must put back together).
    let big = "v\r\n".repeat(40_000);
    req(&["SET", "big", &big]).await.unwrap();
    let got = req(&["GET", "big"]).await.unwrap().body;
    assert_eq!(got, format!("${}\r\n{big}\r\n", big.len()).into_bytes());
    let err = req(&["INCR", "a"]).await.unwrap();
    assert!(err.refused, "an -ERR reply is a refusal");
    // Heartbeats run meanwhile: at least one RTT sample.
    let mut rtt = false;
    while !rtt {
        let e = events.next().await.expect("events");
        rtt = matches!(e.notification, Notification::Rtt { .. });
    }
    server.restart();
    // The first request after the restart may meet the dead socket: in doubt, or delivered
    // on the new connection. Wait for the reconnect, then go on.
    loop {
        let e = events.next().await.expect("events");
        if matches!(e.notification, Notification::Connected { .. }) {
            break;
        }
    }
    let mut reply = req(&["SET", "b", "-ERR x"]).await;
    for _ in 0..3 {
        if reply.is_ok() {
            break;
        }
        sleep(&rt, Duration::from_millis(50)).await;
        reply = req(&["SET", "b", "-ERR x"]).await;
    }
    assert_eq!(reply.unwrap().body, b"+OK\r\n");
    assert_eq!(req(&["GET", "b"]).await.unwrap().body, b"$6\r\n-ERR x\r\n");
    h.close(CloseMode::Graceful {
        drain: Duration::from_secs(1),
    })
    .await;
    wait_for(&rt, "the trace", || !trace.0.lock().unwrap().is_empty()).await;
    let r = assert_replays(&trace, &[PASSWORD]);
    assert!(r.protocol.to_string().contains("auth"), "{}", r.protocol);
    assert!(
        r.recorded
            .iter()
            .filter(|a| a.contains("Connected {"))
            .count()
            >= 2,
        "a reconnect was recorded"
    );
}

/// A NATS session with a token: a subscription receiving payloads that look like protocol
/// (`PING`, `+OK`, CR LF), then replayed: identical, and the token is nowhere in the trace.
pub async fn nats_session_replays_identically<R: SpawnLocal, C: Connector + 'static>(
    rt: R,
    builder: impl Fn(SocketAddr) -> Builder<R, C>,
) {
    const TOKEN: &str = "tok-s3cret-never-recorded";
    let server = Server::start("nats-server", |port| {
        ["-a", "127.0.0.1", "-p", &port.to_string(), "--auth", TOKEN]
            .map(str::to_owned)
            .to_vec()
    });
    let trace = SharedBuf::default();
    let (h, _inbound, _events) = builder(server.addr)
        .config(fast())
        .protocol(Nats::new().with_token(TOKEN).with_name("record-test"))
        .record(trace.clone())
        .spawn_local()
        .unwrap();
    let mut sub = h.subscribe(nats::subscription("rec.>", None));
    let payloads: [&[u8]; 4] = [b"PING", b"+OK", b"a\r\nb", b"-ERR 'x'"];
    // The subscription is in place once a message published after it arrives.
    let mut got = Vec::new();
    let t = Instant::now();
    while got.is_empty() {
        assert!(t.elapsed() < LONG, "the subscription never delivered");
        h.send(
            nats::publish("rec.probe", b"probe").unwrap(),
            Delivery::AtMostOnce,
        )
        .await
        .unwrap();
        let next =
            futures::future::select(sub.next(), Box::pin(sleep(&rt, Duration::from_millis(100))))
                .await;
        if let futures::future::Either::Left((Some(m), _)) = next {
            got.push(m.body);
        }
    }
    for p in payloads {
        h.send(nats::publish("rec.data", p).unwrap(), Delivery::AtMostOnce)
            .await
            .unwrap();
    }
    let mut data = Vec::new();
    while data.len() < payloads.len() {
        let m = sub.next().await.expect("messages");
        if m.topic == b"rec.data" {
            data.push(m.body);
        }
    }
    assert_eq!(data, payloads.map(<[u8]>::to_vec));
    drop(sub);
    h.close(CloseMode::Graceful {
        drain: Duration::from_secs(1),
    })
    .await;
    let r = assert_replays(&trace, &[TOKEN]);
    assert!(r.protocol.to_string().contains("NATS"), "{}", r.protocol);
}
