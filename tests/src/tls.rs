//! TLS and Unix sockets against real servers, for every adapter (issue #14): `redis-server`
//! with `--tls-port`, `nats-server` with `tls {}` (INFO in plaintext, then TLS), a rustls
//! server of our own that records the server name (SNI) each client sent, a TLS session cut
//! half-open between two network namespaces, and `redis-server --unixsocket`.
//!
//! Certificates are made per test with rcgen ([`Pki`]): a CA, a server certificate for
//! `localhost`, `127.0.0.1` and `db.test`, and a client certificate. Every scenario starts its
//! own server, on a free loopback port, killed by PID on drop.
//! [`tls_tests!`](crate::tls_tests) stamps out one `#[test]` per scenario for a
//! [`TlsAdapter`].
//!
//! | scenario | what it pins |
//! |---|---|
//! | [`tls_redis_request_reply`] | RESP requests over TLS, named by the target's host name; mutual TLS with a client certificate |
//! | [`tls_redis_client_kill_ridden`] | `CLIENT KILL` over TLS: a new handshake, queued requests flushed in order |
//! | [`tls_wrong_ca_gives_up_at_once`] | an unknown CA is permanent: one attempt, the certificate problem named, given up |
//! | [`tls_server_name_sent_and_verified`] | SNI is the host name (or the explicit server name); an IP target without one is a config error; a wrong name is refused for good |
//! | [`tls_rotation_between_attempts`] | the provider's new config (new CA, via a reloaded file) is used by the next attempt |
//! | [`tls_nats_restart_ridden`] | NATS: plaintext INFO, then TLS; subscription and publish across a restart |
//! | [`tls_half_open_found_by_heartbeat`] | a TLS connection cut by DROP is found within interval + timeout |
//! | [`tls_handshake_timeout_and_reset_are_retried`] | a silent handshake ends at the connect deadline, a reset one at once; both retried |
//! | [`unix_socket_redis_restart_ridden`] | Redis over a Unix socket, through a restart |

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures::StreamExt;
use redial_core::proto::nats::{self, Nats};
use redial_core::proto::resp::{cmd, Resp, Value};
use redial_core::{
    Backoff, CloseMode, Config, Delivery, Jitter, NetError, Notification, Outcome, Protocol, State,
};
use redial_driver::{Builder, Connector, SocketFactory, Target};
use redial_tls::rustls::{self, ClientConfig};
use redial_tls::{pki_types, Greeting, Handshake, TlsOptions, TlsSettings};

use crate::adapters::{SmolAdapter, TokioAdapter};
use crate::conformance::{eventually, within, Adapter};
use crate::netns::{self, Side};
use crate::real::{
    ask, connected_after, epoch_of, int_reply, is_disconnect, is_heartbeat_timeout, pair_or_skip,
    publish_around_a_restart, real_config, subscribed, value, wait_since, Sess, LONG, TOLERANCE,
};
use crate::servers::{skip_or_fail, which, RedisServer};

/// What the TLS scenarios need beyond [`Adapter`]: the adapter's TLS connector.
pub trait TlsAdapter: Adapter {
    /// `TlsConnector` over the adapter's TCP connector.
    type Tls: Connector<Future: Send, Stream: Send> + Send + Sync;
    /// The TLS connector with `tls`, its TCP sockets made by `factory` if given.
    fn tls_connector(tls: TlsSettings, factory: Option<SocketFactory>) -> Self::Tls;
}

impl TlsAdapter for TokioAdapter {
    type Tls = redial_tokio::tls::TlsConnector;
    fn tls_connector(tls: TlsSettings, factory: Option<SocketFactory>) -> Self::Tls {
        let tcp = redial_tokio::TcpConnector::default();
        let tcp = match factory {
            Some(f) => tcp.with_socket_factory(f),
            None => tcp,
        };
        redial_tokio::tls::TlsConnector::wrap(tcp, tls)
    }
}

impl TlsAdapter for SmolAdapter {
    type Tls = redial_smol::tls::TlsConnector;
    fn tls_connector(tls: TlsSettings, factory: Option<SocketFactory>) -> Self::Tls {
        let tcp = redial_smol::TcpConnector::default();
        let tcp = match factory {
            Some(f) => tcp.with_socket_factory(f),
            None => tcp,
        };
        redial_smol::tls::TlsConnector::wrap(tcp, tls)
    }
}

