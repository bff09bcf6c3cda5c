//! Following a watched endpoint set ([`crate::Discover::watch`]): when the endpoint the
//! session is connected to leaves the set, the session moves, at a jittered instant within
//! [`Departure::spread`], draining what is in flight for up to [`Departure::drain`]
//! ([`redial_core::Session::move_off`]); the next resolution gives the remaining endpoints.

use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::StreamExt;
use redial_core::spread::Departure;
use redial_core::{Instant, SplitMix64};

use crate::target::{Endpoint, Target};

/// The watch of one session, and the move it has scheduled.
pub(crate) struct Follow {
    stream: Option<BoxStream<'static, Vec<Endpoint>>>,
    /// The latest set pushed.
    known: Option<Vec<Endpoint>>,
    /// The endpoint of the current connection.
    current: Option<Endpoint>,
    pub(crate) departure: Departure,
    rng: SplitMix64,
    move_at: Option<Instant>,
}

impl Follow {
    pub(crate) fn new(target: &Target, departure: Departure, seed: u64) -> Self {
        let stream = match target {
            Target::Discover(d) => d.watch(),
            _ => None,
        };
        Follow {
            stream,
            known: None,
            current: None,
            departure,
            rng: SplitMix64::new(seed),
            move_at: None,
        }
    }

    /// The move's instant, for the task's one timer.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.move_at
    }

    /// The session connected to `endpoint`.
    pub(crate) fn connected(&mut self, endpoint: Option<Endpoint>, now: Instant) {
        self.current = endpoint;
        self.move_at = None;
        // Connected to an endpoint that has already left (a resolution older than the last
        // push): move off it too.
        self.check(now);
    }

    /// The connection ended.
    pub(crate) fn disconnected(&mut self) {
        self.current = None;
        self.move_at = None;
    }

    /// Takes every pushed set; returns whether anything changed.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let Some(stream) = &mut self.stream else {
            return false;
        };
        let mut changed = false;
        loop {
            match stream.poll_next_unpin(cx) {
                Poll::Ready(Some(set)) => {
                    tracing::debug!(endpoints = set.len(), "endpoint set pushed");
                    self.known = Some(set);
                    changed = true;
                }
                Poll::Ready(None) => {
                    // The registry's watch ended: keep the last set, poll on every attempt.
                    tracing::warn!("endpoint watch ended: keeping the last known set");
                    self.stream = None;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if changed {
            self.check(now);
        }
        changed
    }

    /// Whether the scheduled move is due at `now` (it is then taken).
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if self.move_at.is_some_and(|t| now >= t) {
            self.move_at = None;
            return true;
        }
        false
    }

    fn check(&mut self, now: Instant) {
        let (Some(current), Some(known)) = (&self.current, &self.known) else {
            return;
        };
        let gone = !known.contains(current);
        match (gone, self.move_at) {
            (true, None) => {
                let at = self.departure.at(now, &mut self.rng);
                tracing::info!(
                    endpoint = %current,
                    in_ms = at.saturating_duration_since(now).as_millis() as u64,
                    "endpoint left the service: moving"
                );
                self.move_at = Some(at);
            }
            (false, Some(_)) => {
                tracing::info!(endpoint = %current, "endpoint is back: staying");
                self.move_at = None;
            }
            _ => {}
        }
    }
}
