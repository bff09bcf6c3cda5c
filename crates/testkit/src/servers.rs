//! Servers for tests: scriptable in-process line and length-prefixed servers, and real
//! `redis-server` / `nats-server` child processes.
//!
//! In-process servers run on their own thread with a private current-thread tokio runtime and
//! are controlled with blocking calls, like [`crate::proxy::FaultProxy`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc as sync_mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use crate::netns;
use crate::proxy::{accept, listen, lock, rebind, runtime};

// ---------------------------------------------------------------------------------------------
// Generic in-process server

/// Framing plug-in for [`Server`]: decodes what clients send, logs it, and picks the answers.
pub trait Protocol: Default + Send + Sync + 'static {
    /// Per-connection decoder state.
    type Conn: Default + Send + 'static;

    /// Bytes to send as soon as connection number `conn` is accepted.
    fn greeting(&self, conn: u64) -> Option<Vec<u8>>;

    /// Consumes bytes received on connection `conn`, appending `(delay, bytes)` answers to
    /// `out`. Answers are written in order, each no earlier than `delay` after this call.
    /// Returning `false` closes the connection (framing violation).
    fn on_data(
        &self,
        conn: u64,
        state: &mut Self::Conn,
        data: &[u8],
        out: &mut Vec<(Duration, Vec<u8>)>,
    ) -> bool;

    /// While `true`, nothing at all is written: due answers and injected bytes are discarded,
    /// modelling a frozen peer whose connections stay open.
    fn silent(&self) -> bool {
        false
    }
}

/// A scriptable TCP server on its own thread; use it as [`LineServer`] or [`LenServer`].
///
/// Dropping it closes the listener and every connection and joins the thread.
pub struct Server<P> {
    addr: SocketAddr,
    proto: Arc<P>,
    core: Arc<Core>,
    cmd: mpsc::UnboundedSender<Cmd>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Newline-delimited text server; see [`LineProtocol`] for its behaviour.
pub type LineServer = Server<LineProtocol>;

/// Length-prefixed binary server; see [`LenProtocol`] for the framing.
pub type LenServer = Server<LenProtocol>;

#[derive(Default)]
struct Core {
    accepted: AtomicU64,
    live: AtomicU64,
    conns: Mutex<HashMap<u64, Conn>>,
}

struct Conn {
    inject: mpsc::UnboundedSender<Vec<u8>>,
    task: JoinHandle<()>,
}

type Ack<T> = sync_mpsc::SyncSender<T>;

enum Cmd {
    KillAll(Ack<()>),
    Stop(Ack<()>),
    Start(Ack<io::Result<()>>),
    Exit,
}

impl<P: Protocol> Server<P> {
    /// Starts on 127.0.0.1 with an OS-chosen port.
    ///
    /// # Panics
    /// If the thread, runtime or listener cannot be created.
    pub fn start() -> Self {
        Self::bind((Ipv4Addr::LOCALHOST, 0).into()).expect("bind test server on 127.0.0.1")
    }

    /// Starts on `addr`; a fixed port lets a test bring a server back where clients expect it.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::spawn(None, addr)
    }

    /// Starts inside network namespace `ns` (a name as `ip netns` knows it, or a path) on
    /// `ip:port`. The server thread enters the namespace before it creates any socket.
    pub fn start_in_netns(ns: &str, ip: IpAddr, port: u16) -> io::Result<Self> {
        Self::spawn(Some(ns.to_owned()), SocketAddr::new(ip, port))
    }

    fn spawn(ns: Option<String>, addr: SocketAddr) -> io::Result<Self> {
        let proto = Arc::new(P::default());
        let core = Arc::new(Core::default());
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = sync_mpsc::channel();
        let (p, c) = (Arc::clone(&proto), Arc::clone(&core));
        let thread = thread::Builder::new()
            .name("test-server".into())
            .spawn(move || {
                let setup = || -> io::Result<_> {
                    if let Some(ns) = &ns {
                        netns::enter(ns)?;
                    }
                    let rt = runtime()?;
                    let l = rt.block_on(async { listen(addr) })?;
                    let addr = l.local_addr()?;
                    Ok((rt, l, addr))
                };
                match setup() {
                    Ok((rt, l, addr)) => {
                        let _ = ready_tx.send(Ok(addr));
                        rt.block_on(run(l, addr, p, c, cmd_rx));
                    }
                    Err(e) => drop(ready_tx.send(Err(e))),
                }
            })?;
        match ready_rx.recv() {
            Ok(Ok(addr)) => Ok(Server {
                addr,
                proto,
                core,
                cmd,
                thread: Some(thread),
            }),
            res => {
                let _ = thread.join();
                Err(match res {
                    Ok(Err(e)) => e,
                    _ => io::Error::other("server thread died"),
                })
            }
        }
    }

    /// The bound address (fixed across [`stop`](Self::stop) / [`start_again`](Self::start_again)).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted since start; connection numbers are `1..=connections()`.
    pub fn connections(&self) -> u64 {
        self.core.accepted.load(SeqCst)
    }

