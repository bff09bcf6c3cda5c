//! Real network partitions: two network namespaces joined by a veth pair, with link cuts and
//! ingress drops that leave both TCP ends silently half-open.
//!
//! Needs root and iproute2 (and iptables or nft for [`NetnsPair::drop_ingress`]); without
//! them constructors return `Err(reason)` and callers use [`crate::servers::skip_or_fail`].
//!
//! A socket belongs to the namespace of the thread that created it, so work inside a
//! namespace happens on dedicated threads ([`NetnsPair::run_in`], [`NetnsPair::spawn_in`],
//! [`crate::servers::Server::start_in_netns`]); never enter a namespace on a test-harness
//! thread.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use redial_driver::socket2::{Domain, Protocol, Socket, Type};
use redial_driver::{Endpoint, EndpointAddr, SocketFactory};

use crate::proxy::lock;
use crate::servers::{signal, which};

/// Address of the client end of the veth pair.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// Address of the server end of the veth pair.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
const VETH: &str = "veth0";
const NFT_TABLE: &str = "rdl";

/// One of the two namespaces of a [`NetnsPair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The namespace holding [`CLIENT_IP`].
    Client,
    /// The namespace holding [`SERVER_IP`].
    Server,
}

/// `/var/run/netns/NAME` for a name; a value containing `/` is taken as a path already.
pub fn ns_path(ns: &str) -> PathBuf {
    if ns.contains('/') {
        ns.into()
    } else {
        Path::new("/var/run/netns").join(ns)
    }
}

/// Moves the *calling thread* into network namespace `ns` (name or path); sockets it creates
/// afterwards live there. Only call this on a thread you own.
pub fn enter(ns: &str) -> io::Result<()> {
    setns(&File::open(ns_path(ns))?)
}

