//! An operator's bad day, with the real binary: exits an operator can rely on, every input
//! bounded, bytes kept as bytes. Each test is one probe of the backpressure issue, asserting
//! its bound. (More probes live beside the features they test in `pipe.rs`: giving up at once
//! with stdin open, a stalled stdout holding the socket not memory and SIGTERM exiting within
//! the drain, a closed stdout, record write errors, invalid UTF-8 lines.)

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

use common::*;

/// A server that sends back every byte it receives, as it receives it.
fn raw_echo() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Port 0 is no server's port: refused as a usage error (exit 2), not dialed for minutes.
#[test]
fn port_zero_is_a_usage_error() {
    let out = redial()
        .args(["pipe", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("port 0"),
        "{}",
        text(&out.stderr)
    );
}

/// `redial sim` with parameters whose memory or time would be absurd refuses them, naming
/// the limit (exit 2), at once: no allocation failure, no abort, no run past its welcome.
#[test]
fn sim_refuses_absurd_parameters_naming_the_limit() {
    for (args, says) in [
        (
            &["--clients", "100000000"][..],
            "--clients 100000000 is above the limit",
        ),
        (
            &["--bucket", "1ns", "--duration", "10s"][..],
            "buckets, above the limit",
        ),
        (&["--duration", "1000000h"][..], "above the limit of 24h"),
        (
            &["--message-every", "1ns"][..],
            "messages for 10000 clients",
        ),
    ] {
        let t = Instant::now();
        let out = redial().arg("sim").args(args).output().expect("run");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(t.elapsed() < Duration::from_secs(5), "{args:?} took long");
    }
}

/// `--stdin raw`: stdin is bytes, no lines: 256 KiB of every byte value go to the server in
/// chunks and come back to stdout identical.
#[test]
fn raw_stdin_carries_any_bytes_both_ways() {
    let addr = raw_echo();
    let input: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut child = redial()
        .args([
            "pipe",
            &addr.to_string(),
            "--stdin",
            "raw",
            "--events",
            "quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&input).unwrap();
    // Keep stdin open until everything came back: EOF starts the drain.
    let t = Instant::now();
    let echoed = loop {
        let ok = std::fs::read_to_string(format!("/proc/{}/io", child.id()))
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|l| l.strip_prefix("wchar: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
            })
            .is_some_and(|w| w >= input.len());
        if ok || t.elapsed() > LONG {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(stdin);
    let status = wait_exit(&mut child, LONG);
    let got = reader.join().unwrap();
    assert!(echoed, "stdout never got the echo");
    assert_eq!(status.code(), Some(0));
    assert_eq!(got.len(), input.len());
    assert!(got == input, "the bytes came back changed");
}

/// A line server's data is printed as it came: invalid UTF-8 from the server reaches stdout
/// unchanged, never replaced by U+FFFD.
#[test]
fn plain_output_is_the_servers_bytes() {
    let addr = raw_echo();
    let out = pipe_with(
        &[&addr.to_string(), "--events", "quiet", "--ack", "reply"],
        b"\xff\xfe\x00ok\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        out.stdout.windows(5).any(|w| w == b"\xff\xfe\x00ok"),
        "{:?}",
        out.stdout
    );
}
