//! Session metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): whatever recorder the application installs (Prometheus, StatsD, OpenTelemetry)
//! receives them. Without the feature every hook here is an empty inline function.
//!
//! Every metric carries one label, `session`: the name given to
//! [`Builder::metrics_name`](crate::Builder::metrics_name) (default `"default"`). Sessions
//! that share a name add up: counters and histograms merge, and the gauges are kept by
//! increments, so `redial_queue_messages` is the sum of their queues and `redial_sessions`
//! counts them per state. Only `redial_rtt_seconds` is the latest value of any of them. The
//! other labels are closed sets of names (below): no label ever holds a message, an address,
//! a host name or an error text, so cardinality is bounded and nothing secret leaves.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `redial_attempts_total` | counter | `session` | dials started |
//! | `redial_attempt_failures_total` | counter | `session`, `class` | failed attempts (resolve or dial), by error class: `refused`, `connect_timeout`, `timed_out`, `unreachable`, `reset`, `aborted`, `broken_pipe`, `resolve_failed`, `no_addresses`, `addr_unavailable`, `protocol`, `invalid_address`, `permission_denied`, `unsupported`, `other` |
//! | `redial_connects_total` | counter | `session` | connections established |
//! | `redial_disconnects_total` | counter | `session`, `reason` | connections ended: `heartbeat_timeout`, `read_idle`, `write_timeout`, `eof`, `io`, `protocol`, `connect_timeout`, `reconnect_requested`, `user_close`, `gave_up`, `stale`, `peer_closed`, `other` |
//! | `redial_messages_total` | counter | `session`, `outcome` | messages settled: `delivered`, `in_doubt`, `abandoned`, `rejected` (a batch counts once) |
//! | `redial_stale_inputs_total` | counter | `session` | inputs from a connection that is no longer current, ignored |
//! | `redial_events_missed_total` | counter | `session` | lifecycle events dropped because the [`Events`](crate::Events) reader fell behind |
//! | `redial_gave_up_total` | counter | `session` | sessions that gave up reconnecting |
//! | `redial_sessions` | gauge | `session`, `state` | sessions in each state: `disconnected`, `connecting`, `connected`, `disconnecting`, `closed` (a session's contribution is removed when its task ends) |
//! | `redial_queue_messages` | gauge | `session` | messages held: queued plus in flight |
//! | `redial_queue_bytes` | gauge | `session` | payload bytes held |
//! | `redial_rtt_seconds` | gauge | `session` | the smoothed heartbeat round-trip time |
//! | `redial_detection_seconds` | histogram | `session` | how long a dead peer had been silent when it was declared dead (heartbeat or read-idle deadline) |
//! | `redial_reconnect_seconds` | histogram | `session` | from losing an established connection to the next one established |

/// The labels every metric of a session carries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Labels {
    #[cfg(feature = "metrics")]
    pub(crate) session: Option<metrics::SharedString>,
}

#[cfg(not(feature = "metrics"))]
mod off {
    use super::Labels;
    use redial_core::Notification;

    /// Without the feature: nothing is recorded and nothing is held.
    #[derive(Default)]
    pub(crate) struct Meter;

    /// Without the feature: counts nothing.
    #[derive(Clone, Default)]
    pub(crate) struct MissedEvents;

    impl Meter {
        #[inline(always)]
        pub(crate) fn new(_: &Labels) -> Self {
            Meter
        }
        #[inline(always)]
        pub(crate) fn missed_events(&self) -> MissedEvents {
            MissedEvents
        }
        #[inline(always)]
        pub(crate) fn notification(&mut self, _: &Notification, _: std::time::Duration) {}
        #[inline(always)]
        pub(crate) fn round<P: redial_core::Protocol>(&mut self, _: &redial_core::Session<P>) {}
    }

    impl MissedEvents {
        #[inline(always)]
        pub(crate) fn increment(&self) {}
    }
}

#[cfg(not(feature = "metrics"))]
pub(crate) use off::{Meter, MissedEvents};

#[cfg(feature = "metrics")]
pub(crate) use on::{Meter, MissedEvents};

