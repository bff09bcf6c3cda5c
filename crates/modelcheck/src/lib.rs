//! # redial-modelcheck
//!
//! Exhaustive, bounded exploration of the **real** `redial-core` [`Session`] against small,
//! honest peer models, with [stateright]. Random testing (the property tests, the fuzz target)
//! samples input sequences; this enumerates every interleaving within the bounds, breadth
//! first, so the counterexample it reports is a shortest one.
//!
//! ```no_run
//! use redial_modelcheck::{check, Limits, Proto};
//!
//! let report = check(Proto::Redis, Limits::CI, 14, 2, None);
//! assert!(report.violations.is_empty(), "{report}");
//! ```
//!
//! ## The system
//!
//! One real session, a peer model ([`peer`]) and the network between them ([`host`]). The
//! steps ([`Act`]): a dial succeeds or fails (refused: transient; invalid address:
//! permanent); a transmit's bytes reach the peer, before or with its completion; the peer
//! answers in order, answers a NATS request by key in any order, pushes an out-of-band
//! message, pings; bytes arrive whole, one unit at a time, up to the end of a unit's first
//! line, or all but its last byte; EOF, reset, the peer restarts (EOF, unsent replies lost,
//! the next dial refused), the peer goes silent; a stale EOF of an old connection; time
//! advances to the next deadline the core asked for; the user enqueues (idempotent or not),
//! requests (NATS), subscribes, closes (at once or gracefully) or asks for a reconnect.
//! Resolution is answered at once by a healthy resolver.
//!
//! Peer models: a Redis-like peer (RESP3, `HELLO 3`, in-order replies, a reply that may be
//! lost after the request executed, RESP3 pushes) and a NATS-like peer (`INFO` first,
//! `PONG` in order, requests answered by inbox key, `MSG` for subscriptions, its own
//! `PING`s). **MQTT is not modelled**: the core has no MQTT protocol yet (see
//! `docs/PROTOCOLS.md`), so there is nothing real to check.
//!
//! [`Limits`] bounds the space: messages, faults (each may cost a reconnect; give-up after 3
//! failures bounds the rest), unforced time jumps (a jump is always possible while the
//! session is not connected or its peer is silent, so recovery is never cut short), pushes,
//! user closes, stale inputs, and which split and interleaving steps exist.
//!
//! ## The state and its fingerprint: why this is sound for what it reports
//!
//! [`Session`] is neither `Clone` nor `Hash`, and this crate may not change the core. So a
//! state ([`McState`]) *is its input history*: to expand it, the model replays the history on a
//! fresh session (the core is deterministic: invariant 6) and applies one more step. Its
//! identity, for deduplication, is a 128-bit digest of everything observable: the session's
//! views (`state`, `connection`, `reading`, `wants_read`, `queue_len`, `queue_bytes`,
//! `in_flight`, `subscriptions`, `failures`, `now`, `next_deadline`, `stats`), the time, and
//! the host's [`host::Mirror`]: the peer's state, the bytes in flight each way, the
//! outstanding dial, transmit and closes, every message's writes, executions and outcome,
//! the liveness clock and the budgets used.
//!
//! The trade-off, stated plainly:
//! - **No false alarms.** A violation is found on a concrete history, and the reported
//!   counterexample is that history replayed on the real core (and written as a trace that
//!   `redial replay` runs).
//! - **Possible missed states.** Two histories with equal digests but different *hidden*
//!   core state (a timer other than the next one, the attribution table's order, the RTT
//!   estimator) are merged, and only the first is explored further. The config removes the
//!   biggest hidden sources (no jitter, no adaptive timeout), and the mirror holds most of
//!   what the core would hide (which messages are in flight, written, executed); what is
//!   left is an under-approximation, like any bounded check. A digest collision (2^-128) is
//!   the same kind of risk.
//! - **Cost.** Replay makes expanding a state cost its depth in core steps; the rate is
//!   reported by the `deep` binary.
//!
//! ## Properties
//!
//! Checked at every state ([`Prop`]): invariants 1 (no panic: a panic of the core is caught),
//! 2 (one current connection; a stale input changes no view and causes only its own close),
//! 3 (no attempt before its backoff deadline, none after close or give-up, delays within the
//! cap), 4 (one outcome per message, no rewrite unless idempotent and within `max_replays`,
//! order), 5 (a connection not heard from for interval + timeout is gone by then, and none is
//! declared dead before); every reply credited to the request it answers and every push to
//! its subscription, checked by value unit by unit, so a heartbeat's answer taken for data (or
//! the reverse) shows; the peer's executions within [delivered, delivered + in doubt], a
//! non-idempotent message executed at most once; an honest peer never breaks the connection.
//! Liveness, with stateright's `eventually` (checked at the end of every maximal path; the
//! bounds make paths finite, and the steps that are always enabled give the fairness):
//! every message ends in exactly one outcome; a silent peer is declared dead.
//! Invariant 7 (no allocation) is not observable here; `crates/core/tests/zero_alloc.rs`
//! covers it.
//!
//! ## Not modelled (yet)
//!
//! MQTT (no such protocol in the core); inbound backpressure (the bounds are large and the
//! user takes everything at once, so reading never pauses); batches; request timeouts;
//! resolution failures and several addresses; write deadlines; jitter and the adaptive
//! heartbeat timeout (kept off so the fingerprint covers the backoff); one configuration per
//! run (see [`host::config`]). Each is a candidate for a next `Act` or `Limits` field.
//!
//! ## Running
//!
//! | what | command | budget |
//! |---|---|---|
//! | CI | `cargo test -p redial-modelcheck` | [`Limits::CI`]: both exhaustive on 2 idle cores: Redis 0.96 M states in ~25 s, NATS 2.2 M in ~55 s; each capped at 90 s |
//! | deep | `cargo run --release -p redial-modelcheck --bin deep -- redis 60 1000000000 deep` | [`Limits::DEEP`], `REDIAL_MC_SECONDS` (default 600 s per model); prints a markdown table |
//! | one history | `cargo run -p redial-modelcheck --bin trace -- redis "DialOk, Written" out.jsonl` | writes its `redial replay` trace |
//!
//! ## Counterexamples
//!
//! [`check`] reports each violation with its shortest history and writes it as a trace file
//! (format version 2 of `redial_driver::trace`), which `redial replay FILE` runs.
//!
//! [`Session`]: redial_core::Session
//! [stateright]: https://docs.rs/stateright

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod host;
pub mod model;
pub mod peer;
pub mod record;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stateright::{Checker, HasDiscoveries, Model};

