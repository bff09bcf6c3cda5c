//! A real `etcd` child process (one member on loopback, v3 API), for testing discovery and
//! watches through restarts.
//!
//! Debian ships it as `etcd-server` (`apt-get install etcd-server`); without it
//! [`EtcdServer::start`] returns [`Unavailable::Missing`].

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;

use crate::servers::{free_port, need, temp_path, Daemon, Unavailable};

/// An `etcd` child process with its own temporary data directory, killed and reaped on drop
/// (the directory is removed then too).
pub struct EtcdServer {
    d: Daemon,
    data_dir: PathBuf,
}

impl EtcdServer {
    /// Starts one member on free 127.0.0.1 client and peer ports; returns once
    /// `GET /health` answers `"health":"true"` (bounded, 5 s).
    pub fn start() -> Result<Self, Unavailable> {
        let bin = need("etcd")?;
        let mut last = Unavailable::Failed("not started".into());
        // Another process may grab a probed port between the probe and etcd's bind.
        for _ in 0..3 {
            let (client, peer) = (free_port()?, free_port()?);
            let data_dir = temp_path("etcd", "data");
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let args = [
                "--name",
                "t",
                "--data-dir",
                &data_dir.to_string_lossy(),
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("t={peer_url}"),
            ]
            .map(String::from)
            .to_vec();
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, client));
            let mut d = Daemon::new("etcd", bin.clone(), args, addr, None, etcd_probe)?;
            match d.launch() {
                Ok(()) => return Ok(EtcdServer { d, data_dir }),
                Err(e) => {
                    drop(d);
                    let _ = fs::remove_dir_all(&data_dir);
                    last = Unavailable::Failed(e);
                }
            }
        }
        Err(last)
    }

    /// The client address (what `etcd-client` connects to).
    pub fn addr(&self) -> SocketAddr {
        self.d.addr
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.d.addr)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.d.pid()
    }

    /// Kills it (SIGKILL), reaps it, and starts it again on the same ports and the same data
    /// directory: keys and revisions survive, so a watch can resume from its revision.
    ///
    /// # Panics
    /// If it does not come back within 5 s.
    pub fn restart(&mut self) {
        self.d.restart();
    }

    /// Stops it (SIGKILL) without restarting; [`start_again`](Self::start_again) brings it back.
    pub fn stop(&mut self) {
        self.d.kill();
    }

    /// Starts it again after [`stop`](Self::stop), on the same ports and data directory.
    ///
    /// # Panics
    /// If it does not come back within 5 s.
    pub fn start_again(&mut self) {
        if let Err(e) = self.d.launch() {
            panic!("etcd start failed: {e}");
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.d.kill();
        let _ = fs::remove_dir_all(&self.data_dir);
    }
}

/// Ready when the HTTP gateway's health check says so (it answers before the member has a
/// leader, with `"health":"false"`).
fn etcd_probe(s: &mut TcpStream) -> io::Result<()> {
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut answer = String::new();
    s.take(64 * 1024).read_to_string(&mut answer)?;
    if answer.contains("\"health\":\"true\"") {
        Ok(())
    } else {
        Err(io::Error::other(format!("not healthy yet: {answer:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::skip_or_fail;

    fn put_and_get(url: &SocketAddr, key: &str, value: &str) -> io::Result<String> {
        // The v3 JSON gateway of etcd 3.4 takes base64 keys and values.
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            b64(key.as_bytes()),
            b64(value.as_bytes())
        );
        http_post(url, "/v3/kv/put", &body)?;
        http_post(
            url,
            "/v3/kv/range",
            &format!("{{\"key\":\"{}\"}}", b64(key.as_bytes())),
        )
    }

    fn http_post(addr: &SocketAddr, path: &str, body: &str) -> io::Result<String> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        write!(
            s,
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer)
    }

    fn b64(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn keys_survive_a_restart_on_the_same_ports() {
        let mut etcd = match EtcdServer::start() {
            Ok(e) => e,
            Err(e) => return skip_or_fail("etcd launcher", e.reason()),
        };
        let addr = etcd.addr();
        let first = put_and_get(&addr, "redial/a", "one").expect("put");
        assert!(first.contains(&b64(b"one")), "{first}");
        let pid = etcd.pid();
        etcd.restart();
        assert_ne!(etcd.pid(), pid, "a new process");
        assert_eq!(etcd.addr(), addr, "same client port");
        let again = http_post(
            &addr,
            "/v3/kv/range",
            &format!("{{\"key\":\"{}\"}}", b64(b"redial/a")),
        )
        .expect("range after restart");
        assert!(again.contains(&b64(b"one")), "the key survived: {again}");
        let dir = etcd.data_dir.clone();
        drop(etcd);
        assert!(!dir.exists(), "data directory removed on drop");
        assert!(TcpStream::connect(addr).is_err(), "killed on drop");
    }
}
