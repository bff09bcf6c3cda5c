//! Record a real tokio session through a fault with `redial pipe --record`, then replay it
//! with `redial replay`: the fresh core must take exactly the recorded decisions.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use redial_testkit::servers::{LineServer, RedisServer};
use redial_testkit::wait::wait_until;

fn redial() -> Command {
    Command::new(env!("CARGO_BIN_EXE_redial"))
}

#[test]
fn recorded_session_replays_identically_and_tampering_is_caught() {
    let dir = std::env::temp_dir().join(format!("redial-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("session.jsonl");
    let server = LineServer::start();
    let mut child = redial()
        .args([
            "pipe",
            &server.addr().to_string(),
            "--events",
            "quiet",
            "--interval",
            "100ms",
        ])
        .args(["--timeout", "200ms", "--initial", "10ms", "--record"])
        .arg(&trace)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "one").unwrap();
    wait_until(Duration::from_secs(10), "one", || {
        server.received() == ["one"]
    });
    server.kill_all(); // A fault: the session must notice, back off with jitter, reconnect.
    wait_until(Duration::from_secs(10), "reconnect", || {
        server.connections() == 2
    });
    server.set_answer_pings(false); // And a heartbeat timeout.
    wait_until(Duration::from_secs(10), "heartbeat redial", || {
        server.connections() >= 3
    });
    server.set_answer_pings(true);
    writeln!(stdin, "two").unwrap();
    wait_until(Duration::from_secs(10), "two", || {
        server.received().contains(&"two".to_string())
    });
    drop(stdin);
    assert!(child.wait().unwrap().success());

    let out = redial().arg("replay").arg(&trace).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("replay identical to the recording"),
        "{stdout}"
    );
    assert!(stdout.contains("peer closed the connection"), "{stdout}");
    assert!(stdout.contains("heartbeat timed out"), "{stdout}");

    // A different jitter seed takes different decisions: the replay must say so.
    let text = std::fs::read_to_string(&trace).unwrap();
    let seed_at = text.find("\"seed\":").expect("seed recorded") + "\"seed\":".len();
    let end = seed_at + text[seed_at..].find(|c: char| !c.is_ascii_digit()).unwrap();
    let tampered = format!("{}12345{}", &text[..seed_at], &text[end..]);
    let bad = dir.join("tampered.jsonl");
    std::fs::write(&bad, tampered).unwrap();
    let out = redial().arg("replay").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("replay diverges at action"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A Redis session with hostile values, recorded by `redial pipe --preset redis --record`:
/// the bytes read are in the trace, so the replay decodes them as the session did.
#[test]
fn recorded_redis_session_replays_identically() {
    let dir = std::env::temp_dir().join(format!("redial-replay-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("redis.jsonl");
    let redis = RedisServer::start(&[]).expect("redis-server is installed");
    let mut child = redial()
        .args(["pipe", &redis.addr().to_string(), "--preset", "redis"])
        .args(["--events", "quiet", "--interval", "50ms", "--record"])
        .arg(&trace)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"SET a +PONG\nGET a\nRPUSH l \"x\\r\\ny\" $5\nLRANGE l 0 -1\nPING\n")
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"+PONG\""));
    let out = redial()
        .arg("replay")
        .arg(&trace)
        .arg("--all")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("protocol: RESP2"), "{stdout}");
    assert!(
        stdout.contains("replay identical to the recording"),
        "{stdout}"
    );
    assert!(stdout.contains("transmit"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Hostile trace files are refused with a message, never a panic or a memory bomb.
#[test]
fn hostile_traces_are_refused_cleanly() {
    let dir = std::env::temp_dir().join(format!("redial-replay-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let long = format!("{{\"k\":\"{}\"}}\n", "x".repeat(9 << 20));
    for (name, body, says) in [
        ("empty", String::new(), "empty trace"),
        ("garbage", "not json at all\n".to_owned(), "line 1"),
        (
            "kind",
            "{\"k\":\"detonate\"}\n".to_owned(),
            "unknown kind \"detonate\"",
        ),
        (
            "order",
            "{\"k\":\"transmit\"}\n".to_owned(),
            "the first line must be `start`",
        ),
        ("long", long, "longer than"),
    ] {
        let f = dir.join(name);
        std::fs::write(&f, body).unwrap();
        let out = redial().arg("replay").arg(&f).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
    }
    let out = redial()
        .arg("replay")
        .arg(dir.join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
    std::fs::remove_dir_all(&dir).ok();
}