    /// Connections currently open.
    pub fn live(&self) -> u64 {
        self.core.live.load(SeqCst)
    }

    /// Queues raw bytes to every live connection, after answers already queued (malformed or
    /// oversized frames, server-initiated pings). Returns without waiting for the write.
    pub fn send_to_all(&self, bytes: &[u8]) {
        for c in lock(&self.core.conns).values() {
            let _ = c.inject.send(bytes.to_vec());
        }
    }

    /// Closes every connection (RST if unread input is pending, else FIN); the listener stays.
    /// Returns once they are closed.
    pub fn kill_all(&self) {
        self.call(Cmd::KillAll);
    }

    /// Closes the listener and every connection, freeing the port; logs and counters are kept.
    pub fn stop(&self) {
        self.call(Cmd::Stop);
    }

    /// Re-binds the same address after [`stop`](Self::stop); a no-op while running.
    ///
    /// # Panics
    /// If the port cannot be bound again within about 2 s.
    pub fn start_again(&self) {
        self.call(Cmd::Start)
            .unwrap_or_else(|e| panic!("test server: re-bind {}: {e}", self.addr));
    }

    fn call<R>(&self, make: impl FnOnce(Ack<R>) -> Cmd) -> R {
        let (tx, rx) = sync_mpsc::sync_channel(1);
        assert!(self.cmd.send(make(tx)).is_ok(), "test server thread gone");
        rx.recv().expect("test server thread gone")
    }
}

impl<P> Drop for Server<P> {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Exit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn run<P: Protocol>(
    listener: TcpListener,
    addr: SocketAddr,
    proto: Arc<P>,
    core: Arc<Core>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut listener = Some(listener);
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
            Ev::Accept(Ok((stream, _))) => {
                let mut conns = lock(&core.conns);
                conns.retain(|_, c| !c.task.is_finished());
                let id = core.accepted.fetch_add(1, SeqCst) + 1;
                core.live.fetch_add(1, SeqCst);
                let (inject, rx) = mpsc::unbounded_channel();
                let task =
                    tokio::spawn(serve(stream, id, Arc::clone(&proto), Arc::clone(&core), rx));
                conns.insert(id, Conn { inject, task });
            }
            Ev::Accept(Err(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
            Ev::Cmd(Some(Cmd::KillAll(ack))) => {
                kill_all(&core).await;
                let _ = ack.send(());
            }
            Ev::Cmd(Some(Cmd::Stop(ack))) => {
                listener = None;
                kill_all(&core).await;
                let _ = ack.send(());
            }
            Ev::Cmd(Some(Cmd::Start(ack))) => {
                let res = match listener {
                    Some(_) => Ok(()),
                    None => rebind(addr).await.map(|l| listener = Some(l)),
                };
                let _ = ack.send(res);
            }
            Ev::Cmd(None | Some(Cmd::Exit)) => break,
        }
    }
    kill_all(&core).await;
}

async fn kill_all(core: &Core) {
    let conns: Vec<Conn> = lock(&core.conns).drain().map(|(_, c)| c).collect();
    for c in &conns {
        c.task.abort();
    }
    for c in conns {
        let _ = c.task.await;
    }
}

struct LiveGuard(Arc<Core>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
    }
}

