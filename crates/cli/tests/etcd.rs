//! `redial register` and `redial pipe etcd://…` end to end against a real etcd, and the
//! fleet figures of `redial sim`.

use std::process::Stdio;

use redial_testkit::etcd::EtcdServer;
use redial_testkit::servers::{skip_or_fail, LineServer};
use redial_testkit::wait::wait_until;

mod common;

use common::*;

fn has(lines: &std::sync::Mutex<Vec<String>>, what: &str) -> bool {
    lines.lock().unwrap().iter().any(|l| l.contains(what))
}

#[test]
fn register_then_pipe_through_the_registry() {
    let etcd = match EtcdServer::start() {
        Ok(e) => e,
        Err(e) => return skip_or_fail("redial register", e.reason()),
    };
    let server = LineServer::start();
    let url = format!(
        "etcd://{}/services/line-{}",
        etcd.addr(),
        std::process::id()
    );
    let mut reg = redial()
        .args(["register", &url, &server.addr().to_string(), "--ttl", "2s"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redial register");
    let reg_err = collect(reg.stderr.take().unwrap());
    wait_until(LONG, "registered", || has(&reg_err, "registered"));

    let out = pipe_with(&[&url, "--events", "quiet"], b"hello\nworld\n");
    let err = String::from_utf8_lossy(&out.stderr);
    // Exit 0: every line delivered, to the one registered server (its registry events may
    // not be printed before the pipe is done: that printer races the exit).
    assert_eq!(out.status.code(), Some(0), "{err}");
    wait_until(LONG, "the server got both lines", || {
        server.received() == ["hello", "world"]
    });

    // SIGTERM: the lease is revoked, so the key is gone at once.
    let pid = reg.id().to_string();
    assert_eq!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .code(),
        Some(0)
    );
    let status = wait_exit(&mut reg, LONG);
    assert!(status.success(), "{status}");
    assert!(has(&reg_err, "revoked"), "{:?}", reg_err.lock().unwrap());
    let out = pipe_with(
        &[&url, "--events", "quiet", "--max-failures", "1"],
        b"nobody\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    // The key is gone: no endpoint, the pipe gives up (exit 3; the line, if it was read in
    // time, reported undelivered).
    assert_eq!(out.status.code(), Some(3), "{err}");
}

#[test]
fn credentials_never_show() {
    let out = pipe_with(
        &[
            "etcd://ops:hunter2@127.0.0.1:1/services/x",
            "--max-failures",
            "1",
            "--connect-timeout",
            "300ms",
        ],
        b"",
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("hunter2"), "{all}");
    let bad = pipe_with(&["etcd://ops:hunter2@/"], b"");
    let all = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn sim_fleet_figures() {
    let out = redial()
        .args([
            "sim",
            "--clients",
            "900",
            "--leave",
            "1",
            "--duration",
            "30s",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak = |name: &str| -> u32 {
        let row = text.lines().find(|l| l.starts_with(name)).expect(name);
        let cols: Vec<&str> = row.split_whitespace().collect();
        // name words, moved, "a / b", p50, p99, max
        let slash = cols.iter().position(|c| *c == "/").expect("peaks");
        cols[slash - 1]
            .parse::<u32>()
            .unwrap()
            .max(cols[slash + 1].parse().unwrap())
    };
    let (spread, herd) = (peak("spread 2s"), peak("all at once"));
    assert!(spread * 4 < herd, "{text}");

    let out = redial()
        .args([
            "sim",
            "--clients",
            "600",
            "--budget",
            "--budget-capacity",
            "60",
            "--budget-rate",
            "6",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let during = |name: &str| -> u64 {
        let row = text.lines().find(|l| l.starts_with(name)).expect(name);
        row.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert!(during("shared") * 3 < during("none"), "{text}");
}