/// Generates one `#[test]` per TLS / Unix-socket scenario for a [`TlsAdapter`].
#[macro_export]
macro_rules! tls_tests {
    ($adapter:ty) => {
        $crate::tls_tests!(@each $adapter;
            tls_redis_request_reply, tls_redis_client_kill_ridden, tls_wrong_ca_gives_up_at_once,
            tls_server_name_sent_and_verified, tls_rotation_between_attempts,
            tls_nats_restart_ridden, tls_half_open_found_by_heartbeat,
            tls_handshake_timeout_and_reset_are_retried, unix_socket_redis_restart_ridden);
    };
    (@each $adapter:ty; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                <$adapter as $crate::conformance::Adapter>::block_on(
                    $crate::conformance::bounded::<$adapter>($crate::tls::$name::<$adapter>()),
                );
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A CA, a server certificate (`localhost`, `127.0.0.1`, `db.test`) and a client certificate,
/// as PEM files in a fresh temporary directory (removed on drop).
pub struct Pki {
    dir: PathBuf,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The client certificate, PEM.
    pub client_cert_pem: String,
    /// The client key, PEM.
    pub client_key_pem: String,
}

impl Pki {
    /// Generates a new CA named `name` and certificates signed by it.
    ///
    /// # Panics
    /// If rcgen fails or the directory cannot be written.
    pub fn new(name: &str) -> Pki {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "redial-tls-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&dir).expect("temp dir");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, format!("redial test CA {name}"));
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let leaf = |sans: Vec<String>, cn: &str| {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut p = rcgen::CertificateParams::new(sans).expect("params");
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            let cert = p.signed_by(&key, &ca_cert, &ca_key).expect("signed");
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into(), "db.test".into()],
            "localhost",
        );
        let (client_cert_pem, client_key_pem) = leaf(Vec::new(), "redial test client");
        let pki = Pki {
            dir,
            ca_pem: ca_cert.pem(),
            client_cert_pem,
            client_key_pem,
        };
        for (file, pem) in [
            ("ca.crt", pki.ca_pem.as_str()),
            ("server.crt", &server_pem),
            ("server.key", &server_key),
            ("client.crt", &pki.client_cert_pem),
            ("client.key", &pki.client_key_pem),
        ] {
            fs::write(pki.path(file), pem).expect("write PEM");
        }
        pki
    }

    /// A file of this PKI (`ca.crt`, `server.crt`, `server.key`, `client.crt`, `client.key`).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A client config trusting this CA, with the client certificate if `identity`.
    pub fn client_config(&self, identity: bool) -> Arc<ClientConfig> {
        let mut o = TlsOptions::ca_pem(self.ca_pem.clone());
        if identity {
            o = o.with_identity(redial_tls::ClientIdentity::from_pem(
                self.client_cert_pem.clone(),
                self.client_key_pem.clone(),
            ));
        }
        o.build().expect("client config")
    }

    /// A rustls server config with this PKI's server certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use pki_types::pem::PemObject;
        let certs = pki_types::CertificateDer::pem_file_iter(self.path("server.crt"))
            .expect("server.crt")
            .collect::<Result<Vec<_>, _>>()
            .expect("server certificate");
        let key = pki_types::PrivateKeyDer::from_pem_file(self.path("server.key")).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(redial_tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        Arc::new(config)
    }

    /// The redis-server TLS arguments for this PKI.
    pub fn redis_args(&self, port: u16, auth_clients: bool) -> Vec<String> {
        let p = |f: &str| self.path(f).to_string_lossy().into_owned();
        [
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &p("server.crt"),
            "--tls-key-file",
            &p("server.key"),
            "--tls-ca-cert-file",
            &p("ca.crt"),
            "--tls-auth-clients",
            if auth_clients { "yes" } else { "no" },
        ]
        .map(String::from)
        .to_vec()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Servers

/// A TLS-only server child process (`redis-server --port 0 --tls-port P`, or `nats-server`
/// with a `tls {}` block), ready once its port accepts (Redis) or it sent `INFO` (NATS);
/// killed by PID and reaped on drop.
pub struct TlsServer {
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    nats: bool,
    config: Option<PathBuf>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl TlsServer {
    /// `redis-server` serving TLS only, with `pki`'s certificate (mutual TLS if
    /// `auth_clients`).
    pub fn redis(pki: &Pki, auth_clients: bool) -> Result<TlsServer, String> {
        let program = which("redis-server").ok_or("redis-server not found on PATH")?;
        let port = free_port();
        let mut s = TlsServer {
            program,
            args: Vec::new(),
            port,
            nats: false,
            config: None,
            child: None,
        };
        s.set_pki(pki, auth_clients);
        s.launch()?;
        Ok(s)
    }

    /// `nats-server` requiring TLS, with `pki`'s certificate.
    pub fn nats(pki: &Pki) -> Result<TlsServer, String> {
        let program = which("nats-server").ok_or("nats-server not found on PATH")?;
        let port = free_port();
        let config = pki.dir.join("nats.conf");
        let p = |f: &str| pki.path(f).to_string_lossy().into_owned();
        let conf = format!(
            "host: \"127.0.0.1\"\nport: {port}\ntls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  timeout: 2\n}}\n",
            p("server.crt"),
            p("server.key")
        );
        fs::write(&config, conf).map_err(|e| e.to_string())?;
        let mut s = TlsServer {
            program,
            args: vec!["-c".into(), config.to_string_lossy().into_owned()],
            port,
            nats: true,
            config: Some(config),
            child: None,
        };
        s.launch()?;
        Ok(s)
    }

    fn set_pki(&mut self, pki: &Pki, auth_clients: bool) {
        let mut args: Vec<String> = [
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(String::from)
        .to_vec();
        args.extend(pki.redis_args(self.port, auth_clients));
        self.args = args;
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// `localhost:port`: a target with a host name, for SNI and verification.
    pub fn named(&self) -> String {
        format!("localhost:{}", self.port)
    }

    fn launch(&mut self) -> Result<(), String> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.program.display()))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{} {} exited ({status})",
                    self.program.display(),
                    self.args.join(" ")
                ));
            }
            let ready = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
                .and_then(|mut s| {
                    if !self.nats {
                        return Ok(());
                    }
                    s.set_read_timeout(Some(Duration::from_secs(1)))?;
                    let mut line = String::new();
                    BufReader::new(&mut s).read_line(&mut line)?;
                    if line.starts_with("INFO ") {
                        Ok(())
                    } else {
                        Err(io::Error::other(format!("not INFO: {line:?}")))
                    }
                });
            if ready.is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not ready on {} within 5 s", self.addr()));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts it again on the same port.
    ///
    /// # Panics
    /// If it does not come back.
    pub fn restart(&mut self) {
        self.kill();
        self.launch().expect("restarted");
    }

    /// Kills it and starts it again on the same port with `pki`'s certificates (Redis).
    ///
    /// # Panics
    /// If it does not come back.
    pub fn restart_with(&mut self, pki: &Pki) {
        self.kill();
        self.set_pki(pki, false);
        self.launch().expect("restarted with new certificates");
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(c) = &self.config {
            let _ = fs::remove_file(c);
        }
    }
}

/// Sends one command to a TLS Redis on a fresh blocking rustls connection (server name
/// `localhost`) and returns the first reply line.
pub fn redis_tls_cli(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    args: &[&str],
) -> io::Result<String> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req += &format!("${}\r\n{a}\r\n", a.len());
    }
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let name = pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
    let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(req.as_bytes())?;
    tls.flush()?;
    let mut line = String::new();
    BufReader::new(tls).read_line(&mut line)?;
    if line.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end().to_owned())
}