pub use host::{Act, Host, Limits, Prop, Violation};
pub use model::{McState, SessionModel};
pub use peer::Proto;

/// A violation found, with its shortest history.
#[derive(Debug, Clone)]
pub struct Found {
    /// The property's name.
    pub property: &'static str,
    /// What happened, in words (from the host's checks).
    pub why: String,
    /// The shortest input history found.
    pub steps: Vec<Act>,
    /// Where its trace was written, if it was.
    pub trace: Option<PathBuf>,
    /// How long a single-threaded breadth-first search took to find it.
    pub found_in: Duration,
}

/// What a check explored and found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The protocol.
    pub proto: Proto,
    /// The depth bound.
    pub depth: usize,
    /// Distinct states explored.
    pub states: usize,
    /// The deepest state reached.
    pub max_depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Violations, one per property.
    pub violations: Vec<Found>,
}

impl Report {
    /// Distinct states per second.
    pub fn rate(&self) -> f64 {
        self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:?}: {} distinct states, depth {} (bound {}), {:.1?}, {:.0} states/s",
            self.proto,
            self.states,
            self.max_depth,
            self.depth,
            self.elapsed,
            self.rate()
        )?;
        for v in &self.violations {
            writeln!(
                f,
                "VIOLATION of {:?} at depth {} (found in {:.2?} breadth first on one thread): {}",
                v.property,
                v.steps.len(),
                v.found_in,
                v.why
            )?;
            for (i, s) in v.steps.iter().enumerate() {
                writeln!(f, "  {:>2}. {s:?}", i + 1)?;
            }
            if let Some(t) = &v.trace {
                writeln!(
                    f,
                    "  trace: {} (run it: redial replay {})",
                    t.display(),
                    t.display()
                )?;
            }
        }
        Ok(())
    }
}

