//! `redial pipe ws://…`: the header reaches the server, and its value reaches nothing else
//! (events in both formats, the record file, usage errors), however the session ends.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SECRET: &str = "s3cr3t-b34r3r-t0k3n";

/// A server that answers every upgrade with `answer`, and sends back each request's head.
fn http_server(answer: &'static str) -> (u16, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            let _ = s.write_all(answer.as_bytes());
        }
    });
    (port, rx)
}

/// Runs the pipe with stdin held open (so it ends by the session's own end) and returns its
/// exit code and stderr.
fn pipe(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_redial"))
        .arg("pipe")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stdin = child.stdin.take();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), stderr)
}

#[test]
fn a_refused_upgrade_gives_up_naming_the_status_and_never_the_header_value() {
    let (port, heads) = http_server("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
    let dir = std::env::temp_dir().join(format!("redial-pipe-ws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("trace.jsonl");
    let url = format!("ws://127.0.0.1:{port}/chat?room=1");
    let header = format!("Authorization: Bearer {SECRET}");
    for events in ["json", "human"] {
        let (code, stderr) = pipe(&[
            &url,
            "--header",
            &header,
            "--subprotocol",
            "chat.v1",
            "--events",
            events,
            "--record",
            record.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(3), "gave up: {stderr}");
        assert!(stderr.contains("401 Unauthorized"), "{stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
        let trace = std::fs::read_to_string(&record).unwrap();
        assert!(trace.contains("Authorization"), "the name is recorded");
        assert!(!trace.contains(SECRET), "the value is not");
        let head = heads.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(head.starts_with("GET /chat?room=1 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{head}"
        );
        assert!(head.contains(&header), "sent to the server: {head}");
        assert!(
            head.contains("Sec-WebSocket-Protocol: chat.v1\r\n"),
            "{head}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_malformed_header_is_refused_without_its_value() {
    let bad = format!("Authorization Bearer {SECRET}");
    let (code, stderr) = pipe(&["ws://127.0.0.1:9/", "--header", &bad]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--header"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    let (code, stderr) = pipe(&[
        "ws://127.0.0.1:9/",
        "--header",
        &format!("X-A: 1\r\n{SECRET}"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    let (code, stderr) = pipe(&["127.0.0.1:9", "--header", "X-A: 1"]);
    assert_eq!(code, Some(2), "headers are for ws:// targets: {stderr}");
}

/// `wss://` with the TLS flags, against Python `websockets` serving TLS with a certificate
/// signed by a CA of the test's: lines echoed; without `--ca` the certificate is refused
/// for good (exit 3).
#[test]
fn wss_uses_the_tls_flags() {
    let has_ws = Command::new("python3")
        .args(["-c", "import websockets.asyncio.server"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_ws {
        assert!(
            std::env::var("REDIAL_REQUIRE_REAL").map_or(true, |v| v != "1"),
            "REDIAL_REQUIRE_REAL=1 but python3 has no `websockets`"
        );
        println!("SKIPPED: python3 with `websockets`");
        return;
    }
    let dir = std::env::temp_dir().join(format!("redial-pipe-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("s.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("s.key"), key.serialize_pem()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/py/ws_peer.py");
    let mut server = Command::new("python3")
        .args([script, "echo"])
        .env("WS_PEER_CERT", dir.join("s.crt"))
        .env("WS_PEER_KEY", dir.join("s.key"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    let port: u16 = ready
        .trim()
        .strip_prefix("READY ")
        .unwrap()
        .parse()
        .unwrap();
    let url = format!("wss://localhost:{port}/tls");
    let ca = dir.join("ca.crt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_redial"))
        .args([
            "pipe",
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "--events",
            "quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"over tls\nHTTP/1.1 101 looks like a header\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (code, refused) = pipe(&[&url, "--events", "human"]);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "over tls\nHTTP/1.1 101 looks like a header\n"
    );
    assert_eq!(
        code,
        Some(3),
        "an unknown CA is refused for good: {refused}"
    );
    assert!(refused.contains("permission denied"), "{refused}");
}
