//! `redial demo --fast` runs end to end and its summary shows the story it tells.

use std::process::Command;

#[test]
fn demo_fast_tells_the_whole_story() {
    let out = Command::new(env!("CARGO_BIN_EXE_redial"))
        .args(["demo", "--fast"])
        .output()
        .expect("run redial demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for act in ["act 1", "act 2", "act 3", "act 4"] {
        assert!(stdout.contains(act), "missing {act}:\n{stdout}");
    }
    // Every failed attempt names its address and its error.
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("failed     attempt"))
        .collect();
    assert!(failed.len() >= 4, "{stdout}");
    assert!(
        failed
            .iter()
            .all(|l| l.contains("127.0.0.1:") && l.contains("refused")),
        "{failed:#?}"
    );
    assert!(stdout.contains("heartbeat timed out"), "{stdout}");
    assert!(
        stdout.contains("TRANSFER (at most once)") && stdout.contains("IN DOUBT"),
        "{stdout}"
    );
    assert!(stdout.contains("server saw TRANSFER 1x"), "{stdout}");
    assert!(stdout.contains("GET balance 2x"), "{stdout}");
    assert!(stdout.trim_end().ends_with("RESULT: ok"), "{stdout}");
}
