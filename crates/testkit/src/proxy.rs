//! An in-process TCP fault proxy on 127.0.0.1: pass-through, blackhole (half-open), refuse,
//! reset, graceful close and added latency, all switchable while connections are live.
//!
//! The proxy runs on its own thread with a private current-thread tokio runtime; every
//! control method is a plain blocking call, so tokio and smol tests drive it the same way.
//!
//! A proxy cannot fake a dead network to the kernel: during a blackhole the client's kernel
//! still gets ACKs from the proxy's, so TCP keepalive and `TCP_USER_TIMEOUT` do not fire.
//! Application heartbeats are what detect it; use [`crate::netns`] for kernel-level cuts.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc as sync_mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Chunks queued per direction: bounds memory and keeps backpressure on the sender.
const QUEUE: usize = 64;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both directions.
    PassThrough,
    /// Keep every connection, current and new, open but forward nothing either way: the
    /// half-open case. New connections are accepted but not connected upstream. Bytes are held
    /// (left unread), not lost, and flow once the mode changes, as TCP retransmission would
    /// deliver them after a partition heals.
    Blackhole,
    /// Close the listener so new connects get `ECONNREFUSED`; live connections keep
    /// forwarding. Leaving this mode re-binds the same port.
    Refuse,
}

#[derive(Clone, Copy)]
enum End {
    Reset,
    Close,
}

type Ack<T> = sync_mpsc::SyncSender<T>;

enum Cmd {
    Mode(Mode, Ack<io::Result<()>>),
    Kill(End, Ack<()>),
    Exit,
}

struct Shared {
    mode: watch::Sender<Mode>,
    upstream: Mutex<SocketAddr>,
    latency_up: AtomicU64,
    latency_down: AtomicU64,
    accepted: AtomicU64,
    live: AtomicU64,
}

