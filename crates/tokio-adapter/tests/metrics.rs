//! The `metrics` feature, seen by a test recorder: a session through refusals, a queue held
//! while the server is down, a frozen server found by the heartbeat, a kill, and its end.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use redial_testkit::servers::LineServer;
use redial_tokio::{Backoff, CloseMode, Config, Delivery, GiveUp, Heartbeat, State};

const SESSION: &str = "metrics-test";
const LONG: Duration = Duration::from_secs(10);

/// What the recorder held, by name and sorted labels. A snapshot of the debugging recorder
/// swaps counters and gauges to zero and drains histograms, so values are summed here across
/// snapshots (the driver keeps its summed gauges by increments), and histograms keep every
/// sample; the one gauge that is set, the RTT, keeps its latest value.
#[derive(Default)]
struct Seen {
    values: BTreeMap<Series, f64>,
    samples: BTreeMap<Series, Vec<f64>>,
}

/// A metric's name and its sorted labels.
type Series = (String, Vec<(String, String)>);

fn snapshotter() -> &'static Snapshotter {
    static S: OnceLock<Snapshotter> = OnceLock::new();
    S.get_or_init(|| {
        let r = DebuggingRecorder::new();
        let s = r.snapshotter();
        r.install().expect("the only recorder of this test binary");
        s
    })
}

fn seen() -> &'static Mutex<Seen> {
    static S: OnceLock<Mutex<Seen>> = OnceLock::new();
    S.get_or_init(Mutex::default)
}

fn refresh() {
    let mut seen = seen().lock().unwrap();
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let (_, key) = key.into_parts();
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let id = (key.name().to_owned(), labels);
        match value {
            DebugValue::Counter(c) => *seen.values.entry(id).or_default() += c as f64,
            DebugValue::Gauge(g) if id.0 == "redial_rtt_seconds" => {
                if g.into_inner() != 0.0 {
                    seen.values.insert(id, g.into_inner());
                }
            }
            DebugValue::Gauge(g) => *seen.values.entry(id).or_default() += g.into_inner(),
            DebugValue::Histogram(h) => seen
                .samples
                .entry(id)
                .or_default()
                .extend(h.into_iter().map(|v| v.into_inner())),
        }
    }
}

/// The value of `name` for this test's session with the extra label `extra`, 0 if absent.
fn value(name: &str, extra: Option<(&str, &str)>) -> f64 {
    refresh();
    let mut labels = vec![("session".to_owned(), SESSION.to_owned())];
    labels.extend(extra.map(|(k, v)| (k.to_owned(), v.to_owned())));
    labels.sort();
    let seen = seen().lock().unwrap();
    seen.values
        .get(&(name.to_owned(), labels))
        .copied()
        .unwrap_or(0.0)
}

fn samples(name: &str) -> Vec<f64> {
    refresh();
    let id = (
        name.to_owned(),
        vec![("session".to_owned(), SESSION.to_owned())],
    );
    let seen = seen().lock().unwrap();
    seen.samples.get(&id).cloned().unwrap_or_default()
}