/// A rustls server on a loopback port that records the server name (SNI) of every client,
/// then greets it with `hello\n` and reads until it leaves.
pub struct SniServer {
    addr: SocketAddr,
    names: Arc<Mutex<Vec<Option<String>>>>,
    stop: Arc<AtomicBool>,
}

impl SniServer {
    /// Starts with `pki`'s server certificate.
    pub fn start(pki: &Pki) -> SniServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let names = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let config = pki.server_config();
        let (n, st) = (Arc::clone(&names), Arc::clone(&stop));
        thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let (config, names) = (Arc::clone(&config), Arc::clone(&n));
                        thread::spawn(move || serve_sni(sock, config, names));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => return,
                }
            }
        });
        SniServer { addr, names, stop }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server names of the handshakes so far (`None`: the client sent no SNI).
    pub fn names(&self) -> Vec<Option<String>> {
        self.names.lock().expect("names").clone()
    }
}

impl Drop for SniServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve_sni(
    mut sock: TcpStream,
    config: Arc<rustls::ServerConfig>,
    names: Arc<Mutex<Vec<Option<String>>>>,
) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(20)));
    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            // A refused certificate or a client that left: record what it asked for.
            names
                .lock()
                .expect("names")
                .push(conn.server_name().map(str::to_owned));
            return;
        }
    }
    names
        .lock()
        .expect("names")
        .push(conn.server_name().map(str::to_owned));
    let mut tls = rustls::StreamOwned::new(conn, sock);
    if tls
        .write_all(b"hello\n")
        .and_then(|()| tls.flush())
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 256];
    while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
}

// ---------------------------------------------------------------------------------------------
// Sessions

fn tls_session<A: TlsAdapter, P: Protocol + Send + 'static>(
    target: impl Into<Target>,
    tls: TlsSettings,
    factory: Option<SocketFactory>,
    cfg: Config,
    protocol: P,
) -> Sess {
    let b: Builder<A::Rt, A::Tls, P> = A::builder(target.into())
        .connector(A::tls_connector(tls, factory))
        .config(cfg)
        .protocol(protocol);
    let (handle, inbound, events) = b.spawn().expect("valid config");
    Sess {
        handle,
        inbound,
        events,
        seen: Vec::new(),
    }
}

fn redis_tls_or_skip(what: &str, pki: &Pki, auth_clients: bool) -> Option<TlsServer> {
    match TlsServer::redis(pki, auth_clients) {
        Ok(s) => Some(s),
        Err(e) => {
            skip_or_fail(what, &e);
            None
        }
    }
}

/// The first failed attempt, checked to be final (`next_delay: None`) with class `class`;
/// returns the error text behind it.
async fn failed_for_good<A: Adapter>(s: &mut Sess, class: NetError) -> String {
    let (_, failed) = wait_since::<A>(s, 0, "failed attempt", |e| {
        matches!(e.notification, Notification::AttemptFailed { .. })
    })
    .await;
    assert!(
        matches!(
            failed.notification,
            Notification::AttemptFailed { error, next_delay: None, .. } if error == class
        ),
        "[{}] expected a final {class:?}: {failed:?}",
        A::NAME
    );
    failed.detail.unwrap_or_default()
}