/// Runs `f` on a fresh thread inside namespace `ns` and returns its result; a panic in `f`
/// is propagated.
///
/// # Panics
/// If the namespace cannot be entered.
pub fn run_in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        s.spawn(|| {
            enter(ns).unwrap_or_else(|e| panic!("enter netns {ns}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// `Ok` when namespaces can be built here (root and iproute2); checked once per process.
pub fn netns_available() -> Result<(), String> {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    CHECK
        .get_or_init(|| NetnsPair::new("probe").map(drop))
        .clone()
}

#[derive(Clone, Copy)]
enum Filter {
    Iptables,
    Nft,
}

/// Two namespaces, `client` (10.213.0.1/30) and `server` (10.213.0.2/30), joined by a veth
/// pair with lo up in both. Dropping it removes the filters, kills processes left inside and
/// deletes both namespaces, also when a test panics.
pub struct NetnsPair {
    client: String,
    server: String,
    ip: PathBuf,
    filter: Mutex<Option<Filter>>,
    children: Mutex<Vec<Child>>,
}

impl NetnsPair {
    /// Builds a pair named `rdl-c-{tag}-{pid}-{n}` / `rdl-s-...`, unique per call.
    ///
    /// # Errors
    /// The failing command and its stderr, e.g. when not root or `ip` is missing.
    pub fn new(tag: &str) -> Result<Self, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let ip = which("ip").ok_or("`ip` (iproute2) not found")?;
        let id = format!("{tag}-{}-{}", std::process::id(), N.fetch_add(1, SeqCst));
        // From here on, Drop cleans up whatever part was built.
        let pair = NetnsPair {
            client: format!("rdl-c-{id}"),
            server: format!("rdl-s-{id}"),
            ip,
            filter: Mutex::new(None),
            children: Mutex::new(Vec::new()),
        };
        let (c, s) = (pair.client.as_str(), pair.server.as_str());
        for ns in [c, s] {
            if let Err(e) = pair.ip(&["netns", "add", ns]) {
                // Our pid is in the name, so an existing one is a leftover of a killed run.
                if !e.contains("exists") {
                    return Err(e);
                }
                pair.ip(&["netns", "del", ns])?;
                pair.ip(&["netns", "add", ns])?;
            }
        }
        #[rustfmt::skip]
        pair.ip(&["link", "add", VETH, "netns", c, "type", "veth", "peer", "name", VETH, "netns", s])?;
        for (ns, addr) in [(c, CLIENT_IP), (s, SERVER_IP)] {
            pair.ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", VETH])?;
            pair.ip(&["-n", ns, "link", "set", "lo", "up"])?;
            pair.ip(&["-n", ns, "link", "set", VETH, "up"])?;
        }
        Ok(pair)
    }

    /// The namespace name of `side`, as `ip netns` knows it.
    pub fn name(&self, side: Side) -> &str {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    /// 10.213.0.1, reachable only from inside the pair.
    pub fn client_ip(&self) -> IpAddr {
        CLIENT_IP.into()
    }

    /// 10.213.0.2, reachable only from inside the pair.
    pub fn server_ip(&self) -> IpAddr {
        SERVER_IP.into()
    }

    /// Takes the client-side veth down: the client side sees ENETUNREACH on new connects at
    /// once, the server side nothing (EHOSTUNREACH after ~3 s when it sends).
    pub fn cut_link(&self) -> Result<(), String> {
        self.ip(&["-n", &self.client, "link", "set", VETH, "down"])
    }

    /// Brings the client-side veth back up and waits (≤ 5 s) until both ends have carrier.
    pub fn heal_link(&self) -> Result<(), String> {
        self.ip(&["-n", &self.client, "link", "set", VETH, "up"])?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut up = true;
            for ns in [&self.client, &self.server] {
                let out = self.ip_out(&["-n", ns, "-o", "link", "show", VETH])?;
                up &= out.contains("LOWER_UP") && out.contains("state UP");
            }
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("veth did not come back up within 5 s".into());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Drops all packets from the peer on INPUT in both namespaces (iptables; nft netdev
    /// ingress if iptables is missing). Idle connections stay open and notice nothing.
    pub fn drop_ingress(&self) -> Result<(), String> {
        let mut filter = lock(&self.filter);
        if filter.is_some() {
            return Ok(());
        }
        let kind = if which("iptables").is_some() {
            Filter::Iptables
        } else if which("nft").is_some() {
            Filter::Nft
        } else {
            return Err("neither iptables nor nft found".into());
        };
        *filter = Some(kind);
        let res = self.filters(kind, true);
        if res.is_err() {
            let _ = self.filters(kind, false);
            *filter = None;
        }
        res
    }

    /// Removes the filters of [`drop_ingress`](Self::drop_ingress); a no-op when none.
    pub fn heal_drop(&self) -> Result<(), String> {
        let mut filter = lock(&self.filter);
        match filter.take() {
            Some(kind) => self.filters(kind, false),
            None => Ok(()),
        }
    }

    /// Adds or removes the drop filters in both namespaces; on removal tries both and
    /// reports the first error.
    fn filters(&self, kind: Filter, add: bool) -> Result<(), String> {
        let mut first_err = Ok(());
        for (ns, peer) in [(&self.client, SERVER_IP), (&self.server, CLIENT_IP)] {
            let peer = peer.to_string();
            let nft_add = format!(
                "add table netdev {NFT_TABLE}; add chain netdev {NFT_TABLE} in \
                 {{ type filter hook ingress device {VETH} priority 0; policy drop; }}"
            );
            let cmd: Vec<&str> = match (kind, add) {
                (Filter::Iptables, _) => {
                    let op = if add { "-I" } else { "-D" };
                    vec!["iptables", "-w", op, "INPUT", "-s", &peer, "-j", "DROP"]
                }
                (Filter::Nft, true) => vec!["nft", &nft_add],
                (Filter::Nft, false) => vec!["nft", "delete", "table", "netdev", NFT_TABLE],
            };
            let res = self.ip(&[&["netns", "exec", ns.as_str()], &cmd[..]].concat());
            if add {
                res?;
            } else if first_err.is_ok() {
                first_err = res;
            }
        }
        first_err
    }

    /// Runs `f` on a fresh thread inside `side`'s namespace and returns its result. Sockets
    /// created there stay in that namespace and can be returned and used from any thread.
    pub fn run_in<T: Send>(&self, side: Side, f: impl FnOnce() -> T + Send) -> T {
        run_in_ns(self.name(side), f)
    }

    /// Spawns a thread inside `side`'s namespace for long-running work (e.g. a client with
    /// its own current-thread runtime). The thread panics if it cannot enter the namespace.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        side: Side,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        let ns = self.name(side).to_owned();
        thread::spawn(move || {
            enter(&ns).unwrap_or_else(|e| panic!("enter netns {ns}: {e}"));
            f()
        })
    }

    /// Starts `argv` inside `side`'s namespace (`ip netns exec`), as a child killed and
    /// reaped when the pair is dropped. Returns its pid.
    pub fn spawn(&self, side: Side, argv: &[&str]) -> io::Result<u32> {
        let child = Command::new(&self.ip)
            .args(["netns", "exec", self.name(side)])
            .args(argv)
            .stdin(Stdio::null())
            .spawn()?;
        let pid = child.id();
        lock(&self.children).push(child);
        Ok(pid)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        self.ip_out(args).map(drop)
    }

    fn ip_out(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.ip)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", self.ip.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "ip {}: {} {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        let _ = self.heal_drop();
        for mut c in lock(&self.children).drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.client, &self.server] {
            // `ip netns del` only unlinks the name; anything still inside (say a RedisServer
            // dropped after the pair) would keep the namespace alive. Its owner still reaps it.
            let pids = self.ip_out(&["netns", "pids", ns]).unwrap_or_default();
            for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
                if pid != std::process::id() {
                    let _ = signal(pid, libc::SIGKILL);
                }
            }
            let _ = self.ip(&["netns", "del", ns]);
        }
    }
}

/// A [`SocketFactory`] that makes every TCP socket inside namespace `ns` (name or path),
/// without blocking: the calling thread (a runtime worker, in the middle of a dial) enters
/// `ns` with `setns`, creates the socket, and returns to its own namespace, three system calls
/// that never wait. A socket keeps the namespace it was made in, so the connector may connect
/// it, and the session use it, from any thread (a multi-threaded tokio runtime, smol's
/// executor). Creating a socket never touches the network, so the dial's deadline stays the
/// driver's alone.
///
/// # Panics
/// (In the dial.) If the thread cannot return to its own namespace after entering `ns`: it
/// would make every later socket in the wrong place.
pub fn socket_factory(ns: &str) -> SocketFactory {
    // Opened once: the namespace file is where the pair keeps it until it is dropped.
    let target = Arc::new(File::open(ns_path(ns)).map_err(|e| format!("{ns}: {e}")));
    Arc::new(move |endpoint: &Endpoint| {
        let EndpointAddr::Ip(addr) = &endpoint.addr else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "network namespaces hold IP sockets only",
            ));
        };
        let target = target
            .as_ref()
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))?;
        let home = File::open("/proc/thread-self/ns/net")?;
        setns(target)?;
        let socket = Socket::new(
            Domain::for_address(*addr),
            Type::STREAM,
            Some(Protocol::TCP),
        );
        if let Err(e) = setns(&home) {
            panic!("cannot return this thread to its network namespace: {e}");
        }
        socket
    })
}

