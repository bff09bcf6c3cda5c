//! Test support: a real hyper server that counts what it executes, a fault proxy, a timer
//! that records every wait it is asked for, an attempt hook, and a tracing capture. Loopback
//! only.

#![allow(dead_code)] // Each test binary uses its own part of it.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

pub mod compare;

/// What the server saw of one test request (by its `x-test-id`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Requests received with this id.
    pub received: u32,
    /// Times the request's effect was applied (a keyed request is applied once per key).
    pub executed: u32,
}

/// A real hyper HTTP/1 server on 127.0.0.1.
///
/// - `x-test-id`: the id the counts are kept under;
/// - `idempotency-key`: applied once per key (a repeat gets the stored answer);
/// - `x-fail-times: N` with `x-fail-status` (default 503) and `x-retry-after`: the first N
///   requests of the id get that status (and `Retry-After`), not executed.
pub struct Server {
    pub addr: SocketAddr,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

impl Server {
    pub async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind server");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
        let keys: Arc<Mutex<HashMap<String, ()>>> = Arc::default();
        let counts = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, keys) = (Arc::clone(&counts), Arc::clone(&keys));
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (seen, keys) = (Arc::clone(&seen), Arc::clone(&keys));
                        async move { Ok::<_, Infallible>(handle(req, &seen, &keys).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Server { addr, seen }
    }

    pub fn seen(&self, id: &str) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .unwrap_or_default()
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle(
    req: Request<Incoming>,
    seen: &Mutex<HashMap<String, Seen>>,
    keys: &Mutex<HashMap<String, ()>>,
) -> Response<Full<Bytes>> {
    let id = header(&req, "x-test-id").unwrap_or("none").to_owned();
    let fail_times: u32 = header(&req, "x-fail-times")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fail_status: u16 = header(&req, "x-fail-status")
        .and_then(|v| v.parse().ok())
        .unwrap_or(503);
    let retry_after = header(&req, "x-retry-after").map(str::to_owned);
    let key = header(&req, "idempotency-key").map(str::to_owned);
    // The whole request is read before anything is applied.
    let _ = req.into_body().collect().await;
    let received = {
        let mut s = seen.lock().unwrap();
        let e = s.entry(id.clone()).or_default();
        e.received += 1;
        e.received
    };
    if received <= fail_times {
        let mut r = Response::new(Full::new(Bytes::from_static(b"try later")));
        *r.status_mut() = StatusCode::from_u16(fail_status).unwrap();
        if let Some(ra) = retry_after {
            r.headers_mut().insert("retry-after", ra.parse().unwrap());
        }
        return r;
    }
    let apply = match key {
        Some(k) => keys.lock().unwrap().insert(k, ()).is_none(),
        None => true,
    };
    if apply {
        seen.lock().unwrap().entry(id).or_default().executed += 1;
    }
    Response::new(Full::new(Bytes::from_static(b"done")))
}

/// What the proxy does to one accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Forward the request whole; when the server's answer starts, reset the client (RST) and
    /// drop the answer: the server executed it, the client never learns.
    ResetOnResponse,
    /// Forward only the first `n` request bytes, then reset the client (the server never gets
    /// the whole request).
    ResetAfter(usize),
    /// Forward both ways until [`Proxy::kill`] is notified, then reset the client and notify
    /// [`Proxy::killed`] (for HTTP/2, whose server speaks first: a server that has executed a
    /// request asks for the reset, waits for it, then answers into a dead connection).
    ResetOnSignal,
}

/// A fault proxy on 127.0.0.1 in front of `upstream`: each accepted connection takes the
/// next scripted [`Fault`] (then [`Fault::Pass`]); [`Proxy::refuse`] closes the listener so
/// connects are refused, [`Proxy::resume`] listens again on the same port.
pub struct Proxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    stop: Mutex<Option<oneshot::Sender<oneshot::Sender<()>>>>,
    pub accepted: Arc<AtomicU32>,
    /// Asks a [`Fault::ResetOnSignal`] connection to reset its client.
    pub kill: Arc<tokio::sync::Notify>,
    /// Notified once it has.
    pub killed: Arc<tokio::sync::Notify>,
}

fn listen(addr: SocketAddr) -> TcpListener {
    let s = TcpSocket::new_v4().expect("socket");
    s.set_reuseaddr(true).expect("reuseaddr");
    s.bind(addr).expect("bind proxy");
    s.listen(64).expect("listen")
}