/// Polls `cond` until it holds, for at most `LONG`.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !cond() {
        if Instant::now() > deadline {
            let seen = seen().lock().unwrap();
            panic!(
                "timed out waiting for: {what}; seen {:?} {:?}",
                seen.values, seen.samples
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn config() -> Config {
    Config::default()
        .with_backoff(
            Backoff::new()
                .with_initial(Duration::from_millis(20))
                .with_cap(Duration::from_millis(100)),
        )
        .with_give_up(GiveUp::NEVER)
        .with_connect_timeout(Duration::from_millis(500))
        .with_heartbeat(Some(Heartbeat {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(300),
            adaptive_floor: None,
        }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_session_through_faults() {
    snapshotter();
    let server = LineServer::start();
    let addr = server.addr();
    server.stop();

    // One event slot and nobody reading events: events are missed, and counted.
    let (handle, _inbound, _events) = redial_tokio::builder(addr)
        .config(config())
        .metrics_name(SESSION)
        .event_capacity(1)
        .spawn()
        .expect("valid config");

    // Down: attempts are refused, and a message waits in the queue.
    let h = handle.clone();
    let queued =
        tokio::spawn(async move { h.send(b"queued".to_vec(), Delivery::AtMostOnce).await });
    eventually("refused attempts and a held message", || {
        value("redial_attempt_failures_total", Some(("class", "refused"))) >= 2.0
            && value("redial_queue_messages", None) == 1.0
            && value("redial_queue_bytes", None) == 6.0
    })
    .await;
    assert!(value("redial_attempts_total", None) >= 2.0);
    assert_eq!(value("redial_connects_total", None), 0.0);

    // Up: the message is delivered, the queue empties, the session counts as connected.
    server.start_again();
    queued.await.expect("task").expect("delivered");
    eventually("connected, delivered, queue empty", || {
        value("redial_connects_total", None) == 1.0
            && value("redial_messages_total", Some(("outcome", "delivered"))) == 1.0
            && value("redial_queue_messages", None) == 0.0
            && value("redial_queue_bytes", None) == 0.0
            && value("redial_sessions", Some(("state", "connected"))) == 1.0
            && value("redial_sessions", Some(("state", "disconnected"))) == 0.0
    })
    .await;
    eventually("an RTT from the answered heartbeats", || {
        value("redial_rtt_seconds", None) > 0.0
    })
    .await;
    assert!(value("redial_rtt_seconds", None) < 1.0);

    // A message the line codec cannot frame is rejected, and counted so.
    handle
        .send(b"a\nb".to_vec(), Delivery::AtMostOnce)
        .await
        .expect_err("unencodable");
    eventually("a rejected message", || {
        value("redial_messages_total", Some(("outcome", "rejected"))) == 1.0
    })
    .await;

    // Frozen: the heartbeat declares it dead after interval + timeout of silence, and the
    // reconnect after the thaw is timed.
    server.set_silent(true);
    eventually("a heartbeat timeout", || {
        value(
            "redial_disconnects_total",
            Some(("reason", "heartbeat_timeout")),
        ) == 1.0
    })
    .await;
    let detection = samples("redial_detection_seconds");
    assert_eq!(detection.len(), 1, "{detection:?}");
    assert!(
        (0.45..3.0).contains(&detection[0]),
        "silent for interval + timeout (0.5 s) when declared dead: {detection:?}"
    );
    server.set_silent(false);
    eventually("reconnected", || {
        value("redial_connects_total", None) == 2.0
    })
    .await;
    eventually("the reconnect timed", || {
        samples("redial_reconnect_seconds").len() == 1
    })
    .await;
    let reconnect = samples("redial_reconnect_seconds")[0];
    assert!((0.0..3.0).contains(&reconnect), "{reconnect}");

    // Killed: the peer's EOF is its own reason.
    server.kill_all();
    eventually("a disconnect by EOF", || {
        value("redial_disconnects_total", Some(("reason", "eof"))) >= 1.0
    })
    .await;
    eventually("reconnected after the kill", || {
        value("redial_connects_total", None) == 3.0
    })
    .await;
    assert!(value("redial_events_missed_total", None) > 0.0);

    // Bounded labels only: no address, no payload, no error text.
    refresh();
    {
        let seen = seen().lock().unwrap();
        let keys = seen.values.keys().chain(seen.samples.keys());
        for (name, labels) in keys.filter(|(n, _)| n.starts_with("redial_")) {
            for (k, v) in labels {
                assert!(
                    ["session", "class", "reason", "outcome", "state"].contains(&k.as_str()),
                    "{name}: unexpected label {k}"
                );
                assert!(
                    !v.contains(&addr.port().to_string()) && !v.contains("queued"),
                    "{name}: {k}={v} leaks"
                );
            }
        }
    }

    // Closed and gone: the session no longer counts in any state.
    handle.close(CloseMode::Immediate).await;
    assert_eq!(handle.state(), State::Closed);
    drop(handle);
    eventually("no session left in any state", || {
        [
            "disconnected",
            "connecting",
            "connected",
            "disconnecting",
            "closed",
        ]
        .iter()
        .all(|s| value("redial_sessions", Some(("state", s))) == 0.0)
    })
    .await;
}