/// Runs the model of `proto` within `limits` breadth first to `depth` on `threads` threads
/// (stopping early after `max_states` distinct states, if given), and reports every
/// violation with its shortest history; their traces go to `$REDIAL_MC_TRACES` (default: the
/// system's temporary directory).
pub fn check(
    proto: Proto,
    limits: Limits,
    depth: usize,
    threads: usize,
    max_states: Option<usize>,
) -> Report {
    let model = SessionModel::new(proto, limits);
    let mut builder = model
        .clone()
        .checker()
        .threads(threads)
        .target_max_depth(depth);
    if let Some(n) = max_states {
        builder = builder.target_state_count(n);
    }
    finish(model, depth, builder)
}

/// As [`check`], for long runs: stops after `time`, or once stateright has generated
/// `generated` states (duplicates included: stateright's own count), whichever comes first.
pub fn check_for(
    proto: Proto,
    limits: Limits,
    depth: usize,
    threads: usize,
    generated: usize,
    time: Duration,
) -> Report {
    let model = SessionModel::new(proto, limits);
    let builder = model
        .clone()
        .checker()
        .threads(threads)
        .target_max_depth(depth)
        .target_state_count(generated)
        .timeout(time);
    finish(model, depth, builder)
}

fn finish(
    model: SessionModel,
    depth: usize,
    builder: stateright::CheckerBuilder<SessionModel>,
) -> Report {
    quiet_checker_panics();
    let proto = model.proto;
    let start = Instant::now();
    let checker = builder.spawn_bfs().join();
    let elapsed = start.elapsed();
    let dir = std::env::var_os("REDIAL_MC_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let mut violations = Vec::new();
    let mut found: Vec<_> = checker.discoveries().into_iter().collect();
    found.sort_by_key(|(name, _)| *name);
    for (property, path) in found {
        let mut last = path.last_state().clone();
        let mut found_in = elapsed;
        // Several threads explore only roughly breadth first: search once more on one thread,
        // strictly breadth first and no deeper than this path, for a shortest one.
        let len = last.history.steps().len();
        if let Some((s, t)) = shortest(&model, property, len) {
            last = s;
            found_in = t;
        }
        let steps = last.history.steps();
        let why = last.why.as_deref().map(str::to_owned).unwrap_or_else(|| {
            format!(
                "a path ended with the obligation unmet (settled {}, silent peer still current {})",
                last.settled, last.silent_alive
            )
        });
        let name = format!(
            "redial-mc-{}-{}.jsonl",
            format!("{proto:?}").to_lowercase(),
            property
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
        );
        let trace = write_trace(&model, &steps, &dir.join(name));
        violations.push(Found {
            property,
            why,
            steps,
            trace,
            found_in,
        });
    }
    Report {
        proto,
        depth,
        states: checker.unique_state_count(),
        max_depth: checker.max_depth(),
        elapsed,
        violations,
    }
}

/// A shortest path to a violation of `property`, no longer than `max_len`, by a strictly
/// breadth-first search on one thread, and how long it took.
pub fn shortest(
    model: &SessionModel,
    property: &'static str,
    max_len: usize,
) -> Option<(McState, Duration)> {
    let start = Instant::now();
    let checker = model
        .clone()
        .checker()
        .threads(1)
        .target_max_depth(max_len + 1)
        .finish_when(HasDiscoveries::AnyOf([property].into_iter().collect()))
        .spawn_bfs()
        .join();
    let t = start.elapsed();
    let path = checker.discoveries().remove(property)?;
    Some((path.last_state().clone(), t))
}

/// Replays `steps` with recording on and writes the trace to `path`; `None` if the core
/// panicked (the trace then has nothing to end with) or the file could not be written.
pub fn write_trace(model: &SessionModel, steps: &[Act], path: &Path) -> Option<PathBuf> {
    let host = model.run(steps, true).ok()?;
    let text = host.recording()?.text();
    std::fs::write(path, text).ok()?;
    Some(path.to_owned())
}

/// The recorded trace of `steps` as text (for tests and regression snippets).
pub fn trace_text(model: &SessionModel, steps: &[Act]) -> Option<String> {
    Some(model.run(steps, true).ok()?.recording()?.text())
}

/// Panics of the core inside checker threads are caught and reported; keep them off stderr.
fn quiet_checker_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            if !name.starts_with("checker-") {
                prev(info);
            }
        }));
    });
}