/// Waits until the session has given up, then checks it made exactly one attempt.
async fn gave_up_after_one_attempt<A: Adapter>(s: &mut Sess) {
    eventually::<A>(LONG, "gave up", || s.handle.state() == State::Closed).await;
    let stats = s.handle.stats();
    assert_eq!(
        (stats.attempts, stats.failures, stats.connects),
        (1, 1, 0),
        "[{}] a permanent error is not retried: {stats:?}",
        A::NAME
    );
    assert_eq!(
        s.count(|n| matches!(n, Notification::AttemptFailed { .. })),
        1,
        "[{}] one failed attempt",
        A::NAME
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// Redis over TLS: requests answered by value through a target given by host name
/// (`localhost:P`, so SNI and verification use `localhost`); mutual TLS with
/// `--tls-auth-clients yes`: a client without a certificate is refused by the server, the
/// session with a [`ClientIdentity`](redial_tls::ClientIdentity) gets its replies.
pub async fn tls_redis_request_reply<A: TlsAdapter>() {
    let what = format!("[{}] tls_redis_request_reply", A::NAME);
    let pki = Pki::new("rr");
    let Some(redis) = redis_tls_or_skip(&what, &pki, false) else {
        return;
    };
    let tls = TlsSettings::from_config(pki.client_config(false));
    let s = tls_session::<A, _>(redis.named(), tls, None, real_config(None), Resp::new());
    let pong = ask::<A>(&s.handle, &[b"PING"]).await;
    assert_eq!(value(&pong), Value::Simple(b"PONG"));
    assert_eq!(
        value(&ask::<A>(&s.handle, &[b"SET", b"k", b"over tls\r\n"]).await),
        Value::Simple(b"OK")
    );
    assert_eq!(
        value(&ask::<A>(&s.handle, &[b"GET", b"k"]).await),
        Value::Bulk(b"over tls\r\n")
    );
    for i in 1..=5 {
        assert_eq!(int_reply(&ask::<A>(&s.handle, &[b"INCR", b"n"]).await), i);
    }
    assert_eq!(s.handle.stats().connects, 1);
    s.handle.close(CloseMode::Immediate).await;
    drop(redis);

    // Mutual TLS.
    let Some(mtls) = redis_tls_or_skip(&what, &pki, true) else {
        return;
    };
    let refused = redis_tls_cli(mtls.addr(), pki.client_config(false), &["PING"]);
    assert!(
        refused.is_err(),
        "[{}] the server must require a client certificate: {refused:?}",
        A::NAME
    );
    let identity =
        redial_tls::ClientIdentity::from_files(pki.path("client.crt"), pki.path("client.key"));
    let tls =
        TlsSettings::from_options(TlsOptions::ca_file(pki.path("ca.crt")).with_identity(identity))
            .expect("options");
    let s = tls_session::<A, _>(mtls.named(), tls, None, real_config(None), Resp::new());
    let pong = ask::<A>(&s.handle, &[b"PING"]).await;
    assert_eq!(
        value(&pong),
        Value::Simple(b"PONG"),
        "[{}] mutual TLS",
        A::NAME
    );
    s.handle.close(CloseMode::Immediate).await;
}

/// `CLIENT KILL TYPE normal` (sent on a TLS connection of its own) ends the session's TLS
/// connection; requests queued while it is away are flushed, in order, after a new
/// handshake.
pub async fn tls_redis_client_kill_ridden<A: TlsAdapter>() {
    let what = format!("[{}] tls_redis_client_kill_ridden", A::NAME);
    let pki = Pki::new("kill");
    let Some(redis) = redis_tls_or_skip(&what, &pki, false) else {
        return;
    };
    let cfg = real_config(Some((300, 700))).with_backoff(
        Backoff::new()
            .with_initial(Duration::from_millis(300))
            .with_cap(Duration::from_millis(300))
            .with_jitter(Jitter::None),
    );
    let tls = TlsSettings::from_config(pki.client_config(false));
    let mut s = tls_session::<A, _>(redis.named(), tls, None, cfg, Resp::new());
    assert_eq!(int_reply(&ask::<A>(&s.handle, &[b"INCR", b"q"]).await), 1);
    eventually::<A>(LONG, "a PONG", || s.handle.stats().pongs >= 1).await;
    let mark = s.mark();
    let killed = redis_tls_cli(
        redis.addr(),
        pki.client_config(false),
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    )
    .expect("CLIENT KILL over TLS");
    assert_eq!(killed, ":1");
    let (at, down) = wait_since::<A>(&mut s, mark, "killed", is_disconnect).await;
    let queued: Vec<_> = (0..5)
        .map(|_| s.handle.request(cmd(["INCR", "q"]), Delivery::AtMostOnce))
        .collect();
    let mut got = Vec::new();
    for r in queued {
        let r = within::<A, _>(LONG, "queued INCR", r)
            .await
            .expect("flushed after the new handshake");
        got.push(int_reply(&r));
    }
    assert_eq!(got, [2, 3, 4, 5, 6], "[{}]", A::NAME);
    let epoch = epoch_of(&down);
    wait_since::<A>(&mut s, at + 1, "reconnected", |e| {
        connected_after(e, epoch).is_some()
    })
    .await;
    assert_eq!(s.handle.stats().connects, 2);
    s.handle.close(CloseMode::Immediate).await;
}

/// A session trusting another CA: the first attempt fails with `PermissionDenied` and no
/// next delay, the event names the certificate problem (`UnknownIssuer`), the session gives
/// up after that one attempt (a 20 ms backoff and no give-up limit would otherwise retry
/// about fifty times a second), and a queued request is handed back as never sent.
pub async fn tls_wrong_ca_gives_up_at_once<A: TlsAdapter>() {
    let what = format!("[{}] tls_wrong_ca_gives_up_at_once", A::NAME);
    let (pki, other) = (Pki::new("right"), Pki::new("wrong"));
    let Some(redis) = redis_tls_or_skip(&what, &pki, false) else {
        return;
    };
    let tls = TlsSettings::from_config(other.client_config(false));
    let mut s = tls_session::<A, _>(redis.named(), tls, None, real_config(None), Resp::new());
    let request = s.handle.request(cmd(["PING"]), Delivery::AtMostOnce);
    let detail = failed_for_good::<A>(&mut s, NetError::PermissionDenied).await;
    eprintln!("[{}] wrong CA: {detail}", A::NAME);
    assert!(
        detail.contains("certificate")
            && detail.contains("UnknownIssuer")
            && detail.contains("localhost"),
        "[{}] the event names the certificate problem: {detail:?}",
        A::NAME
    );
    gave_up_after_one_attempt::<A>(&mut s).await;
    let u = within::<A, _>(LONG, "request outcome", request)
        .await
        .expect_err("never sent");
    assert!(
        matches!(u.outcome, Outcome::Abandoned(_) | Outcome::Rejected(_)),
        "{:?}",
        u.outcome
    );
}

/// The server name: a target `localhost:P` sends SNI `localhost`; an explicit
/// [`TlsSettings::with_server_name`] (`db.test`) replaces it for an IP target; an IP target
/// without one fails its first attempt for good (`InvalidAddress`, before any packet), and a
/// server name the certificate does not cover (`other.test`) is refused for good
/// (`PermissionDenied`, `NotValidForName`).
pub async fn tls_server_name_sent_and_verified<A: TlsAdapter>() {
    let pki = Pki::new("sni");
    let server = SniServer::start(&pki);
    let port = server.addr().port();
    let cfg = real_config(None);
    let config = pki.client_config(false);

    let hello = |mut s: Sess| async move {
        let line = within::<A, _>(LONG, "hello over TLS", s.inbound.next())
            .await
            .expect("inbound");
        assert_eq!(line, b"hello", "[{}]", A::NAME);
        s.handle.close(CloseMode::Immediate).await;
    };
    let by_name = TlsSettings::from_config(Arc::clone(&config));
    hello(tls_session::<A, _>(
        format!("localhost:{port}"),
        by_name,
        None,
        cfg.clone(),
        redial_core::Framed::new(redial_core::LineCodec::plain()),
    ))
    .await;
    let explicit = TlsSettings::from_config(Arc::clone(&config))
        .with_server_name("db.test")
        .expect("a DNS name");
    hello(tls_session::<A, _>(
        server.addr(),
        explicit,
        None,
        cfg.clone(),
        redial_core::Framed::new(redial_core::LineCodec::plain()),
    ))
    .await;
    eventually::<A>(LONG, "two handshakes recorded", || {
        server.names().len() >= 2
    })
    .await;
    assert_eq!(
        server.names()[..2],
        [Some("localhost".to_owned()), Some("db.test".to_owned())],
        "[{}] SNI sent",
        A::NAME
    );

    let nameless = TlsSettings::from_config(Arc::clone(&config));
    let mut s = tls_session::<A, _>(server.addr(), nameless, None, cfg.clone(), Resp::new());
    let detail = failed_for_good::<A>(&mut s, NetError::InvalidAddress).await;
    assert!(detail.contains("no host name"), "[{}] {detail}", A::NAME);
    gave_up_after_one_attempt::<A>(&mut s).await;
    assert_eq!(
        server.names().len(),
        2,
        "no handshake without a server name"
    );

    let wrong = TlsSettings::from_config(config)
        .with_server_name("other.test")
        .expect("a DNS name");
    let mut s = tls_session::<A, _>(server.addr(), wrong, None, cfg, Resp::new());
    let detail = failed_for_good::<A>(&mut s, NetError::PermissionDenied).await;
    assert!(
        detail.contains("not valid for name \"other.test\""),
        "[{}] {detail}",
        A::NAME
    );
    gave_up_after_one_attempt::<A>(&mut s).await;
}

/// Certificate rotation: the session trusts a CA file through the reloading provider
/// ([`redial_tls::reloading`]), with a counting provider around it. The file is replaced with
/// one trusting the old and a new CA, then the server restarts with a certificate of the new
/// CA: the next attempt reads the new file, verifies the new server, and requests flow again.
/// The provider was asked once per attempt, and returned a new config after the change.
pub async fn tls_rotation_between_attempts<A: TlsAdapter>() {
    let what = format!("[{}] tls_rotation_between_attempts", A::NAME);
    let (old, new) = (Pki::new("old"), Pki::new("new"));
    let Some(mut redis) = redis_tls_or_skip(&what, &old, false) else {
        return;
    };
    let ca_file = old.dir.join("client-ca.crt");
    fs::write(&ca_file, &old.ca_pem).expect("CA file");
    let reloading = redial_tls::reloading(TlsOptions::ca_file(&ca_file)).expect("CA file");
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&asked);
    let configs = Arc::new(Mutex::new(Vec::<Arc<ClientConfig>>::new()));
    let seen = Arc::clone(&configs);
    let provider: redial_tls::ConfigProvider = Arc::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let c = reloading()?;
        seen.lock().expect("configs").push(Arc::clone(&c));
        Ok(c)
    });
    let mut s = tls_session::<A, _>(
        redis.named(),
        TlsSettings::new(provider),
        None,
        real_config(Some((300, 700))),
        Resp::new(),
    );
    assert_eq!(int_reply(&ask::<A>(&s.handle, &[b"INCR", b"r"]).await), 1);
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    // Clients first (a new file trusting both CAs, renamed into place: a reconnect to the old
    // server in between still verifies), then the server. Only the new file trusts the new
    // server, so reconnecting to it proves the file was read again.
    let tmp = old.dir.join("client-ca.crt.new");
    fs::write(&tmp, format!("{}{}", old.ca_pem, new.ca_pem)).expect("new CA");
    fs::rename(&tmp, &ca_file).expect("rotate CA file");
    let mark = s.mark();
    redis.restart_with(&new);
    let (at, down) = wait_since::<A>(&mut s, mark, "disconnect", is_disconnect).await;
    let epoch = epoch_of(&down);
    wait_since::<A>(&mut s, at + 1, "reconnected to the rotated server", |e| {
        connected_after(e, epoch).is_some()
    })
    .await;
    assert_eq!(
        int_reply(&ask::<A>(&s.handle, &[b"INCR", b"r"]).await),
        1,
        "[{}] the new server's first INCR",
        A::NAME
    );
    let stats = s.handle.stats();
    assert_eq!(
        asked.load(Ordering::SeqCst) as u64,
        stats.attempts,
        "[{}] the provider is asked at every attempt: {stats:?}",
        A::NAME
    );
    let rotated = {
        let configs = configs.lock().expect("configs");
        !Arc::ptr_eq(&configs[0], &configs[configs.len() - 1])
    };
    assert!(rotated, "[{}] the rotated file made a new config", A::NAME);
    // Clients were rotated before the server: no attempt failed on a certificate.
    assert_eq!(
        s.count(|n| matches!(
            n,
            Notification::AttemptFailed {
                error: NetError::PermissionDenied,
                ..
            }
        )),
        0
    );
    s.handle.close(CloseMode::Immediate).await;
}

