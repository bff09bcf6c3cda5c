//! `redial pipe --metrics`: a real HTTP GET of the Prometheus text while a real redis-server
//! is killed (SIGKILL) and comes back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use redial_testkit::servers::{skip_or_fail, RedisServer};
use redial_testkit::wait::{wait_for, wait_until};

mod common;

use common::*;

/// One HTTP/1.1 GET; returns the status line's code, the headers and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("a whole answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, head.to_owned(), body.to_owned())
}

/// The value of the sample `series` (name and labels exactly as rendered), if present.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn scrape(addr: SocketAddr) -> String {
    let (code, head, body) = get(addr, "/metrics");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body
}

#[test]
fn metrics_scraped_over_http_while_the_server_is_killed() {
    let mut redis = match RedisServer::start(&[]) {
        Ok(r) => r,
        Err(e) => return skip_or_fail("pipe --metrics", e.reason()),
    };
    let mut child = redial()
        .args(["pipe", &redis.addr().to_string(), "--preset", "redis"])
        .args(["--metrics", "127.0.0.1:0", "--interval", "100ms"])
        .args(["--initial", "20ms", "--cap", "100ms", "--drain", "1s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redial pipe");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));
    let addr: SocketAddr = wait_for(LONG, "the metrics address on stderr", || {
        stderr.lock().unwrap().iter().find_map(|l| {
            l.strip_prefix("redial: metrics on http://")?
                .strip_suffix("/metrics")?
                .parse()
                .ok()
        })
    });

    writeln!(stdin, "SET secret-key hunter2").unwrap();
    wait_until(LONG, "OK on stdout", || {
        stdout.lock().unwrap().iter().any(|l| l == "OK")
    });
    let body = wait_for(LONG, "the first connection counted", || {
        let body = scrape(addr);
        let delivered = r#"redial_messages_total{session="pipe",outcome="delivered"}"#;
        (sample(&body, r#"redial_connects_total{session="pipe"}"#) == Some(1.0)
            && sample(&body, delivered) == Some(1.0))
        .then_some(body)
    });
    assert_eq!(
        sample(
            &body,
            r#"redial_sessions{session="pipe",state="connected"}"#
        ),
        Some(1.0),
        "{body}"
    );
    assert!(body.contains("# HELP redial_connects_total"), "{body}");

    // SIGKILL, and back on the same port: the loss, the reconnect and its time are scraped.
    redis.restart();
    let body = wait_for(LONG, "the kill and the reconnect in a scrape", || {
        let body = scrape(addr);
        (sample(&body, r#"redial_connects_total{session="pipe"}"#) == Some(2.0)
            && sample(&body, r#"redial_reconnect_seconds_count{session="pipe"}"#) == Some(1.0))
        .then_some(body)
    });
    let lost: f64 = body
        .lines()
        .filter(|l| l.starts_with(r#"redial_disconnects_total{session="pipe",reason="#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(lost, 1.0, "one connection lost, by any reason: {body}");
    assert!(
        sample(&body, r#"redial_attempts_total{session="pipe"}"#) >= Some(2.0),
        "{body}"
    );
    assert!(
        !body.contains("secret-key") && !body.contains("hunter2"),
        "{body}"
    );
    let port = redis.addr().port().to_string();
    for labels in body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('{')?.1.split_once('}'))
        .map(|(labels, _)| labels)
    {
        assert!(!labels.contains(&port), "no address in any label: {labels}");
    }

    // Anything but the metrics is not served.
    assert_eq!(get(addr, "/other").0, 404);

    drop(stdin);
    let status = wait_exit(&mut child, LONG);
    assert_eq!(status.code(), Some(0), "{:?}", stderr.lock().unwrap());
}
