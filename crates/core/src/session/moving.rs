//! Leaving an endpoint on purpose, and attempts a shared retry budget refused.
//!
//! - [`Session::move_off`]: the endpoint left the service. Nothing new is written to it; what
//!   is in flight drains until confirmed or the bound passes; then the connection ends as a
//!   reconnect on purpose (no failure counted, no delay): unconfirmed messages get the usual
//!   outcomes (replayed if idempotent, else in doubt) and queued ones go to the next
//!   connection, which the host's next resolution points at a remaining endpoint.
//! - [`Session::defer_attempt`]: the host's [`crate::budget::RetryBudget`] refused this
//!   retry. No dial; the session waits another backoff delay, at least the budget's advice
//!   and at least about twice its last wait (capped), and no failure is counted, so a
//!   throttled session does not give up sooner.

use core::time::Duration;

use rand_core::RngCore;

use super::{Phase, Session};
use crate::epoch::Epoch;
use crate::error::DisconnectReason;
use crate::proto::Protocol;
use crate::rng::uniform;
use crate::time::{duration_nanos, Instant};
use crate::timers::Timer;

impl<P: Protocol, R: RngCore> Session<P, R> {
    /// Leaves the current endpoint gracefully: stop writing new messages to it, drain what is
    /// in flight for up to `drain`, then reconnect at once. Returns whether a move started
    /// (`false` when not connected, already moving, or closing).
    pub fn move_off(&mut self, now: Instant, drain: Duration) -> bool {
        let now = self.tick(now);
        if !matches!(self.phase, Phase::Connected { .. })
            || self.draining
            || self.conn.moving.is_some()
        {
            return false;
        }
        let by = now + drain;
        self.conn.moving = Some(by);
        self.timers.set(Timer::Move, by);
        self.stats.moves += 1;
        self.sync_state();
        true
    }

    /// Whether the connection is leaving its endpoint ([`Session::move_off`]).
    pub fn moving(&self) -> bool {
        self.conn.moving.is_some() && matches!(self.phase, Phase::Connected { .. })
    }

    /// The host's retry budget refused the attempt `epoch` (just asked for with
    /// [`crate::Action::Resolve`]): nothing is resolved or dialed, and the next attempt waits
    /// another backoff delay, at least `retry_in`, and between one and two times the last
    /// wait (capped), so refusals in a row back off too. No failure is counted. Returns whether it
    /// applied (`false` for an epoch that is not resolving).
    pub fn defer_attempt(&mut self, now: Instant, epoch: Epoch, retry_in: Duration) -> bool {
        let now = self.tick(now);
        if self.phase != (Phase::Resolving { epoch }) {
            return false;
        }
        self.attempt = self.attempt.saturating_sub(1);
        self.stats.deferred += 1;
        // The failure count stays, so the schedule alone would not grow: each refusal in a row
        // doubles the last wait instead (equal jitter, capped), so a fleet the budget holds
        // back does not come back to ask at the same rate.
        let prev = self.last_delay;
        let scheduled = self.next_delay();
        let cap = duration_nanos(self.cfg.backoff.cap);
        let grown = duration_nanos(prev).saturating_mul(2).min(cap);
        let grown = Duration::from_nanos(uniform(&mut self.rng, grown / 2, grown));
        let delay = scheduled.max(grown).max(retry_in);
        self.last_delay = delay.min(self.cfg.backoff.cap);
        self.timers.clear(Timer::Connect);
        self.timers.set(Timer::Retry, now + delay);
        self.phase = Phase::Backoff;
        self.sync_state();
        true
    }

    /// A move in progress ends once nothing is in flight and no write is half done, or at its
    /// bound. Returns whether the connection ended.
    pub(super) fn step_moving(&mut self) -> bool {
        let Some(by) = self.conn.moving else {
            return false;
        };
        let drained = self.ledger.in_flight() == 0 && !self.conn.writing;
        if drained || self.now >= by {
            self.timers.clear(Timer::Move);
            self.lose(DisconnectReason::Moved);
            return true;
        }
        false
    }
}