/// NATS over TLS: nats-server 2.9 sends `INFO {..."tls_required":true}` in plaintext, then
/// waits for the client's handshake ([`Handshake::AfterGreeting`]): the connector reads that
/// line, runs TLS, and hands the line to the protocol as its first. A subscription and
/// publishes ride through a server restart (a second plaintext INFO, a second handshake).
pub async fn tls_nats_restart_ridden<A: TlsAdapter>() {
    let what = format!("[{}] tls_nats_restart_ridden", A::NAME);
    let pki = Pki::new("nats");
    let mut nats = match TlsServer::nats(&pki) {
        Ok(n) => n,
        Err(e) => {
            skip_or_fail(&what, &e);
            return;
        }
    };
    let tls = TlsSettings::from_config(pki.client_config(false))
        .with_handshake(Handshake::AfterGreeting(Greeting::default()));
    let mut s = tls_session::<A, _>(
        nats.named(),
        tls,
        None,
        real_config(Some((300, 700))),
        Nats::new(),
    );
    let mut sub = subscribed::<A>(&mut s, nats::subscription("tls.foo", None)).await;
    let got = publish_around_a_restart::<A>(
        &mut s,
        &mut sub,
        "tls.foo",
        ["over tls 0", "over tls 1"],
        || nats.restart(),
    )
    .await;
    assert_eq!(got, ["over tls 0", "over tls 1"], "[{}]", A::NAME);
    assert_eq!(s.handle.stats().connects, 2, "[{}]", A::NAME);
    s.handle.close(CloseMode::Immediate).await;
}