/// Moves the calling thread into the network namespace of the open file `ns`.
#[allow(unsafe_code)]
fn setns(ns: &File) -> io::Result<()> {
    // SAFETY: setns(2) only reads the descriptor, which `ns` keeps open across the call;
    // CLONE_NEWNET switches just this thread's network namespace, no memory is touched.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::{skip_or_fail, LineServer, RedisServer};
    use crate::wait::wait_until;
    use std::io::{ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpStream};

    const T: Duration = Duration::from_secs(5);

    fn pair(test: &str) -> Option<NetnsPair> {
        match netns_available().and_then(|()| NetnsPair::new("t")) {
            Ok(p) => Some(p),
            Err(e) => {
                skip_or_fail(test, &e);
                None
            }
        }
    }

    fn connect(pair: &NetnsPair, to: SocketAddr) -> TcpStream {
        let s = pair
            .run_in(Side::Client, || TcpStream::connect_timeout(&to, T))
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s
    }

    fn assert_idle_reader_not_notified(s: &mut TcpStream) {
        let err = s
            .read(&mut [0; 16])
            .expect_err("read returned during a cut");
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "idle reader got {err}"
        );
    }

    /// Cuts an established connection with `cut`, checks that neither side's idle reader
    /// hears anything, heals with `heal`, and checks the held bytes then flow both ways.
    fn check_drop_cut(
        pair: &NetnsPair,
        cut: impl FnOnce() -> Result<(), String>,
        heal: impl FnOnce() -> Result<(), String>,
    ) {
        let srv = LineServer::start_in_netns(pair.name(Side::Server), pair.server_ip(), 0).unwrap();
        srv.set_reply(Some(""));
        let mut s = connect(pair, srv.addr());
        s.write_all(b"before\n").unwrap();
        s.read_exact(&mut [0; 8]).unwrap();

        cut().unwrap();
        srv.send_to_all(b"held\n");
        assert_idle_reader_not_notified(&mut s);
        assert_eq!(
            (srv.live(), srv.received()),
            (1, vec!["before".to_string()])
        );

        heal().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut held = [0; 5];
        s.read_exact(&mut held).unwrap();
        assert_eq!(&held, b"held\n", "retransmitted after the heal");
        s.write_all(b"after\n").unwrap();
        wait_until(T, "line after heal", || srv.received().len() == 2);
    }

    #[test]
    fn drop_ingress_leaves_idle_reader_blocked_then_heals() {
        let Some(pair) = pair("drop_ingress_leaves_idle_reader_blocked_then_heals") else {
            return;
        };
        check_drop_cut(&pair, || pair.drop_ingress(), || pair.heal_drop());
    }

    #[test]
    fn nft_fallback_cuts_and_heals() {
        let Some(pair) = pair("nft_fallback_cuts_and_heals") else {
            return;
        };
        if which("nft").is_none() {
            return skip_or_fail("nft_fallback_cuts_and_heals", "nft not found");
        }
        check_drop_cut(
            &pair,
            || pair.filters(Filter::Nft, true),
            || pair.filters(Filter::Nft, false),
        );
    }

    #[test]
    fn cut_link_leaves_idle_reader_blocked_then_heals() {
        let Some(pair) = pair("cut_link_leaves_idle_reader_blocked_then_heals") else {
            return;
        };
        let srv =
            LineServer::start_in_netns(pair.name(Side::Server), pair.server_ip(), 7000).unwrap();
        let mut s = connect(&pair, srv.addr());
        pair.cut_link().unwrap();
        let err = pair
            .run_in(Side::Client, || TcpStream::connect_timeout(&srv.addr(), T))
            .unwrap_err();
        assert!(err.raw_os_error() == Some(libc::ENETUNREACH), "{err}");
        assert_idle_reader_not_notified(&mut s);
        pair.heal_link().unwrap();
        s.write_all(b"through\n").unwrap();
        wait_until(T, "line after heal", || srv.received() == ["through"]);
        connect(&pair, srv.addr());
    }

    #[test]
    fn redis_inside_namespace() {
        let Some(pair) = pair("redis_inside_namespace") else {
            return;
        };
        let redis =
            match RedisServer::start_in_netns(pair.name(Side::Server), pair.server_ip(), &[]) {
                Ok(r) => r,
                Err(e) => return skip_or_fail("redis_inside_namespace", e.reason()),
            };
        assert_eq!(redis.cli(&["PING"]), "+PONG");
        let mut s = connect(&pair, redis.addr());
        s.write_all(b"PING\r\n").unwrap();
        let mut pong = [0; 7];
        s.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"+PONG\r\n");
    }
}
