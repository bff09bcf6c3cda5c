//! What a run measured, and the summary derived from it.

use core::time::Duration;

use crate::fault::FaultKind;

/// Every enqueued message, by outcome, plus what the server saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MessageCounts {
    /// Messages the workload offered to the sessions.
    pub enqueued: u64,
    /// Delivered (acknowledged by the server, or written when the protocol has no acks).
    pub delivered: u64,
    /// In doubt: written, connection lost before confirmation.
    pub in_doubt: u64,
    /// Of the in-doubt ones, how many the server did receive (the rest were lost on the
    /// wire): both being non-zero shows the doubt is real.
    pub in_doubt_received: u64,
    /// Abandoned (gave up, closed, evicted) without ever being written.
    pub abandoned: u64,
    /// Refused at enqueue.
    pub rejected: u64,
    /// Messages the server received (counting duplicates).
    pub received: u64,
    /// Idempotent messages the server received more than once (allowed: they were replayed).
    pub duplicates_idempotent: u64,
}

impl MessageCounts {
    /// Messages that reached an outcome.
    pub fn settled(&self) -> u64 {
        self.delivered + self.in_doubt + self.abandoned + self.rejected
    }
}

/// One detection or reconnection sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The session.
    pub session: u32,
    /// The fault that caused it.
    pub kind: FaultKind,
    /// The measured time.
    pub time: Duration,
}

/// Raw measurements of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Sessions simulated.
    pub clients: usize,
    /// Width of a dial-rate bucket.
    pub bucket: Duration,
    /// Dial attempts that reached the server, per bucket from time zero.
    pub server_dials: Vec<u32>,
    /// Every dial attempt (including those lost in a blackhole).
    pub dials: u64,
    /// Per session and fault: time from the fault to the session declaring its connection
    /// lost.
    pub detection: Vec<Sample>,
    /// Per session and fault: time from the heal to the next connection.
    pub reconnection: Vec<Sample>,
    /// Sessions that gave up.
    pub gave_up: u64,
    /// Sessions that were still waiting to reconnect after the last heal when the run ended
    /// (and had not given up).
    pub not_reconnected: u64,
    /// Message outcomes.
    pub messages: MessageCounts,
    /// Broken invariants (empty in a correct run); the first few are kept verbatim.
    pub violations: Vec<String>,
    /// All broken invariants, counted.
    pub violation_count: u64,
    /// When the last fault healed.
    pub last_heal: Option<Duration>,
    /// Inputs given to the cores: events, commands and timer wake-ups.
    pub core_events: u64,
    /// `Session::poll` calls.
    pub polls: u64,
    /// Virtual time simulated.
    pub duration: Duration,
    /// Dial attempts that reached each server, per bucket (one row per server; with one
    /// server, the same as `server_dials`).
    pub server_dials_by: Vec<Vec<u32>>,
    /// Per session that moved off a server that left the registry: time from its leaving to
    /// the connection to a remaining one (the sample's `kind` is unused).
    pub moves: Vec<Sample>,
    /// What the shared retry budget did, if there was one.
    pub budget: Option<redial_core::budget::BudgetStats>,
}

/// Percentiles of a set of durations.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// Largest, in milliseconds.
    pub max_ms: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (nearest rank).
    pub fn of(samples: impl IntoIterator<Item = Duration>) -> Percentiles {
        let mut v: Vec<Duration> = samples.into_iter().collect();
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_unstable();
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Percentiles {
            count: v.len(),
            p50_ms: ms(rank(0.50)),
            p99_ms: ms(rank(0.99)),
            max_ms: ms(v[v.len() - 1]),
        }
    }
}

