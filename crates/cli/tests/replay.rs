//! Record a real tokio session through a fault with `redial pipe --record`, then replay it
//! with `redial replay`: the fresh core must take exactly the recorded decisions.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use redial_tests::servers::LineServer;
use redial_tests::wait::wait_until;

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