/// Half-open TLS: Redis serves TLS on 6380 in the server namespace; the session's sockets are
/// made in the client namespace (a socket factory under the TLS connector). After a DROP cut
/// on ingress in both namespaces, the RESP heartbeat (500 ms + 1 s) finds the silent TLS
/// connection within interval + timeout + [`TOLERANCE`]; after the heal it reconnects (a new
/// handshake) and requests flow.
pub async fn tls_half_open_found_by_heartbeat<A: TlsAdapter>() {
    let what = format!("[{}] tls_half_open_found_by_heartbeat", A::NAME);
    let Some(pair) = pair_or_skip(&what, "tls") else {
        return;
    };
    let pki = Pki::new("ns");
    // Plaintext 6379 stays for the launcher's readiness probe; the session uses TLS on 6380.
    let extra = pki.redis_args(6380, false);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let redis = match RedisServer::start_in_netns(pair.name(Side::Server), pair.server_ip(), &extra)
    {
        Ok(r) => r,
        Err(e) => {
            skip_or_fail(&what, e.reason());
            return;
        }
    };
    let addr = SocketAddr::new(pair.server_ip(), 6380);
    let tls = TlsSettings::from_config(pki.client_config(false))
        .with_server_name("localhost")
        .expect("name");
    let cfg = real_config(Some((500, 1000)));
    let hb = cfg.heartbeat.expect("on");
    let factory = netns::socket_factory(pair.name(Side::Client));
    let mut s = tls_session::<A, _>(addr, tls, Some(factory), cfg, Resp::new());
    assert_eq!(int_reply(&ask::<A>(&s.handle, &[b"INCR", b"h"]).await), 1);
    eventually::<A>(LONG, "two PONGs while idle", || s.handle.stats().pongs >= 2).await;
    assert_eq!(s.handle.stats().connects, 1);

    let mark = s.mark();
    let cut = Instant::now();
    pair.drop_ingress().expect("drop ingress");
    wait_since::<A>(&mut s, mark, "heartbeat timeout", is_heartbeat_timeout).await;
    let detected = cut.elapsed();
    let bound = hb.interval + hb.timeout + TOLERANCE;
    eprintln!(
        "[{}] half-open TLS (DROP): found by heartbeat after {detected:?} (bound {bound:?})",
        A::NAME
    );
    assert!(
        detected <= bound && detected + Duration::from_millis(100) >= hb.timeout,
        "[{}] found after {detected:?}, expected within [{:?}, {bound:?}]",
        A::NAME,
        hb.timeout
    );
    pair.heal_drop().expect("heal");
    assert_eq!(
        int_reply(&ask::<A>(&s.handle, &[b"INCR", b"h"]).await),
        2,
        "[{}] after the heal",
        A::NAME
    );
    assert!(s.handle.stats().connects >= 2);
    s.handle.close(CloseMode::Immediate).await;
    drop(redis);
}

