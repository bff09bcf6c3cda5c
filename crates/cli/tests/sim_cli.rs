//! `redial sim` end to end: table, histogram, JSON and SVG exist and make sense, and jitter
//! on vs off gives different peaks.

use std::process::{Command, Output};

fn redial(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redial"))
        .args(args)
        .output()
        .expect("the redial binary runs")
}

const SMALL: &[&str] = &[
    "sim",
    "--clients",
    "300",
    "--outage",
    "20s",
    "--cap",
    "5s",
    "--policy",
    "default,nojitter",
    "--message-every",
    "500ms",
    "--seed",
    "3",
];

#[test]
fn table_and_histogram() {
    let out = redial(SMALL);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("300 clients, refuse from 10.0s to 30.0s"),
        "{text}"
    );
    let header = text.lines().nth(1).unwrap();
    for col in [
        "policy",
        "peak/100ms",
        "det p50",
        "rec p99",
        "gaveup",
        "delivered",
        "doubt",
    ] {
        assert!(header.contains(col), "missing {col}: {header}");
    }
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (default, lockstep) = (row("default "), row("nojitter "));
    let peak = |r: &[String]| r[1].parse::<u32>().unwrap();
    assert!(peak(&default) < peak(&lockstep), "{text}");
    assert!(text.contains("default: dial attempts reaching the server per"));
    assert!(text.contains("nojitter: dial attempts reaching the server per"));
    assert!(text.contains('█'));
}

#[test]
fn json_summary_makes_sense_and_jitter_changes_the_peak() {
    let mut args = SMALL.to_vec();
    args.push("--json");
    let out = redial(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let get = |i: usize, k: &str| runs[i][k].as_f64().unwrap_or_else(|| panic!("{k}"));
    assert_eq!(runs[0]["policy"], "default");
    assert_eq!(runs[1]["policy"], "nojitter");
    for run in runs {
        assert_eq!(run["clients"], 300);
        assert_eq!(run["violations"], 0);
        assert_eq!(run["reconnection"]["count"], 300);
        assert_eq!(run["detection"]["count"], 300);
        let m = &run["messages"];
        let settled = ["delivered", "in_doubt", "abandoned", "rejected"]
            .iter()
            .map(|k| m[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(
            settled,
            m["enqueued"].as_u64().unwrap(),
            "every message accounted for"
        );
        assert!(m["delivered"].as_u64().unwrap() > 0);
    }
    let (jittered, lockstep) = (
        get(0, "peak_dials_per_bucket"),
        get(1, "peak_dials_per_bucket"),
    );
    assert!(
        lockstep >= 270.0,
        "lockstep peak {lockstep} should be about 300"
    );
    assert!(
        jittered * 4.0 < lockstep,
        "jitter spreads: {jittered} vs {lockstep}"
    );
}

#[test]
fn svg_chart_has_a_panel_per_policy() {
    let path = std::env::temp_dir().join(format!("redial-sim-test-{}.svg", std::process::id()));
    let mut args = SMALL.to_vec();
    let p = path.to_str().unwrap().to_string();
    args.extend(["--policy", "all", "--svg", &p]);
    let out = redial(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&path).expect("the chart was written");
    std::fs::remove_file(&path).ok();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    let lines = svg
        .split("<polyline")
        .skip(1)
        .filter(|rest| rest.split('>').next().unwrap().contains("#0000FF"))
        .count();
    assert_eq!(lines, 4, "one dial-rate line per policy");
    for name in ["default", "nojitter", "equal", "decorrelated"] {
        assert!(svg.contains(name), "no panel for {name}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["sim", "--clients", "lots"][..],
        &["sim", "--policy", "yolo"],
        &["sim", "--fault", "meteor"],
        &["sim", "--outage", "5 parsecs"],
        &["sim", "--initial", "1s", "--cap", "10ms"],
        &["nonsense"],
    ] {
        let out = redial(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
