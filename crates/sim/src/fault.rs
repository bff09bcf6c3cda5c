//! Faults and the schedule that injects them.

use core::fmt;
use core::time::Duration;

use crate::rng::SimRng;

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// The server is down: established connections get EOF at the start, dials are refused
    /// until the end.
    Refuse,
    /// A partition that also drops middlebox state: dials hang until their connect timeout,
    /// and every connection alive during it goes silent for good (no PONG, no bytes, no
    /// errors; whatever is written is lost on the wire). Only the heartbeat can notice.
    Blackhole,
    /// Every established connection is reset at the start (an instant fault).
    Reset,
    /// The server crash-loops: established connections get EOF at the start, and until the
    /// end dials succeed but each connection dies (EOF) after [`crate::Network::flap_life`].
    Flap,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Refuse,
        FaultKind::Blackhole,
        FaultKind::Reset,
        FaultKind::Flap,
    ];

    /// Parses `refuse`, `blackhole`, `reset` or `flap`.
    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Refuse => "refuse",
            FaultKind::Blackhole => "blackhole",
            FaultKind::Reset => "reset",
            FaultKind::Flap => "flap",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fault, active from `start` until `end` (virtual time since the run began). A
/// [`FaultKind::Reset`] is instantaneous: its `end` equals its `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// When it starts.
    pub start: Duration,
    /// When it heals.
    pub end: Duration,
}

impl Fault {
    /// A fault of `kind` from `start` lasting `length` (ignored for resets).
    pub fn new(kind: FaultKind, start: Duration, length: Duration) -> Fault {
        let end = if kind == FaultKind::Reset {
            start
        } else {
            start + length
        };
        Fault { kind, start, end }
    }
}

/// The faults of a run, in start order.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultSchedule {
    faults: Vec<Fault>,
}

impl FaultSchedule {
    /// No faults.
    pub fn none() -> Self {
        FaultSchedule::default()
    }

    /// A schedule from a list (sorted by start here).
    pub fn new(mut faults: Vec<Fault>) -> Self {
        faults.sort_by_key(|f| (f.start, f.end));
        FaultSchedule { faults }
    }

    /// One fault.
    pub fn single(kind: FaultKind, start: Duration, length: Duration) -> Self {
        FaultSchedule::new(vec![Fault::new(kind, start, length)])
    }

    /// Up to `max_faults` random, non-overlapping faults inside `[warmup, horizon]`, each
    /// followed by a quiet gap of at least `min_gap` so its effects can be measured on their own.
    pub fn random(
        rng: &mut SimRng,
        warmup: Duration,
        horizon: Duration,
        max_faults: usize,
        max_length: Duration,
        min_gap: Duration,
    ) -> Self {
        let mut faults = Vec::new();
        let mut t = warmup;
        let count = rng.upto(max_faults as u64) as usize;
        for _ in 0..count {
            let kind = FaultKind::ALL[rng.upto(3) as usize];
            let start = t + rng.duration_upto(min_gap);
            let length = rng.duration_between(Duration::from_millis(50), max_length);
            let fault = Fault::new(kind, start, length);
            if fault.end + min_gap > horizon {
                break;
            }
            t = fault.end + min_gap;
            faults.push(fault);
        }
        FaultSchedule { faults }
    }

    /// The faults, in start order.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// When the last fault heals (`None` without faults).
    pub fn last_heal(&self) -> Option<Duration> {
        self.faults.iter().map(|f| f.end).max()
    }
}