/// Describes every metric above (unit and help text) to the installed recorder, for
/// exporters that print descriptions (Prometheus `# HELP`). Call it once, after installing
/// the recorder; recording works without it.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("redial_attempts_total", "Dials started.");
    describe_counter!(
        "redial_attempt_failures_total",
        "Failed attempts (resolve or dial), by error class."
    );
    describe_counter!("redial_connects_total", "Connections established.");
    describe_counter!("redial_disconnects_total", "Connections ended, by reason.");
    describe_counter!(
        "redial_messages_total",
        "Messages settled, by outcome (a batch counts once)."
    );
    describe_counter!(
        "redial_stale_inputs_total",
        "Inputs from a connection that is no longer current, ignored."
    );
    describe_counter!(
        "redial_events_missed_total",
        "Lifecycle events dropped because the events reader fell behind."
    );
    describe_counter!(
        "redial_gave_up_total",
        "Sessions that gave up reconnecting."
    );
    describe_gauge!("redial_sessions", "Sessions in each state.");
    describe_gauge!(
        "redial_queue_messages",
        "Messages held: queued plus in flight."
    );
    describe_gauge!("redial_queue_bytes", Unit::Bytes, "Payload bytes held.");
    describe_gauge!(
        "redial_rtt_seconds",
        Unit::Seconds,
        "Smoothed heartbeat round-trip time."
    );
    describe_histogram!(
        "redial_detection_seconds",
        Unit::Seconds,
        "How long a dead peer had been silent when it was declared dead."
    );
    describe_histogram!(
        "redial_reconnect_seconds",
        Unit::Seconds,
        "From losing an established connection to the next one established."
    );
}

#[cfg(feature = "metrics")]
mod on {
    use std::time::Duration;

