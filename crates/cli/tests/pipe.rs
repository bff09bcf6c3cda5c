//! `redial pipe` end to end: a real child process, a local line server behind the fault proxy.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redial_tests::proxy::{FaultProxy, Mode};
use redial_tests::servers::LineServer;
use redial_tests::wait::wait_until;

const LONG: Duration = Duration::from_secs(15);

fn redial() -> Command {
    Command::new(env!("CARGO_BIN_EXE_redial"))
}

/// Collects a child's stream line by line on a thread.
fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    lines
}

#[test]
fn queues_through_restart_reports_in_doubt_and_exits_4() {
    let server = LineServer::start();
    server.set_reply(Some("+OK "));
    let proxy = FaultProxy::start(server.addr());
    let mut child = redial()
        .args([
            "pipe",
            &proxy.addr().to_string(),
            "--interval",
            "200ms",
            "--timeout",
            "300ms",
        ])
        .args([
            "--initial",
            "20ms",
            "--cap",
            "200ms",
            "--ack",
            "reply",
            "--events",
            "json",
        ])
        .args(["--stable-after", "100ms", "--drain", "2s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redial pipe");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));

    writeln!(stdin, "a\nb").unwrap();
    wait_until(LONG, "a and b at the server", || {
        server.received() == ["a", "b"]
    });
    wait_until(LONG, "replies on stdout", || {
        stdout.lock().unwrap().len() == 2
    });
    assert_eq!(*stdout.lock().unwrap(), ["+OK a", "+OK b"]);

    // Restart: the port refuses while the server is down; typed lines wait in the queue.
    server.stop();
    proxy.set_mode(Mode::Refuse);
    wait_until(LONG, "disconnect noticed", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(r#""event":"disconnected""#))
    });
    writeln!(stdin, "c\nd").unwrap();
    wait_until(LONG, "refused attempts", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(r#""event":"attempt_failed""#) && l.contains("refused"))
    });
    assert_eq!(server.received(), ["a", "b"]);
    server.start_again();
    proxy.set_mode(Mode::PassThrough);
    wait_until(LONG, "queued lines flushed in order", || {
        server.received() == ["a", "b", "c", "d"]
    });

    // A line caught by a cut with no reply yet: reported in doubt, never resent.
    server.set_silent(true);
    writeln!(stdin, "x").unwrap();
    wait_until(LONG, "x at the server", || server.received().len() == 5);
    server.set_silent(false);
    proxy.reset_all();
    wait_until(LONG, "in-doubt report", || {
        stderr.lock().unwrap().iter().any(|l| {
            l.contains(r#""event":"undelivered""#)
                && l.contains("InDoubt")
                && l.contains(r#""line":"x""#)
        })
    });
    drop(stdin); // EOF: drain and exit.
    let status = child.wait().expect("exit");
    assert_eq!(
        status.code(),
        Some(4),
        "one line undelivered: {:#?}",
        stderr.lock().unwrap()
    );
    assert_eq!(
        server.received().iter().filter(|l| *l == "x").count(),
        1,
        "x was not resent"
    );
    // Every JSON event line parses.
    for l in stderr.lock().unwrap().iter() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
}

#[test]
fn gives_up_with_exit_3_and_rejects_bad_arguments_with_exit_2() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = redial()
        .args([
            "pipe",
            &dead.to_string(),
            "--initial",
            "10ms",
            "--max-failures",
            "3",
            "--give-up-either",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // stdin stays open with a line waiting: the session must end by giving up.
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "hello").unwrap();
    let stderr = collect(child.stderr.take().expect("stderr"));
    let status = child.wait().expect("exit");
    drop(stdin);
    let stderr = stderr.lock().unwrap().join("\n");
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("gave up    after 3 failures"), "{stderr}");
    assert!(
        stderr.contains("not delivered (Abandoned(GaveUp)): hello"),
        "{stderr}"
    );

    let out = redial()
        .args(["pipe", "127.0.0.1:1", "--interval", "0s"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("heartbeat.interval must be greater than zero"));
    let out = redial()
        .args(["pipe", "no-port-here"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = redial()
        .args(["pipe", "127.0.0.1:1", "--interval", "5 parsecs"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}