fn rst(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = listen("127.0.0.1:0".parse().unwrap());
        let addr = listener.local_addr().expect("addr");
        let p = Proxy {
            addr,
            upstream,
            faults: Arc::default(),
            stop: Mutex::new(None),
            accepted: Arc::default(),
            kill: Arc::default(),
            killed: Arc::default(),
        };
        p.serve(listener);
        p
    }

    /// Scripts the next connections.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.faults.lock().unwrap().extend(faults);
    }

    /// Closes the listener; returns once it is closed (connects are refused from then on).
    pub async fn refuse(&self) {
        let stop = self.stop.lock().unwrap().take();
        if let Some(stop) = stop {
            let (ack, closed) = oneshot::channel();
            if stop.send(ack).is_ok() {
                let _ = closed.await;
            }
        }
    }

    /// Listens again on the same address.
    pub fn resume(&self) {
        if self.stop.lock().unwrap().is_none() {
            self.serve(listen(self.addr));
        }
    }

    fn serve(&self, listener: TcpListener) {
        let (stop, mut stopped) = oneshot::channel::<oneshot::Sender<()>>();
        *self.stop.lock().unwrap() = Some(stop);
        let (faults, upstream, accepted) = (
            Arc::clone(&self.faults),
            self.upstream,
            Arc::clone(&self.accepted),
        );
        let (kill, killed) = (Arc::clone(&self.kill), Arc::clone(&self.killed));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    ack = &mut stopped => {
                        drop(listener);
                        if let Ok(ack) = ack { let _ = ack.send(()); }
                        return;
                    }
                    conn = listener.accept() => {
                        let Ok((client, _)) = conn else { return };
                        accepted.fetch_add(1, Ordering::SeqCst);
                        let fault = faults.lock().unwrap().pop_front().unwrap_or(Fault::Pass);
                        tokio::spawn(forward(client, upstream, fault, Arc::clone(&kill), Arc::clone(&killed)));
                    }
                }
            }
        });
    }
}

async fn forward(
    mut client: TcpStream,
    upstream: SocketAddr,
    fault: Fault,
    kill: Arc<tokio::sync::Notify>,
    killed: Arc<tokio::sync::Notify>,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        rst(client);
        return;
    };
    let (mut cbuf, mut sbuf) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    let mut forwarded = 0usize;
    loop {
        tokio::select! {
            _ = kill.notified(), if fault == Fault::ResetOnSignal => {
                rst(client);
                killed.notify_one();
                return;
            }
            r = client.read(&mut cbuf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                let take = match fault {
                    Fault::ResetAfter(limit) => n.min(limit - forwarded),
                    _ => n,
                };
                if server.write_all(&cbuf[..take]).await.is_err() { return; }
                forwarded += take;
                if matches!(fault, Fault::ResetAfter(limit) if forwarded >= limit) {
                    rst(client);
                    return;
                }
            }
            r = server.read(&mut sbuf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                if fault == Fault::ResetOnResponse {
                    rst(client);
                    return;
                }
                if client.write_all(&sbuf[..n]).await.is_err() { return; }
            }
        }
    }
}

/// A [`redial_tower::Timer`] on virtual time: records every sleep asked for and completes it
/// at once; `now` is the start plus everything slept.
pub struct TestTimer {
    origin: Instant,
    pub sleeps: Mutex<Vec<Duration>>,
}

impl TestTimer {
    pub fn new() -> Arc<TestTimer> {
        Arc::new(TestTimer {
            origin: Instant::now(),
            sleeps: Mutex::new(Vec::new()),
        })
    }
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

impl redial_tower::Timer for TestTimer {
    fn now(&self) -> Instant {
        self.origin + self.sleeps.lock().unwrap().iter().sum::<Duration>()
    }
    fn sleep(&self, delay: Duration) -> redial_tower::Sleep {
        self.sleeps.lock().unwrap().push(delay);
        Box::pin(async {})
    }
}

/// A tower layer that counts attempts reaching it and calls a hook before each (1-based):
/// how a test opens the proxy again "after two refused attempts", for any retry layer above.
#[derive(Clone)]
pub struct Hook<S> {
    inner: S,
    attempts: Arc<AtomicU32>,
    hook: Arc<dyn Fn(u32) + Send + Sync>,
}

impl<S> Hook<S> {
    pub fn new(
        inner: S,
        attempts: Arc<AtomicU32>,
        hook: impl Fn(u32) + Send + Sync + 'static,
    ) -> Self {
        Hook {
            inner,
            attempts,
            hook: Arc::new(hook),
        }
    }
}

impl<S: tower::Service<R>, R> tower::Service<R> for Hook<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, req: R) -> S::Future {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        (self.hook)(n);
        self.inner.call(req)
    }
}

/// The hyper-util legacy client every test uses: no pooled connections, so each attempt is
/// a connection of its own and the proxy's script applies to it.
pub type Client<B = Full<Bytes>> =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, B>;

pub fn client<B>() -> Client<B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

/// Tracing output captured into memory, for the current thread.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every tracing event of this thread (all levels, all targets) until the guard drops.
pub fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let w = out.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    (out, tracing::subscriber::set_default(sub))
}

/// Waits for `cond`, polling, up to `within`: no fixed sleeps in tests.
pub async fn until(within: Duration, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(within, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("condition not reached in time");
}

/// Boxed future alias for hooks.
pub type BoxFut = Pin<Box<dyn Future<Output = ()> + Send>>;