/// A peer that accepts TCP and then says nothing: the TLS handshake is cut by the attempt's
/// connect deadline (`ConnectTimeout`, no sooner than the deadline) and retried with a next
/// delay; then the same peer resets every connection at once: a retryable reset-class error,
/// again and again. A handshake failure that is not about a certificate never gives up.
pub async fn tls_handshake_timeout_and_reset_are_retried<A: TlsAdapter>() {
    let pki = Pki::new("hs");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let silent = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let (quiet, done) = (Arc::clone(&silent), Arc::clone(&stop));
    let server = thread::spawn(move || {
        let mut held = Vec::new();
        while !done.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((sock, _)) if quiet.load(Ordering::SeqCst) => held.push(sock),
                Ok((sock, _)) => {
                    // Linger 0: a reset, not a FIN.
                    let _ = redial_driver::socket2::SockRef::from(&sock)
                        .set_linger(Some(Duration::ZERO));
                    drop(sock);
                }
                Err(_) => thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    let deadline = Duration::from_millis(300);
    let cfg = real_config(None).with_connect_timeout(deadline);
    let tls = TlsSettings::from_config(pki.client_config(false))
        .with_server_name("localhost")
        .expect("name");
    let started = Instant::now();
    let mut s = tls_session::<A, _>(addr, tls, None, cfg, Resp::new());
    let (at, first) = wait_since::<A>(&mut s, 0, "a failed attempt", |e| {
        matches!(e.notification, Notification::AttemptFailed { .. })
    })
    .await;
    let took = started.elapsed();
    assert!(
        matches!(
            first.notification,
            Notification::AttemptFailed {
                error: NetError::ConnectTimeout,
                next_delay: Some(_),
                ..
            }
        ),
        "[{}] a silent handshake times out and is retried: {first:?}",
        A::NAME
    );
    assert!(took >= deadline, "[{}] failed after {took:?}", A::NAME);
    wait_since::<A>(&mut s, at + 1, "a second timed-out attempt", |e| {
        matches!(
            e.notification,
            Notification::AttemptFailed {
                error: NetError::ConnectTimeout,
                ..
            }
        )
    })
    .await;

    silent.store(false, Ordering::SeqCst);
    let mark = s.mark();
    let (at, reset) = wait_since::<A>(&mut s, mark, "a reset handshake", |e| {
        matches!(
            e.notification,
            Notification::AttemptFailed { error, .. } if error != NetError::ConnectTimeout
        )
    })
    .await;
    assert!(
        matches!(
            reset.notification,
            Notification::AttemptFailed { error, next_delay: Some(_), .. } if error.is_retryable()
        ),
        "[{}] a reset handshake is retried: {reset:?}",
        A::NAME
    );
    wait_since::<A>(&mut s, at + 1, "another reset attempt", |e| {
        matches!(
            e.notification,
            Notification::AttemptFailed { error, next_delay: Some(_), .. } if error != NetError::ConnectTimeout
        )
    })
    .await;
    assert_ne!(
        s.handle.state(),
        State::Closed,
        "[{}] never gave up",
        A::NAME
    );
    s.handle.close(CloseMode::Immediate).await;
    stop.store(true, Ordering::SeqCst);
    server.join().expect("server thread");
}

/// Redis over a Unix socket (`--unixsocket`, target `unix:/path`): requests answered; a
/// restart (SIGKILL, the socket file left behind, recreated by the new server) is ridden, and
/// the new server sees the next command once.
pub async fn unix_socket_redis_restart_ridden<A: TlsAdapter>() {
    let what = format!("[{}] unix_socket_redis_restart_ridden", A::NAME);
    let path = std::env::temp_dir().join(format!(
        "redial-unix-{}-{}.sock",
        std::process::id(),
        A::NAME
    ));
    let path_s = path.to_string_lossy().into_owned();
    let mut redis = match RedisServer::start(&["--unixsocket", &path_s, "--unixsocketperm", "700"])
    {
        Ok(r) => r,
        Err(e) => {
            skip_or_fail(&what, e.reason());
            return;
        }
    };
    wait_for_socket::<A>(&path).await;
    let b = A::builder(Target::from(format!("unix:{path_s}")))
        .config(real_config(Some((300, 700))))
        .protocol(Resp::new());
    let (handle, inbound, events) = b.spawn().expect("valid config");
    let mut s = Sess {
        handle,
        inbound,
        events,
        seen: Vec::new(),
    };
    assert_eq!(int_reply(&ask::<A>(&s.handle, &[b"INCR", b"u"]).await), 1);
    s.drain();
    assert!(
        s.seen.iter().any(|e| matches!(
            e.notification,
            Notification::Connected {
                addr: redial_core::Addr::Local(_),
                ..
            }
        )),
        "[{}] connected over the socket: {:?}",
        A::NAME,
        s.seen
    );
    let mark = s.mark();
    redis.restart();
    let (at, down) = wait_since::<A>(&mut s, mark, "disconnect", is_disconnect).await;
    let epoch = epoch_of(&down);
    wait_since::<A>(&mut s, at + 1, "reconnect", |e| {
        connected_after(e, epoch).is_some()
    })
    .await;
    assert_eq!(
        int_reply(&ask::<A>(&s.handle, &[b"INCR", b"u"]).await),
        1,
        "[{}] the new server's first INCR, over the socket",
        A::NAME
    );
    assert_eq!(redis.cli(&["GET", "u"]), "$1");
    s.handle.close(CloseMode::Immediate).await;
    drop(redis);
    let _ = fs::remove_file(&path);
}

async fn wait_for_socket<A: Adapter>(path: &Path) {
    eventually::<A>(LONG, "the Unix socket accepts", || {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No `Debug` of the TLS types shows the client's private key; nor does the error of a
    /// key that does not parse.
    #[test]
    fn debug_never_shows_the_private_key() {
        let pki = Pki::new("debug");
        let secret: String = pki
            .client_key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(secret.len() > 40);
        let identity = redial_tls::ClientIdentity::from_pem(
            pki.client_cert_pem.clone(),
            pki.client_key_pem.clone(),
        );
        let options = TlsOptions::ca_pem(pki.ca_pem.clone()).with_identity(identity.clone());
        let settings = TlsSettings::from_options(options.clone()).expect("options");
        let tokio = redial_tokio::tls::TlsConnector::new(settings.clone());
        let smol = redial_smol::tls::TlsConnector::new(settings.clone());
        let config = options.build().expect("config");
        let shown = [
            format!("{identity:?}"),
            format!("{options:?}"),
            format!("{settings:?}"),
            format!("{tokio:?}"),
            format!("{smol:?}"),
            format!("{config:?}"),
        ];
        for s in &shown {
            for chunk in secret.as_bytes().chunks(16) {
                let chunk = std::str::from_utf8(chunk).expect("base64");
                assert!(!s.contains(chunk), "key material in {s}");
            }
        }
        assert!(shown[0].contains("<redacted>"), "{}", shown[0]);
        // A key that is not a key: the error names the key, never its bytes.
        let mangled = pki.client_key_pem.replace("PRIVATE KEY", "PRIVATE KEX");
        let e = TlsOptions::ca_pem(pki.ca_pem.clone())
            .with_identity(redial_tls::ClientIdentity::from_pem(
                pki.client_cert_pem.clone(),
                mangled,
            ))
            .build()
            .expect_err("no key");
        let text = format!("{e} {e:?}");
        assert!(text.contains("client key"), "{text}");
        for chunk in secret.as_bytes().chunks(16) {
            assert!(
                !text.contains(std::str::from_utf8(chunk).expect("base64")),
                "{text}"
            );
        }
    }
}
