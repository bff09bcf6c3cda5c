//! The session's deadlines: one table of named timers; the next deadline is the minimum.
//!
//! Every deadline is an absolute instant, so a timer that fires early, late or twice is
//! harmless: the session compares `now` with the table on every poll.

use crate::time::Instant;

/// A named deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Timer {
    /// Waiting out a backoff delay: the next attempt starts.
    Retry,
    /// The attempt (resolve, dial and handshake) must be done by then.
    Connect,
    /// An old socket (or our goodbye) has this long to close.
    Close,
    /// A graceful close stops draining.
    Drain,
    /// The heartbeat PING is due.
    Ping,
    /// The connection is dead if nothing was read by then.
    Liveness,
    /// The write in progress must have completed.
    Write,
    /// The oldest outstanding request has timed out.
    Request,
    /// A move off the endpoint stops draining ([`crate::Session::move_off`]).
    Move,
}

const COUNT: usize = 9;
const NEVER: u64 = u64::MAX;

/// Deadlines in nanoseconds, [`NEVER`] when unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timers([u64; COUNT]);

impl Default for Timers {
    fn default() -> Self {
        Timers([NEVER; COUNT])
    }
}

impl Timers {
    #[inline]
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = at.as_nanos();
    }

    /// Sets or clears.
    #[inline]
    pub(crate) fn put(&mut self, t: Timer, at: Option<Instant>) {
        self.0[t as usize] = at.map_or(NEVER, Instant::as_nanos);
    }

    #[inline]
    pub(crate) fn clear(&mut self, t: Timer) {
        self.0[t as usize] = NEVER;
    }

    #[inline]
    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        let at = self.0[t as usize];
        (at != NEVER).then_some(Instant::from_nanos(at))
    }

    /// Whether `t` is set and due at `now`.
    #[inline]
    pub(crate) fn due(&self, t: Timer, now: Instant) -> bool {
        let at = self.0[t as usize];
        at != NEVER && now.as_nanos() >= at
    }

    /// The earliest deadline.
    #[inline]
    pub(crate) fn next(&self) -> Option<Instant> {
        let at = self.0.iter().copied().fold(NEVER, u64::min);
        (at != NEVER).then_some(Instant::from_nanos(at))
    }

    /// Clears the connection's timers (ping, liveness, write, request), for a connection that
    /// ended.
    pub(crate) fn clear_connection(&mut self) {
        for t in [
            Timer::Ping,
            Timer::Liveness,
            Timer::Write,
            Timer::Request,
            Timer::Move,
        ] {
            self.clear(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_deadline_is_the_minimum() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Liveness, Instant::from_millis(30));
        t.set(Timer::Ping, Instant::from_millis(10));
        assert_eq!(t.next(), Some(Instant::from_millis(10)));
        assert!(t.due(Timer::Ping, Instant::from_millis(10)));
        assert!(!t.due(Timer::Liveness, Instant::from_millis(10)));
        t.clear(Timer::Ping);
        assert_eq!(t.next(), Some(Instant::from_millis(30)));
        t.clear_connection();
        assert_eq!(t.next(), None);
    }
}