/// The headline numbers of a run, as printed by `redial sim` (and as its `--json`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Sessions simulated.
    pub clients: usize,
    /// Bucket width in milliseconds.
    pub bucket_ms: f64,
    /// Recovery window: from the last heal to the last reconnection, in seconds since start.
    pub recovery_window_s: Option<(f64, f64)>,
    /// Most dials seen by the server in one bucket within the recovery window.
    pub peak_dials_per_bucket: u32,
    /// Mean dials per bucket over the recovery window.
    pub mean_dials_per_bucket: f64,
    /// `peak / mean` over the recovery window.
    pub peak_to_mean: f64,
    /// Most dials in one bucket over the whole run.
    pub peak_dials_overall: u32,
    /// Dial attempts in all.
    pub dials: u64,
    /// Fault-to-detection times.
    pub detection: Percentiles,
    /// Heal-to-reconnection times.
    pub reconnection: Percentiles,
    /// Sessions that gave up.
    pub gave_up: u64,
    /// Sessions never reconnected after the last heal (not counting give-ups).
    pub not_reconnected: u64,
    /// Message outcomes.
    pub messages: MessageCounts,
    /// Broken invariants.
    pub violations: u64,
}

impl Report {
    /// Bucket indices `[first, last]` from the last heal to the last reconnection after it.
    pub fn recovery_window(&self) -> Option<(usize, usize)> {
        let heal = self.last_heal?;
        let last = self
            .reconnection
            .iter()
            .map(|s| s.time)
            .max()
            .unwrap_or_default();
        let b = self.bucket.as_nanos();
        let first = (heal.as_nanos() / b) as usize;
        let end = ((heal + last).as_nanos() / b) as usize;
        let max = self.server_dials.len().checked_sub(1)?;
        Some((first.min(max), end.min(max)))
    }

    /// Peak and mean dials per bucket over the recovery window (zeros without one).
    pub fn recovery_rates(&self) -> (u32, f64) {
        match self.recovery_window() {
            Some((a, b)) => self.bucket_rates(a, b),
            None => (0, 0.0),
        }
    }

    /// Peak dials per bucket that reached server `server` over virtual time `[from, to)`.
    pub fn server_peak(&self, server: usize, from: Duration, to: Duration) -> u32 {
        let Some(row) = self.server_dials_by.get(server) else {
            return 0;
        };
        let b = self.bucket.as_nanos();
        let a = ((from.as_nanos() / b) as usize).min(row.len());
        let z = ((to.as_nanos() / b) as usize).min(row.len());
        row[a..z].iter().copied().max().unwrap_or(0)
    }

    /// Peak and mean dials per bucket over virtual time `[from, to)`.
    pub fn rates(&self, from: Duration, to: Duration) -> (u32, f64) {
        let b = self.bucket.as_nanos();
        let a = (from.as_nanos() / b) as usize;
        let z = (to.as_nanos() / b) as usize;
        if z <= a || self.server_dials.is_empty() {
            return (0, 0.0);
        }
        let max = self.server_dials.len() - 1;
        self.bucket_rates(a.min(max), (z - 1).min(max))
    }

    fn bucket_rates(&self, a: usize, b: usize) -> (u32, f64) {
        let w = &self.server_dials[a..=b];
        let peak = w.iter().copied().max().unwrap_or(0);
        let mean = w.iter().map(|&c| c as f64).sum::<f64>() / w.len() as f64;
        (peak, mean)
    }

    /// The headline numbers.
    pub fn summary(&self) -> Summary {
        let (peak, mean) = self.recovery_rates();
        let secs = |i: usize| (self.bucket * i as u32).as_secs_f64();
        Summary {
            clients: self.clients,
            bucket_ms: self.bucket.as_secs_f64() * 1e3,
            recovery_window_s: self.recovery_window().map(|(a, b)| (secs(a), secs(b + 1))),
            peak_dials_per_bucket: peak,
            mean_dials_per_bucket: mean,
            peak_to_mean: if mean > 0.0 { peak as f64 / mean } else { 0.0 },
            peak_dials_overall: self.server_dials.iter().copied().max().unwrap_or(0),
            dials: self.dials,
            detection: Percentiles::of(self.detection.iter().map(|s| s.time)),
            reconnection: Percentiles::of(self.reconnection.iter().map(|s| s.time)),
            gave_up: self.gave_up,
            not_reconnected: self.not_reconnected,
            messages: self.messages,
            violations: self.violation_count,
        }
    }
}