    use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, SharedString};
    use redial_core::{DisconnectReason, NetError, Notification, Protocol, Session, State, Stats};

    use super::Labels;

    const DEFAULT_SESSION: &str = "default";

    /// A session's metric handles, registered once, and what it last contributed to the
    /// gauges (taken back when the task ends).
    pub(crate) struct Meter {
        session: SharedString,
        attempts: Counter,
        connects: Counter,
        stale: Counter,
        gave_up: Counter,
        messages: [Counter; 4],
        queue_messages: Gauge,
        queue_bytes: Gauge,
        rtt: Gauge,
        detection: Histogram,
        reconnect: Histogram,
        missed: Counter,
        /// The counters last seen, to record their increase.
        stats: Stats,
        queue: (usize, usize),
        state: Option<State>,
        /// When an established connection was lost, while the next one is not up.
        lost_at: Option<Duration>,
    }

    /// Counts events dropped from a full events queue.
    #[derive(Clone)]
    pub(crate) struct MissedEvents(Counter);

    impl MissedEvents {
        #[inline]
        pub(crate) fn increment(&self) {
            self.0.increment(1);
        }
    }

    impl Default for MissedEvents {
        fn default() -> Self {
            MissedEvents(Counter::noop())
        }
    }

    impl Meter {
        pub(crate) fn new(labels: &Labels) -> Self {
            let session = labels
                .session
                .clone()
                .unwrap_or(SharedString::const_str(DEFAULT_SESSION));
            let outcome = |o: &'static str| counter!("redial_messages_total", "session" => session.clone(), "outcome" => o);
            Meter {
                attempts: counter!("redial_attempts_total", "session" => session.clone()),
                connects: counter!("redial_connects_total", "session" => session.clone()),
                stale: counter!("redial_stale_inputs_total", "session" => session.clone()),
                gave_up: counter!("redial_gave_up_total", "session" => session.clone()),
                messages: [
                    outcome("delivered"),
                    outcome("in_doubt"),
                    outcome("abandoned"),
                    outcome("rejected"),
                ],
                queue_messages: gauge!("redial_queue_messages", "session" => session.clone()),
                queue_bytes: gauge!("redial_queue_bytes", "session" => session.clone()),
                rtt: gauge!("redial_rtt_seconds", "session" => session.clone()),
                detection: histogram!("redial_detection_seconds", "session" => session.clone()),
                reconnect: histogram!("redial_reconnect_seconds", "session" => session.clone()),
                missed: counter!("redial_events_missed_total", "session" => session.clone()),
                session,
                stats: Stats::default(),
                queue: (0, 0),
                state: None,
                lost_at: None,
            }
        }

        /// The counter the events queue increments when it drops an event.
        pub(crate) fn missed_events(&self) -> MissedEvents {
            MissedEvents(self.missed.clone())
        }

        fn sessions(&self, state: State) -> Gauge {
            gauge!("redial_sessions", "session" => self.session.clone(), "state" => state_name(state))
        }

        /// One notification of the core, at `at` since the session's origin.
        pub(crate) fn notification(&mut self, n: &Notification, at: Duration) {
            match n {
                Notification::StateChanged { to, .. } => self.enter(*to),
                Notification::AttemptFailed { error, .. } => {
                    counter!(
                        "redial_attempt_failures_total",
                        "session" => self.session.clone(),
                        "class" => class_name(*error)
                    )
                    .increment(1);
                }
                Notification::Connected { .. } => {
                    if let Some(lost) = self.lost_at.take() {
                        self.reconnect.record(at.saturating_sub(lost).as_secs_f64());
                    }
                }
                Notification::Disconnected {
                    reason, next_delay, ..
                } => {
                    counter!(
                        "redial_disconnects_total",
                        "session" => self.session.clone(),
                        "reason" => reason_name(reason)
                    )
                    .increment(1);
                    if let DisconnectReason::HeartbeatTimeout { silent_for }
                    | DisconnectReason::ReadIdle { silent_for } = reason
                    {
                        self.detection.record(silent_for.as_secs_f64());
                    }
                    // Only a connection that was up is a reconnect to time; a session that
                    // ends (no next delay) has nothing to reconnect.
                    if next_delay.is_some()
                        && !matches!(reason, DisconnectReason::ConnectTimeout)
                        && self.lost_at.is_none()
                    {
                        self.lost_at = Some(at);
                    }
                }
                Notification::Rtt { smoothed, .. } => self.rtt.set(smoothed.as_secs_f64()),
                Notification::GaveUp { .. } => self.gave_up.increment(1),
                _ => {}
            }
        }

        fn enter(&mut self, to: State) {
            if let Some(from) = self.state.replace(to) {
                self.sessions(from).decrement(1.0);
            }
            self.sessions(to).increment(1.0);
        }

        /// After a round of the core: the counters' increase and the queue's depth.
        pub(crate) fn round<P: Protocol>(&mut self, session: &Session<P>) {
            let (stats, queue_len, queue_bytes) =
                (&session.stats(), session.queue_len(), session.queue_bytes());
            if self.state.is_none() {
                // The first state is never announced as a change.
                self.enter(State::Disconnected);
            }
            let was = std::mem::replace(&mut self.stats, *stats);
            let grew = |now: u64, then: u64| now.saturating_sub(then);
            self.attempts.increment(grew(stats.attempts, was.attempts));
            self.connects.increment(grew(stats.connects, was.connects));
            self.stale
                .increment(grew(stats.stale_inputs, was.stale_inputs));
            let settled = [
                (stats.delivered, was.delivered),
                (stats.in_doubt, was.in_doubt),
                (stats.abandoned, was.abandoned),
                (stats.rejected, was.rejected),
            ];
            for (c, (now, then)) in self.messages.iter().zip(settled) {
                c.increment(grew(now, then));
            }
            let (len, bytes) = std::mem::replace(&mut self.queue, (queue_len, queue_bytes));
            adjust(&self.queue_messages, len, queue_len);
            adjust(&self.queue_bytes, bytes, queue_bytes);
        }
    }

    impl Drop for Meter {
        /// The task ended: its session no longer counts in any state or queue.
        fn drop(&mut self) {
            if let Some(s) = self.state.take() {
                self.sessions(s).decrement(1.0);
            }
            adjust(&self.queue_messages, self.queue.0, 0);
            adjust(&self.queue_bytes, self.queue.1, 0);
        }
    }

    /// Moves a summed gauge by this session's change, so sessions sharing a name add up.
    fn adjust(g: &Gauge, then: usize, now: usize) {
        if now > then {
            g.increment((now - then) as f64);
        } else if then > now {
            g.decrement((then - now) as f64);
        }
    }

    fn state_name(s: State) -> &'static str {
        match s {
            State::Disconnected => "disconnected",
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Disconnecting => "disconnecting",
            State::Closed => "closed",
        }
    }

    fn class_name(e: NetError) -> &'static str {
        match e {
            NetError::Refused => "refused",
            NetError::ConnectTimeout => "connect_timeout",
            NetError::TimedOut => "timed_out",
            NetError::Unreachable => "unreachable",
            NetError::Reset => "reset",
            NetError::Aborted => "aborted",
            NetError::BrokenPipe => "broken_pipe",
            NetError::ResolveFailed => "resolve_failed",
            NetError::NoAddresses => "no_addresses",
            NetError::AddrUnavailable => "addr_unavailable",
            NetError::Protocol => "protocol",
            NetError::InvalidAddress => "invalid_address",
            NetError::PermissionDenied => "permission_denied",
            NetError::Unsupported => "unsupported",
            _ => "other",
        }
    }

    fn reason_name(r: &DisconnectReason) -> &'static str {
        match r {
            DisconnectReason::HeartbeatTimeout { .. } => "heartbeat_timeout",
            DisconnectReason::ReadIdle { .. } => "read_idle",
            DisconnectReason::WriteTimeout(_) => "write_timeout",
            DisconnectReason::Eof => "eof",
            DisconnectReason::Io(_) => "io",
            DisconnectReason::Protocol(_) => "protocol",
            DisconnectReason::ConnectTimeout => "connect_timeout",
            DisconnectReason::ReconnectRequested => "reconnect_requested",
            DisconnectReason::UserClose => "user_close",
            DisconnectReason::GaveUp => "gave_up",
            DisconnectReason::Stale => "stale",
            DisconnectReason::PeerClosed { .. } => "peer_closed",
            _ => "other",
        }
    }
}