async fn serve<P: Protocol>(
    mut s: TcpStream,
    id: u64,
    proto: Arc<P>,
    core: Arc<Core>,
    mut inject: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let _live = LiveGuard(core);
    let mut state = P::Conn::default();
    let mut queue: VecDeque<(Instant, Vec<u8>)> = proto
        .greeting(id)
        .map(|g| (Instant::now(), g))
        .into_iter()
        .collect();
    let mut buf = vec![0; 64 * 1024];
    let mut out = Vec::new();
    loop {
        enum Ev {
            Read(io::Result<usize>),
            Inject(Option<Vec<u8>>),
            Due,
        }
        let due = queue.front().map(|(t, _)| *t);
        let ev = tokio::select! {
            r = s.read(&mut buf) => Ev::Read(r),
            m = inject.recv() => Ev::Inject(m),
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => Ev::Due,
        };
        match ev {
            Ev::Read(Ok(0) | Err(_)) | Ev::Inject(None) => return,
            Ev::Read(Ok(n)) => {
                let open = proto.on_data(id, &mut state, &buf[..n], &mut out);
                let now = Instant::now();
                queue.extend(out.drain(..).map(|(d, b)| (now + d, b)));
                if !open {
                    return;
                }
            }
            Ev::Inject(Some(b)) => queue.push_back((Instant::now(), b)),
            Ev::Due => {
                let Some((_, b)) = queue.pop_front() else {
                    continue;
                };
                if !proto.silent() && s.write_all(&b).await.is_err() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Line protocol

/// Longest line kept; longer ones are logged as `<truncated line of N bytes>`.
pub const MAX_LINE: usize = 1 << 20;

/// Newline-delimited text: every line (without `\r\n`) except `PING` is logged with its
/// connection number; `PING` (any case) is counted and answered with the pong line. Everything
/// the server writes ends in `\r\n`. Answers are sent in order, like a sequential server: a
/// delayed reply also holds back a later pong.
#[derive(Default)]
pub struct LineProtocol {
    log: Mutex<Vec<(u64, String)>>,
    pings: AtomicU64,
    knobs: Mutex<LineKnobs>,
}

#[derive(Clone)]
struct LineKnobs {
    pong: String,
    answer_pings: bool,
    reply: Option<String>,
    reply_delay: Duration,
    silent: bool,
    greeting: Option<String>,
}

impl Default for LineKnobs {
    fn default() -> Self {
        LineKnobs {
            pong: "PONG".into(),
            answer_pings: true,
            reply: None,
            reply_delay: Duration::ZERO,
            silent: false,
            greeting: None,
        }
    }
}

/// Per-connection line assembly for [`LineProtocol`].
#[derive(Default)]
pub struct LineConn {
    partial: Vec<u8>,
    /// Length of an over-long line being skipped; 0 when none.
    overflow: usize,
}

impl LineConn {
    fn push(&mut self, bytes: &[u8]) {
        if self.overflow > 0 || self.partial.len() + bytes.len() > MAX_LINE {
            self.overflow += self.partial.len() + bytes.len();
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn take(&mut self) -> String {
        if self.overflow > 0 {
            return format!(
                "<truncated line of {} bytes>",
                std::mem::take(&mut self.overflow)
            );
        }
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8_lossy(&line).into_owned()
    }
}

impl Protocol for LineProtocol {
    type Conn = LineConn;

    fn greeting(&self, _conn: u64) -> Option<Vec<u8>> {
        let k = lock(&self.knobs);
        let g = k.greeting.as_ref().filter(|_| !k.silent)?;
        Some(format!("{g}\r\n").into_bytes())
    }

    fn on_data(
        &self,
        conn: u64,
        st: &mut LineConn,
        mut data: &[u8],
        out: &mut Vec<(Duration, Vec<u8>)>,
    ) -> bool {
        let k = lock(&self.knobs).clone();
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            st.push(&data[..i]);
            data = &data[i + 1..];
            let line = st.take();
            if line.eq_ignore_ascii_case("PING") {
                self.pings.fetch_add(1, SeqCst);
                if k.answer_pings {
                    out.push((Duration::ZERO, format!("{}\r\n", k.pong).into_bytes()));
                }
                continue;
            }
            if let Some(prefix) = &k.reply {
                out.push((k.reply_delay, format!("{prefix}{line}\r\n").into_bytes()));
            }
            lock(&self.log).push((conn, line));
        }
        st.push(data);
        true
    }

    fn silent(&self) -> bool {
        lock(&self.knobs).silent
    }
}

impl Server<LineProtocol> {
    fn knobs(&self) -> std::sync::MutexGuard<'_, LineKnobs> {
        lock(&self.proto.knobs)
    }

    /// Every non-PING line received, from any connection, in arrival order.
    pub fn received(&self) -> Vec<String> {
        lock(&self.proto.log)
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Like [`received`](Self::received), with the connection number each line came on.
    pub fn received_with_conn(&self) -> Vec<(u64, String)> {
        lock(&self.proto.log).clone()
    }

    /// Empties the received log.
    pub fn clear_received(&self) {
        lock(&self.proto.log).clear();
    }

    /// PING lines received.
    pub fn pings(&self) -> u64 {
        self.proto.pings.load(SeqCst)
    }

    /// The line sent in answer to PING (default `PONG`; `+PONG` for Redis style).
    pub fn set_pong(&self, line: &str) {
        self.knobs().pong = line.into();
    }

    /// Whether PINGs are answered (default) or only counted.
    pub fn set_answer_pings(&self, on: bool) {
        self.knobs().answer_pings = on;
    }

    /// `Some(prefix)`: answer every data line with `"{prefix}{line}"`; `None` (default): no
    /// replies.
    pub fn set_reply(&self, prefix: Option<&str>) {
        self.knobs().reply = prefix.map(Into::into);
    }

    /// Delay before each reply to a data line (not pongs, though they queue behind replies).
    pub fn set_reply_delay(&self, d: Duration) {
        self.knobs().reply_delay = d;
    }

    /// Read and log but write nothing at all (replies, pongs, greetings, injected bytes are
    /// discarded): a frozen peer whose connections stay open.
    pub fn set_silent(&self, on: bool) {
        self.knobs().silent = on;
    }

    /// A line sent on every new connection (e.g. a NATS-like `INFO {}`); `None` (default): none.
    pub fn set_greeting(&self, line: Option<&str>) {
        self.knobs().greeting = line.map(Into::into);
    }
}

// ---------------------------------------------------------------------------------------------
// Length-delimited protocol

/// Frame type byte: application data.
pub const FRAME_DATA: u8 = 0;
/// Frame type byte: ping (its payload is echoed in the pong).
pub const FRAME_PING: u8 = 1;
/// Frame type byte: pong.
pub const FRAME_PONG: u8 = 2;
/// Largest accepted frame body; a longer announced length closes the connection.
pub const MAX_FRAME: usize = 1 << 20;

/// Encodes one frame: `u32` big-endian length of `[kind] + payload`, then those bytes.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len() + 1).expect("frame too long");
    let mut f = Vec::with_capacity(payload.len() + 5);
    f.extend_from_slice(&len.to_be_bytes());
    f.push(kind);
    f.extend_from_slice(payload);
    f
}

/// Length-delimited binary frames (see [`frame`]): data payloads are logged, pings answered
/// with pongs carrying the same payload, pongs counted, empty and unknown frames ignored.
#[derive(Default)]
pub struct LenProtocol {
    log: Mutex<Vec<(u64, Vec<u8>)>>,
    pings: AtomicU64,
    pongs: AtomicU64,
    ignore_pings: AtomicBool,
    silent: AtomicBool,
}

/// Per-connection frame assembly for [`LenProtocol`].
#[derive(Default)]
pub struct LenConn {
    buf: Vec<u8>,
}

impl Protocol for LenProtocol {
    type Conn = LenConn;

    fn greeting(&self, _conn: u64) -> Option<Vec<u8>> {
        None
    }

    fn on_data(
        &self,
        conn: u64,
        st: &mut LenConn,
        data: &[u8],
        out: &mut Vec<(Duration, Vec<u8>)>,
    ) -> bool {
        st.buf.extend_from_slice(data);
        while let Some(head) = st.buf.first_chunk::<4>() {
            let n = u32::from_be_bytes(*head) as usize;
            if n > MAX_FRAME {
                return false;
            }
            if st.buf.len() < 4 + n {
                break;
            }
            let body: Vec<u8> = st.buf.drain(..4 + n).skip(4).collect();
            match body.split_first() {
                Some((&FRAME_DATA, p)) => lock(&self.log).push((conn, p.to_vec())),
                Some((&FRAME_PING, p)) => {
                    self.pings.fetch_add(1, SeqCst);
                    if !self.ignore_pings.load(SeqCst) {
                        out.push((Duration::ZERO, frame(FRAME_PONG, p)));
                    }
                }
                Some((&FRAME_PONG, _)) => drop(self.pongs.fetch_add(1, SeqCst)),
                _ => {}
            }
        }
        true
    }

    fn silent(&self) -> bool {
        self.silent.load(SeqCst)
    }
}

impl Server<LenProtocol> {
    /// Every data payload received, in arrival order.
    pub fn received(&self) -> Vec<Vec<u8>> {
        lock(&self.proto.log)
            .iter()
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Like [`received`](Self::received), with connection numbers.
    pub fn received_with_conn(&self) -> Vec<(u64, Vec<u8>)> {
        lock(&self.proto.log).clone()
    }

    /// Ping frames received.
    pub fn pings(&self) -> u64 {
        self.proto.pings.load(SeqCst)
    }

    /// Pong frames received (answers to pings injected with [`send_raw_to_all`](Self::send_raw_to_all)).
    pub fn pongs(&self) -> u64 {
        self.proto.pongs.load(SeqCst)
    }

    /// Whether pings are answered (default) or only counted.
    pub fn set_answer_pings(&self, on: bool) {
        self.proto.ignore_pings.store(!on, SeqCst);
    }

    /// Read and log but write nothing at all.
    pub fn set_silent(&self, on: bool) {
        self.proto.silent.store(on, SeqCst);
    }

    /// Same as [`send_to_all`](Self::send_to_all): queue raw bytes (use [`frame`] for
    /// well-formed ones) to every live connection.
    pub fn send_raw_to_all(&self, bytes: &[u8]) {
        self.send_to_all(bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// Real servers

/// True when env `REDIAL_REQUIRE_REAL=1`: missing real servers or namespaces fail tests
/// instead of skipping them.
pub fn require_real() -> bool {
    std::env::var_os("REDIAL_REQUIRE_REAL").is_some_and(|v| v == "1")
}

/// Reports a test that cannot run here: panics if [`require_real`], else prints
/// `SKIPPED: {what}: {why}` to stderr (the caller then returns early).
#[track_caller]
pub fn skip_or_fail(what: &str, why: &str) {
    assert!(
        !require_real(),
        "{what}: {why} (REDIAL_REQUIRE_REAL=1 forbids skipping)"
    );
    eprintln!("SKIPPED: {what}: {why}");
}

/// Why a real server could not be provided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The program is not installed (not on PATH nor in the sbin directories).
    Missing(String),
    /// It is installed but did not start or answer in time; the reason includes its log tail.
    Failed(String),
}

/// The spelling used by callers that think of it as "skip this test".
pub type Skip = Unavailable;

impl Unavailable {
    /// The human-readable reason.
    pub fn reason(&self) -> &str {
        match self {
            Unavailable::Missing(r) | Unavailable::Failed(r) => r,
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Unavailable {}

/// Finds an executable on PATH, then in the sbin directories (a non-login root PATH may lack
/// them, and Debian puts `ip`, `iptables` and `nats-server` there).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `sig` to process `pid`.
#[allow(unsafe_code)]
pub(crate) fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A child server process: started (optionally under `ip netns exec`), probed until ready,
/// killed and reaped on drop.
pub(crate) struct Daemon {
    program: PathBuf,
    args: Vec<String>,
    pub(crate) addr: SocketAddr,
    netns: Option<String>,
    probe: fn(&mut StdStream) -> io::Result<()>,
    log: PathBuf,
    config: Option<PathBuf>,
    child: Option<Child>,
}

pub(crate) fn temp_path(kind: &str, ext: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, SeqCst);
    std::env::temp_dir().join(format!("redial-{kind}-{}-{n}.{ext}", std::process::id()))
}

pub(crate) fn free_port() -> Result<u16, Unavailable> {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Unavailable::Failed(format!("no free loopback port: {e}")))
}

/// Runs `f` on the calling thread, or on a fresh thread inside `ns`.
fn within<T: Send>(ns: Option<&str>, f: impl FnOnce() -> T + Send) -> T {
    match ns {
        Some(ns) => netns::run_in_ns(ns, f),
        None => f(),
    }
}

impl Daemon {
    pub(crate) fn new(
        kind: &str,
        bin: PathBuf,
        mut args: Vec<String>,
        addr: SocketAddr,
        netns: Option<&str>,
        probe: fn(&mut StdStream) -> io::Result<()>,
    ) -> Result<Self, Unavailable> {
        let program = match netns {
            None => bin,
            Some(ns) => {
                let ip =
                    which("ip").ok_or_else(|| Unavailable::Missing("`ip` not found".into()))?;
                let exec = ["netns", "exec", ns, &bin.to_string_lossy()].map(String::from);
                args.splice(0..0, exec);
                ip
            }
        };
        Ok(Daemon {
            program,
            args,
            addr,
            netns: netns.map(Into::into),
            probe,
            log: temp_path(kind, "log"),
            config: None,
            child: None,
        })
    }

    pub(crate) fn launch(&mut self) -> Result<(), String> {
        let log = File::create(&self.log).map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.program.display()))?;
        let child = self.child.insert(child);
        let (addr, probe) = (self.addr, self.probe);
        let ready = within(self.netns.as_deref(), || {
            let deadline = std::time::Instant::now() + READY_TIMEOUT;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("exited ({status}) before answering"));
                }
                let attempt = StdStream::connect_timeout(&addr, Duration::from_millis(200))
                    .and_then(|mut s| {
                        s.set_read_timeout(Some(Duration::from_secs(1)))?;
                        probe(&mut s)
                    });
                match attempt {
                    Ok(()) => return Ok(()),
                    Err(e) if std::time::Instant::now() > deadline => {
                        return Err(format!("not ready on {addr} within {READY_TIMEOUT:?}: {e}"));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready.map_err(|e| {
            self.kill();
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "{} {}: {e}\n{}",
                self.program.display(),
                self.args.join(" "),
                tail.join("\n")
            )
        })
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.launch() {
            panic!("restart failed: {e}");
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn signal(&self, sig: libc::c_int) {
        if let Err(e) = signal(self.pid(), sig) {
            panic!("signal {sig} to {}: {e}", self.pid());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_file(&self.log);
        if let Some(c) = &self.config {
            let _ = fs::remove_file(c);
        }
    }
}

pub(crate) fn read_line(s: &mut StdStream) -> io::Result<String> {
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    if line.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn redis_probe(s: &mut StdStream) -> io::Result<()> {
    s.write_all(b"PING\r\n")?;
    match read_line(s)?.as_str() {
        // A server with `requirepass` is up too; it just wants `AUTH` first.
        "+PONG" => Ok(()),
        l if l.starts_with("-NOAUTH") => Ok(()),
        other => Err(io::Error::other(format!("PING answered {other:?}"))),
    }
}

fn nats_probe(s: &mut StdStream) -> io::Result<()> {
    let line = read_line(s)?;
    if line.starts_with("INFO ") {
        Ok(())
    } else {
        Err(io::Error::other(format!("expected INFO, got {line:?}")))
    }
}

/// Starts with up to three fresh loopback ports: another process may grab a probed port.
fn on_free_port<T>(
    mut make: impl FnMut(u16) -> Result<Daemon, Unavailable>,
    wrap: impl Fn(Daemon) -> T,
) -> Result<T, Unavailable> {
    let mut last = Unavailable::Failed("not started".into());
    for _ in 0..3 {
        let mut d = make(free_port()?)?;
        match d.launch() {
            Ok(()) => return Ok(wrap(d)),
            Err(e) => last = Unavailable::Failed(e),
        }
    }
    Err(last)
}

fn launched<T>(mut d: Daemon, wrap: impl Fn(Daemon) -> T) -> Result<T, Unavailable> {
    d.launch().map_err(Unavailable::Failed)?;
    Ok(wrap(d))
}

pub(crate) fn need(program: &str) -> Result<PathBuf, Unavailable> {
    which(program).ok_or_else(|| Unavailable::Missing(format!("{program} not found on PATH")))
}

/// A `redis-server` child process (no persistence, `DEBUG` enabled), killed and reaped on drop.
pub struct RedisServer {
    d: Daemon,
}

impl RedisServer {
    /// Starts on a free 127.0.0.1 port with `extra_args` appended (they override defaults);
    /// returns once it answers PING (bounded, 5 s).
    pub fn start(extra_args: &[&str]) -> Result<Self, Unavailable> {
        let bin = need("redis-server")?;
        on_free_port(
            |port| {
                let args = redis_args(port, Ipv4Addr::LOCALHOST.into(), false, extra_args);
                Daemon::new(
                    "redis",
                    bin.clone(),
                    args,
                    (Ipv4Addr::LOCALHOST, port).into(),
                    None,
                    redis_probe,
                )
            },
            |d| RedisServer { d },
        )
    }

    /// Starts inside network namespace `ns` (by name) on `ip:6379` via `ip netns exec`, with
    /// `--protected-mode no` and `DEBUG` allowed from any address. Readiness and [`cli`](Self::cli)
    /// connect from inside that namespace.
    pub fn start_in_netns(ns: &str, ip: IpAddr, extra_args: &[&str]) -> Result<Self, Unavailable> {
        let bin = need("redis-server")?;
        let args = redis_args(6379, ip, true, extra_args);
        let d = Daemon::new(
            "redis",
            bin,
            args,
            SocketAddr::new(ip, 6379),
            Some(ns),
            redis_probe,
        )?;
        launched(d, |d| RedisServer { d })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.d.addr
    }

    /// The server's process id (of `redis-server` itself: `ip netns exec` execs in place).
    pub fn pid(&self) -> u32 {
        self.d.pid()
    }

    /// Kills it (SIGKILL), reaps it, and starts it again on the same port (empty dataset).
    ///
    /// # Panics
    /// If it does not come back within 5 s.
    pub fn restart(&mut self) {
        self.d.restart();
    }

    /// Freezes it with SIGSTOP: no error anywhere, new connects still complete via the backlog.
    pub fn suspend(&self) {
        self.d.signal(libc::SIGSTOP);
    }

    /// Resumes it after [`suspend`](Self::suspend).
    pub fn resume(&self) {
        self.d.signal(libc::SIGCONT);
    }

    /// Sends one command on a fresh connection and returns the first reply line without
    /// `\r\n` (e.g. `+PONG`, `:1`, `$5`, `-ERR ...`). Waits up to 10 s for the reply, so
    /// `DEBUG SLEEP` works.
    ///
    /// # Panics
    /// On connection or I/O errors.
    pub fn cli(&self, args: &[&str]) -> String {
        let addr = self.addr();
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req += &format!("${}\r\n{a}\r\n", a.len());
        }
        within(self.d.netns.as_deref(), || {
            let mut s = StdStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(req.as_bytes())?;
            read_line(&mut s)
        })
        .unwrap_or_else(|e| panic!("redis {args:?} on {addr}: {e}"))
    }
}

/// Extra arguments go last so they override these defaults. `DEBUG` from `local` clients
/// only covers loopback, hence `yes` (and no protected mode) inside a namespace.
fn redis_args(port: u16, ip: IpAddr, in_netns: bool, extra: &[&str]) -> Vec<String> {
    let (port, ip) = (port.to_string(), ip.to_string());
    let mut args = vec![
        "--port",
        &port,
        "--bind",
        &ip,
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    if in_netns {
        args.extend(["--enable-debug-command", "yes", "--protected-mode", "no"]);
    } else {
        args.extend(["--enable-debug-command", "local"]);
    }
    args.iter().chain(extra).map(|a| a.to_string()).collect()
}

/// A `nats-server` child process configured through a temporary file, killed and reaped on
/// drop.
pub struct NatsServer {
    d: Daemon,
}

impl NatsServer {
    /// Starts on a free 127.0.0.1 port; `ping_interval` (e.g. `"1s"`) and `ping_max` set how
    /// the server pings clients and when it drops unresponsive ones. Returns once it sends
    /// INFO (bounded, 5 s).
    pub fn start(ping_interval: Option<&str>, ping_max: Option<u32>) -> Result<Self, Unavailable> {
        Self::start_with(ping_interval, ping_max, "")
    }

    /// Starts on a free 127.0.0.1 port requiring `user` and `password` in `CONNECT`.
    pub fn start_with_auth(user: &str, password: &str) -> Result<Self, Unavailable> {
        let auth = format!("authorization {{ user: \"{user}\", password: \"{password}\" }}\n");
        Self::start_with(None, None, &auth)
    }

    fn start_with(
        ping_interval: Option<&str>,
        ping_max: Option<u32>,
        extra: &str,
    ) -> Result<Self, Unavailable> {
        let bin = need("nats-server")?;
        on_free_port(
            |port| {
                Self::daemon(
                    bin.clone(),
                    (Ipv4Addr::LOCALHOST, port).into(),
                    None,
                    (ping_interval, ping_max),
                    extra,
                )
            },
            |d| NatsServer { d },
        )
    }

    /// Starts inside network namespace `ns` (by name) on `ip:4222` via `ip netns exec`.
    pub fn start_in_netns(
        ns: &str,
        ip: IpAddr,
        ping_interval: Option<&str>,
        ping_max: Option<u32>,
    ) -> Result<Self, Unavailable> {
        let bin = need("nats-server")?;
        let d = Self::daemon(
            bin,
            SocketAddr::new(ip, 4222),
            Some(ns),
            (ping_interval, ping_max),
            "",
        )?;
        launched(d, |d| NatsServer { d })
    }

    fn daemon(
        bin: PathBuf,
        addr: SocketAddr,
        ns: Option<&str>,
        (ping_interval, ping_max): (Option<&str>, Option<u32>),
        extra: &str,
    ) -> Result<Daemon, Unavailable> {
        let mut conf = format!("host: \"{}\"\nport: {}\n{extra}", addr.ip(), addr.port());
        if let Some(i) = ping_interval {
            conf += &format!("ping_interval: \"{i}\"\n");
        }
        if let Some(m) = ping_max {
            conf += &format!("ping_max: {m}\n");
        }
        let path = temp_path("nats", "conf");
        fs::write(&path, conf)
            .map_err(|e| Unavailable::Failed(format!("{}: {e}", path.display())))?;
        let args = vec!["-c".into(), path.to_string_lossy().into_owned()];
        match Daemon::new("nats", bin, args, addr, ns, nats_probe) {
            Ok(mut d) => {
                d.config = Some(path);
                Ok(d)
            }
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.d.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.d.pid()
    }

    /// Kills it (SIGKILL), reaps it, and starts it again on the same port.
    ///
    /// # Panics
    /// If it does not come back within 5 s.
    pub fn restart(&mut self) {
        self.d.restart();
    }

    /// Freezes it with SIGSTOP.
    pub fn suspend(&self) {
        self.d.signal(libc::SIGSTOP);
    }

    /// Resumes it after [`suspend`](Self::suspend).
    pub fn resume(&self) {
        self.d.signal(libc::SIGCONT);
    }
}

// Helpers may be appended after the tests (the real-fault suites add their own at the end of
// this file, so concurrent edits never collide).
#[cfg(test)]
#[allow(clippy::items_after_test_module)]
mod tests {
    use super::*;
    use crate::wait::wait_until;
    use std::io::Read;
    use std::time::Instant as StdInstant;

    const T: Duration = Duration::from_secs(5);

    fn connect(addr: SocketAddr) -> (StdStream, BufReader<StdStream>) {
        let s = StdStream::connect(addr).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        (s.try_clone().unwrap(), BufReader::new(s))
    }

    fn line(r: &mut BufReader<StdStream>) -> String {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l
    }

    #[test]
    fn line_server_logs_answers_and_replies() {
        let srv = LineServer::start();
        srv.set_greeting(Some("INFO {}"));
        let (mut s, mut r) = connect(srv.addr());
        assert_eq!(line(&mut r), "INFO {}\r\n");
        s.write_all(b"PING\r\nhello\r\n").unwrap();
        assert_eq!(line(&mut r), "PONG\r\n");
        srv.set_pong("+PONG");
        srv.set_reply(Some("ok "));
        s.write_all(b"ping\nworld\n").unwrap();
        assert_eq!(line(&mut r), "+PONG\r\n");
        assert_eq!(line(&mut r), "ok world\r\n");
        let (mut s2, mut r2) = connect(srv.addr());
        s2.write_all(b"second\n").unwrap();
        assert_eq!(line(&mut r2), "INFO {}\r\n");
        assert_eq!(line(&mut r2), "ok second\r\n");
        assert_eq!(srv.received(), ["hello", "world", "second"]);
        assert_eq!(
            srv.received_with_conn(),
            [
                (1, "hello".into()),
                (1, "world".into()),
                (2, "second".into())
            ]
        );
        assert_eq!((srv.pings(), srv.connections(), srv.live()), (2, 2, 2));
        drop((s2, r2));
        wait_until(T, "second connection closed", || srv.live() == 1);

        srv.send_to_all(b"-ERR injected\r\n");
        assert_eq!(line(&mut r), "-ERR injected\r\n");
        srv.kill_all();
        assert_eq!(srv.live(), 0);
        assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
    }

    #[test]
    fn line_server_delay_silence_and_ignored_pings() {
        let srv = LineServer::start();
        srv.set_reply(Some(""));
        srv.set_reply_delay(Duration::from_millis(150));
        let (mut s, mut r) = connect(srv.addr());
        let t = StdInstant::now();
        s.write_all(b"a\nPING\n").unwrap();
        assert_eq!(line(&mut r), "a\r\n");
        assert!(t.elapsed() >= Duration::from_millis(150));
        assert_eq!(
            line(&mut r),
            "PONG\r\n",
            "pong queues behind the delayed reply"
        );

        srv.set_reply_delay(Duration::ZERO);
        srv.set_answer_pings(false);
        srv.set_silent(true);
        s.write_all(b"PING\nb\n").unwrap();
        srv.send_to_all(b"x\n");
        wait_until(T, "line b logged", || srv.received().len() == 2);
        r.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(
            r.read(&mut [0; 8]).is_err(),
            "silent server wrote something"
        );
        assert_eq!(srv.pings(), 2);
        srv.set_silent(false);
        s.write_all(b"PING\nc\n").unwrap();
        r.get_ref().set_read_timeout(Some(T)).unwrap();
        assert_eq!(line(&mut r), "c\r\n", "ignored PING gets no answer");
    }

    #[test]
    fn line_server_truncates_overlong_lines() {
        let srv = LineServer::start();
        let (mut s, _r) = connect(srv.addr());
        let mut big = vec![b'x'; MAX_LINE + 10];
        big.extend_from_slice(b"\nafter\n");
        s.write_all(&big).unwrap();
        wait_until(T, "both lines logged", || srv.received().len() == 2);
        assert_eq!(
            srv.received(),
            [
                format!("<truncated line of {} bytes>", MAX_LINE + 10),
                "after".into()
            ]
        );
    }

    #[test]
    fn line_server_stop_and_start_again_on_same_port() {
        let srv = LineServer::start();
        let (mut s, mut r) = connect(srv.addr());
        s.write_all(b"one\n").unwrap();
        wait_until(T, "line logged", || srv.received().len() == 1);
        srv.stop();
        assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
        let err = StdStream::connect(srv.addr()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        srv.start_again();
        let (mut s, _r) = connect(srv.addr());
        s.write_all(b"two\n").unwrap();
        wait_until(T, "line after restart", || srv.received().len() == 2);
        assert_eq!(
            srv.received_with_conn(),
            [(1, "one".into()), (2, "two".into())]
        );
    }

    #[test]
    fn len_server_frames() {
        let srv = LenServer::start();
        let (mut s, mut r) = connect(srv.addr());
        let mut msg = frame(FRAME_DATA, b"abc");
        msg.extend(frame(FRAME_PING, b"7"));
        msg.extend(frame(FRAME_PONG, b""));
        s.write_all(&msg).unwrap();
        let mut pong = [0; 6];
        r.read_exact(&mut pong).unwrap();
        assert_eq!(pong.to_vec(), frame(FRAME_PONG, b"7"));
        wait_until(T, "pong counted", || srv.pongs() == 1);
        assert_eq!(srv.received(), [b"abc".to_vec()]);
        assert_eq!(srv.pings(), 1);
        srv.send_raw_to_all(&[0xff; 4]);
        let mut junk = [0; 4];
        r.read_exact(&mut junk).unwrap();
        assert_eq!(junk, [0xff; 4]);
        s.write_all(&u32::MAX.to_be_bytes()).unwrap();
        assert_eq!(r.read(&mut [0; 8]).unwrap(), 0, "oversized frame closes");
    }

    #[test]
    fn redis_start_cli_restart() {
        let mut redis = match RedisServer::start(&[]) {
            Ok(r) => r,
            Err(e) => return skip_or_fail("redis_start_cli_restart", e.reason()),
        };
        assert_eq!(redis.cli(&["PING"]), "+PONG");
        assert_eq!(redis.cli(&["SET", "k", "a b"]), "+OK");
        assert_eq!(redis.cli(&["DEBUG", "SLEEP", "0"]), "+OK");
        let (port, pid) = (redis.addr().port(), redis.pid());
        redis.restart();
        assert_eq!(redis.addr().port(), port);
        assert_ne!(redis.pid(), pid);
        assert_eq!(redis.cli(&["EXISTS", "k"]), ":0");
    }

    #[test]
    fn nats_start_pings_clients() {
        let mut nats = match NatsServer::start(Some("200ms"), Some(2)) {
            Ok(n) => n,
            Err(e) => return skip_or_fail("nats_start_pings_clients", e.reason()),
        };
        let (mut s, mut r) = connect(nats.addr());
        assert!(line(&mut r).starts_with("INFO "));
        s.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
            .unwrap();
        assert_eq!(line(&mut r), "PONG\r\n");
        assert_eq!(
            line(&mut r),
            "PING\r\n",
            "server pings at the configured interval"
        );
        nats.restart();
        let (_s, mut r) = connect(nats.addr());
        assert!(line(&mut r).starts_with("INFO "));
    }

    #[test]
    fn handles_are_shareable_across_threads() {
        fn check<T: Send + Sync>() {}
        check::<LineServer>();
        check::<LenServer>();
        check::<RedisServer>();
        check::<NatsServer>();
        check::<crate::proxy::FaultProxy>();
        check::<crate::netns::NetnsPair>();
    }

    #[test]
    fn missing_binary_is_unavailable() {
        assert!(which("redial-no-such-program").is_none());
        assert!(matches!(
            need("redial-no-such-program"),
            Err(Unavailable::Missing(_))
        ));
    }
}

impl NatsServer {
    /// Starts on a free 127.0.0.1 port with `extra` appended to its configuration file (e.g.
    /// `max_payload: 8388608` for payloads over the default 1 MiB).
    pub fn start_with_config(extra: &str) -> Result<Self, Unavailable> {
        Self::start_with(None, None, extra)
    }
}