/// A controllable TCP proxy from [`FaultProxy::addr`] to an upstream address.
///
/// Dropping it stops the thread and closes every socket.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cmd: mpsc::UnboundedSender<Cmd>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a pass-through proxy on 127.0.0.1 (OS-chosen port) forwarding to `upstream`.
    ///
    /// # Panics
    /// If the thread, runtime or listener cannot be created.
    pub fn start(upstream: SocketAddr) -> Self {
        let shared = Arc::new(Shared {
            mode: watch::Sender::new(Mode::PassThrough),
            upstream: Mutex::new(upstream),
            latency_up: AtomicU64::new(0),
            latency_down: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            live: AtomicU64::new(0),
        });
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = sync_mpsc::channel();
        let sh = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let setup = runtime().and_then(|rt| {
                    let l = rt.block_on(async { listen((Ipv4Addr::LOCALHOST, 0).into()) })?;
                    let addr = l.local_addr()?;
                    Ok((rt, l, addr))
                });
                match setup {
                    Ok((rt, l, addr)) => {
                        let _ = ready_tx.send(Ok(addr));
                        rt.block_on(run(l, addr, sh, cmd_rx));
                    }
                    Err(e) => drop(ready_tx.send(Err(e))),
                }
            })
            .expect("spawn fault-proxy thread");
        let addr = ready_rx
            .recv()
            .expect("fault-proxy thread died")
            .expect("bind fault-proxy listener");
        FaultProxy {
            addr,
            shared,
            cmd,
            thread: Some(thread),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes where *new* connections are forwarded; live ones keep their upstream.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = upstream;
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Switches mode; on return the listener is already closed (`Refuse`) or re-bound.
    ///
    /// # Panics
    /// If the port cannot be re-bound within about 2 s after leaving `Refuse`.
    pub fn set_mode(&self, mode: Mode) {
        self.call(|ack| Cmd::Mode(mode, ack))
            .unwrap_or_else(|e| panic!("fault proxy: re-bind {}: {e}", self.addr));
    }

    /// Sends RST (SO_LINGER 0) on both sides of every live connection; returns once closed.
    pub fn reset_all(&self) {
        self.call(|ack| Cmd::Kill(End::Reset, ack));
    }

    /// Closes both sides of every live connection gracefully (FIN); returns once closed.
    pub fn close_all(&self) {
        self.call(|ack| Cmd::Kill(End::Close, ack));
    }

    /// Delays every chunk by `d` in each direction (order preserved), from now on.
    pub fn set_latency(&self, d: Duration) {
        self.set_latency_up(d);
        self.set_latency_down(d);
    }

    /// Delays client-to-upstream chunks by `d`.
    pub fn set_latency_up(&self, d: Duration) {
        self.shared.latency_up.store(nanos(d), SeqCst);
    }

    /// Delays upstream-to-client chunks by `d`.
    pub fn set_latency_down(&self, d: Duration) {
        self.shared.latency_down.store(nanos(d), SeqCst);
    }

    /// Connections accepted since start.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(SeqCst)
    }

    /// Connections currently open (including blackholed ones not yet connected upstream).
    pub fn live(&self) -> u64 {
        self.shared.live.load(SeqCst)
    }

    fn call<R>(&self, make: impl FnOnce(Ack<R>) -> Cmd) -> R {
        let (tx, rx) = sync_mpsc::sync_channel(1);
        assert!(self.cmd.send(make(tx)).is_ok(), "fault-proxy thread gone");
        rx.recv().expect("fault-proxy thread gone")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Exit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Registry = HashMap<u64, (oneshot::Sender<End>, JoinHandle<()>)>;

async fn run(
    listener: TcpListener,
    addr: SocketAddr,
    sh: Arc<Shared>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut listener = Some(listener);
    let mut conns = Registry::new();
    loop {
        enum Ev {
            Cmd(Option<Cmd>),
            Accept(io::Result<(TcpStream, SocketAddr)>),
        }
        let ev = tokio::select! {
            c = cmds.recv() => Ev::Cmd(c),
            a = accept(listener.as_ref()) => Ev::Accept(a),
        };
        match ev {
            Ev::Accept(Ok((client, _))) => admit(client, &sh, &mut conns),
            Ev::Accept(Err(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
            Ev::Cmd(Some(Cmd::Mode(mode, ack))) => {
                let old = sh.mode.send_replace(mode);
                let res = match (old, mode) {
                    (_, Mode::Refuse) => {
                        // Connects that already completed are live for their clients: keep
                        // them rather than let closing the listener reset them.
                        if let Some(l) = listener.take() {
                            while let Ok((s, _)) = SockRef::from(&l).accept() {
                                let s = s.set_nonblocking(true).map(|()| s.into());
                                if let Ok(client) = s.and_then(TcpStream::from_std) {
                                    admit(client, &sh, &mut conns);
                                }
                            }
                        }
                        Ok(())
                    }
                    (Mode::Refuse, _) => rebind(addr).await.map(|l| listener = Some(l)),
                    _ => Ok(()),
                };
                let _ = ack.send(res);
            }
            Ev::Cmd(Some(Cmd::Kill(end, ack))) => {
                let victims: Vec<_> = conns.drain().map(|(_, v)| v).collect();
                for (kill, task) in victims {
                    let _ = kill.send(end);
                    let _ = task.await;
                }
                let _ = ack.send(());
            }
            Ev::Cmd(None | Some(Cmd::Exit)) => return,
        }
    }
}

fn admit(client: TcpStream, sh: &Arc<Shared>, conns: &mut Registry) {
    conns.retain(|_, (_, task)| !task.is_finished());
    let id = sh.accepted.fetch_add(1, SeqCst) + 1;
    sh.live.fetch_add(1, SeqCst);
    let (kill_tx, kill_rx) = oneshot::channel();
    let task = tokio::spawn(connection(client, kill_rx, Arc::clone(sh)));
    conns.insert(id, (kill_tx, task));
}

pub(crate) async fn accept(l: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

struct LiveGuard(Arc<Shared>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
    }
}

async fn connection(mut client: TcpStream, kill: oneshot::Receiver<End>, sh: Arc<Shared>) {
    let _live = LiveGuard(Arc::clone(&sh));
    let mut upstream = None;
    let end = tokio::select! {
        k = kill => k.unwrap_or(End::Close),
        e = forward(&mut client, &mut upstream, &sh) => e,
    };
    if let End::Reset = end {
        for s in std::iter::once(&client).chain(upstream.as_ref()) {
            let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Forwards until both directions have seen EOF (`Close`) or either fails (`Reset`, so an RST
/// on one side is passed on as an RST to the other).
async fn forward(client: &mut TcpStream, upstream: &mut Option<TcpStream>, sh: &Shared) -> End {
    flowing(&mut sh.mode.subscribe()).await;
    let to = *lock(&sh.upstream);
    let up = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
        Ok(Ok(s)) => upstream.insert(s),
        _ => return End::Reset,
    };
    let (cr, cw) = client.split();
    let (ur, uw) = up.split();
    match tokio::try_join!(
        pump(cr, uw, &sh.latency_up, sh),
        pump(ur, cw, &sh.latency_down, sh)
    ) {
        Ok(_) => End::Close,
        Err(_) => End::Reset,
    }
}

/// One direction as a delay line: the reader stamps each chunk with its due time, the writer
/// sends chunks in order once due. Both stall while blackholed.
async fn pump(
    mut r: impl AsyncRead + Unpin,
    mut w: impl AsyncWrite + Unpin,
    latency: &AtomicU64,
    sh: &Shared,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(QUEUE);
    let (mut mode_r, mut mode_w) = (sh.mode.subscribe(), sh.mode.subscribe());
    let read = async move {
        let mut buf = vec![0; 16 * 1024];
        loop {
            flowing(&mut mode_r).await;
            let n = r.read(&mut buf).await?;
            let due = Instant::now() + Duration::from_nanos(latency.load(SeqCst));
            let chunk = (n > 0).then(|| buf[..n].to_vec());
            if tx.send((due, chunk)).await.is_err() || n == 0 {
                return Ok::<_, io::Error>(());
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = rx.recv().await {
            sleep_until(due).await;
            flowing(&mut mode_w).await;
            match chunk {
                Some(c) => w.write_all(&c).await?,
                None => w.shutdown().await?,
            }
        }
        Ok(())
    };
    tokio::try_join!(read, write).map(drop)
}

async fn flowing(mode: &mut watch::Receiver<Mode>) {
    // The sender lives in `Shared`, which outlives every connection task.
    let _ = mode.wait_for(|m| *m != Mode::Blackhole).await;
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A current-thread runtime: it creates its sockets on the calling thread, which is what puts
/// them in that thread's network namespace.
pub(crate) fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A listener with SO_REUSEADDR so the same port can be bound again at once after a stop
/// (TIME_WAIT and surviving accepted sockets would otherwise block it). Needs a runtime context.
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// Re-binds a fixed port, retrying briefly: an outgoing connect may hold it as its ephemeral
/// local port for a moment.
pub(crate) async fn rebind(addr: SocketAddr) -> io::Result<TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match listen(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            r => return r,
        }
    }
}

/// Locks, ignoring poison: a panicking test must not cascade into teardown.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::LineServer;
    use crate::wait::wait_until;
    use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
    use std::net::TcpStream as StdStream;
    use std::time::Instant as StdInstant;

    const T: Duration = Duration::from_secs(5);

    fn echo() -> (LineServer, FaultProxy) {
        let server = LineServer::start();
        server.set_reply(Some(""));
        let proxy = FaultProxy::start(server.addr());
        (server, proxy)
    }

    fn client(p: &FaultProxy) -> (StdStream, BufReader<StdStream>) {
        let s = StdStream::connect(p.addr()).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        (s, r)
    }

    fn roundtrip(s: &mut StdStream, r: &mut BufReader<StdStream>, line: &str) {
        writeln!(s, "{line}").unwrap();
        let mut got = String::new();
        r.read_line(&mut got).unwrap();
        assert_eq!(got.trim_end(), line);
    }

    #[test]
    fn pass_through_echoes_and_counts() {
        let (_server, proxy) = echo();
        let (mut s, mut r) = client(&proxy);
        roundtrip(&mut s, &mut r, "hello");
        assert_eq!((proxy.accepted(), proxy.live()), (1, 1));
        drop((s, r));
        wait_until(T, "proxy connection closed", || proxy.live() == 0);
    }

    #[test]
    fn blackhole_keeps_connections_open_and_forwards_nothing() {
        let (server, proxy) = echo();
        let (mut s, mut r) = client(&proxy);
        roundtrip(&mut s, &mut r, "before");
        proxy.set_mode(Mode::Blackhole);
        writeln!(s, "held").unwrap();
        let (mut s2, mut r2) = client(&proxy);
        writeln!(s2, "new").unwrap();
        for r in [&mut r, &mut r2] {
            r.get_ref()
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let err = r.read(&mut [0; 16]).unwrap_err();
            assert!(matches!(
                err.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut
            ));
        }
        assert_eq!(server.received(), ["before"]);
        assert_eq!(server.connections(), 1);
        assert_eq!((proxy.accepted(), proxy.live()), (2, 2));

        proxy.set_mode(Mode::PassThrough);
        for r in [&mut r, &mut r2] {
            r.get_ref().set_read_timeout(Some(T)).unwrap();
        }
        let mut got = String::new();
        r.read_line(&mut got).unwrap();
        r2.read_line(&mut got).unwrap();
        assert_eq!(got, "held\r\nnew\r\n");
    }

    #[test]
    fn refuse_then_rebind_on_same_port() {
        let (_server, proxy) = echo();
        let (mut s, mut r) = client(&proxy);
        proxy.set_mode(Mode::Refuse);
        let err = StdStream::connect(proxy.addr()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        roundtrip(&mut s, &mut r, "live connection survives");
        proxy.set_mode(Mode::PassThrough);
        let (mut s2, mut r2) = client(&proxy);
        roundtrip(&mut s2, &mut r2, "again");
    }

    #[test]
    fn reset_and_close_end_client_connections() {
        let (server, proxy) = echo();
        let (mut s, mut r) = client(&proxy);
        roundtrip(&mut s, &mut r, "x");
        proxy.reset_all();
        assert_eq!(proxy.live(), 0);
        match r.read(&mut [0; 16]) {
            Ok(0) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
            Ok(n) => panic!("read {n} bytes after reset"),
        }
        wait_until(T, "upstream side closed", || server.live() == 0);

        let (mut s, mut r) = client(&proxy);
        roundtrip(&mut s, &mut r, "y");
        proxy.close_all();
        assert_eq!(r.read(&mut [0; 16]).unwrap(), 0, "graceful close gives EOF");
    }

    #[test]
    fn latency_delays_each_direction() {
        let (_server, proxy) = echo();
        let (mut s, mut r) = client(&proxy);
        roundtrip(&mut s, &mut r, "warm");
        proxy.set_latency(Duration::from_millis(100));
        let t = StdInstant::now();
        roundtrip(&mut s, &mut r, "slow");
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        proxy.set_latency(Duration::ZERO);
        let t = StdInstant::now();
        roundtrip(&mut s, &mut r, "fast");
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
    }
}
