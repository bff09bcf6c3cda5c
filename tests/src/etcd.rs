//! A real `etcd` (Debian `etcd-server`) for tests: one member on fresh loopback ports with a
//! temporary data directory, a child of the test, killed by PID and restarted on the same
//! ports and data (keys, leases and revisions survive, so a watch can resume).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crate::servers::{which, Unavailable};

/// How long etcd may take to report healthy (about 0.7 s here).
const READY: Duration = Duration::from_secs(10);

/// An `etcd` child process.
pub struct EtcdServer {
    program: PathBuf,
    dir: PathBuf,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl EtcdServer {
    /// Starts a one-member cluster on free loopback ports; returns once `/health` says so.
    pub fn start() -> Result<Self, Unavailable> {
        let program =
            which("etcd").ok_or_else(|| Unavailable::Missing("etcd not found on PATH".into()))?;
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "redial-etcd-{}-{}",
            std::process::id(),
            N.fetch_add(1, SeqCst)
        ));
        fs::create_dir_all(&dir).map_err(|e| Unavailable::Failed(e.to_string()))?;
        let mut last = Unavailable::Failed("not started".into());
        // Another process may take a probed port before etcd binds it: try a few.
        for _ in 0..3 {
            let ports = free_port().and_then(|c| Ok((c, free_port()?)));
            let (client, peer) = ports.map_err(|e| Unavailable::Failed(e.to_string()))?;
            let mut s = EtcdServer {
                program: program.clone(),
                dir: dir.clone(),
                client,
                peer,
                child: None,
            };
            match s.launch() {
                Ok(()) => return Ok(s),
                Err(e) => last = Unavailable::Failed(e),
            }
        }
        Err(last)
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.client).into()
    }

    /// The process id (0 when stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills it (SIGKILL, by PID) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data directory; returns once healthy.
    ///
    /// # Panics
    /// If it does not come back.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.launch() {
            panic!("etcd restart failed: {e}");
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let log_path = self.dir.join("etcd.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let c = format!("http://127.0.0.1:{}", self.client);
        let p = format!("http://127.0.0.1:{}", self.peer);
        let child = Command::new(&self.program)
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args([
                "--listen-peer-urls",
                &p,
                "--initial-advertise-peer-urls",
                &p,
            ])
            .args(["--initial-cluster", &format!("t={p}")])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.program.display()))?;
        let child = self.child.insert(child);
        let deadline = Instant::now() + READY;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                return Err(format!("etcd exited ({status}): {tail:?}"));
            }
            if healthy(self.client) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("etcd not healthy within {READY:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `GET /health` answers `"health":"true"`.
fn healthy(port: u16) -> bool {
    let probe = || -> io::Result<bool> {
        let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body.contains("\"health\":\"true\""))
    };
    probe().unwrap_or(false)
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
