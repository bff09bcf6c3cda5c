//! Attempts, connecting, losing a connection, giving up and closing.

use crate::addr::Addr;
use core::time::Duration;

use rand_core::RngCore;

use super::{Conn, Goodbye, Phase, Session};
use crate::epoch::Epoch;
use crate::error::{AbandonReason, DisconnectReason, NetError};
use crate::input::{Handled, Input};
use crate::output::{Action, Notification};
use crate::proto::{AfterClose, Open, Protocol};
use crate::timers::Timer;

impl<P: Protocol, R: RngCore> Session<P, R> {
    pub(super) fn on_input(&mut self, input: Input<'_>) -> Handled {
        let epoch = input.epoch();
        match (self.phase, input) {
            (Phase::Resolving { epoch: e }, Input::Resolved { addrs, .. }) if e == epoch => {
                if addrs.is_empty() {
                    self.attempt_failed(epoch, None, NetError::NoAddresses);
                } else {
                    let addr = addrs[self.rotation % addrs.len()];
                    self.rotation = self.rotation.wrapping_add(1);
                    self.start_dial(epoch, addr);
                }
            }
            (Phase::Resolving { epoch: e }, Input::ResolveFailed { error, .. }) if e == epoch => {
                self.attempt_failed(epoch, None, error);
            }
            (Phase::Dialing { epoch: e, addr }, Input::DialOk { .. }) if e == epoch => {
                self.transport_up(epoch, addr);
            }
            (Phase::Dialing { epoch: e, addr }, Input::DialFailed { error, .. }) if e == epoch => {
                self.attempt_failed(epoch, Some(addr), error);
            }
            (Phase::Handshaking { epoch: e, addr }, i) if e == epoch => match i {
                Input::Written { .. } => self.on_written(),
                Input::Eof { .. } => self.handshake_failed(addr, NetError::Reset),
                Input::IoError { error, .. } => self.handshake_failed(addr, error),
                Input::Closed { .. } => self.handshake_failed(addr, NetError::Aborted),
                _ => return Handled::Stale,
            },
            (Phase::Connected { epoch: e, .. }, i) if e == epoch => match i {
                Input::Written { .. } => self.on_written(),
                Input::Eof { .. } => self.peer_gone(DisconnectReason::Eof),
                Input::IoError { error, .. } => self.peer_gone(DisconnectReason::Io(error)),
                Input::Closed { .. } => self.lose(DisconnectReason::Io(NetError::Aborted)),
                _ => return Handled::Stale,
            },
            (Phase::Closing { epoch: e, retry_at }, Input::Closed { .. }) if e == epoch => {
                self.closed_old(retry_at);
            }
            // An aborted dial or an already-forgotten socket finished closing.
            (_, Input::Closed { .. }) => {}
            (_, Input::DialOk { .. }) => {
                // A dial we stopped waiting for succeeded after all: only its close is allowed.
                self.push(Action::Close {
                    epoch,
                    reason: DisconnectReason::Stale,
                });
                return Handled::Stale;
            }
            _ => return Handled::Stale,
        }
        Handled::Applied
    }

    /// One transition driven by time or by queued work. Returns whether anything happened.
    pub(super) fn step(&mut self) -> bool {
        let now = self.now;
        if self.draining && self.phase != Phase::Closed {
            if self.timers.due(Timer::Drain, now) {
                self.finish(AbandonReason::DrainTimeout, DisconnectReason::UserClose);
                return true;
            }
            if self.drained() {
                self.finish(AbandonReason::Closed, DisconnectReason::UserClose);
                return true;
            }
        }
        match self.phase {
            Phase::Closed => false,
            Phase::Backoff => {
                if !self.timers.due(Timer::Retry, now) {
                    return false;
                }
                self.timers.clear(Timer::Retry);
                self.last_epoch = self.last_epoch.next();
                self.attempt = self.attempt.saturating_add(1);
                self.phase = Phase::Resolving {
                    epoch: self.last_epoch,
                };
                self.timers
                    .set(Timer::Connect, now + self.cfg.connect_timeout);
                self.push(Action::Resolve {
                    epoch: self.last_epoch,
                });
                true
            }
            Phase::Resolving { epoch } => {
                if !self.timers.due(Timer::Connect, now) {
                    return false;
                }
                self.push(Action::Close {
                    epoch,
                    reason: DisconnectReason::ConnectTimeout,
                });
                self.attempt_failed(epoch, None, NetError::TimedOut);
                true
            }
            Phase::Dialing { epoch, addr } | Phase::Handshaking { epoch, addr } => {
                if self.timers.due(Timer::Connect, now) {
                    self.push(Action::Close {
                        epoch,
                        reason: DisconnectReason::ConnectTimeout,
                    });
                    self.attempt_failed(epoch, Some(addr), NetError::ConnectTimeout);
                    return true;
                }
                // The handshake writes its opening (and answers the peer meanwhile).
                matches!(self.phase, Phase::Handshaking { .. }) && self.transmit_if_owed(epoch)
            }
            Phase::Closing { retry_at, .. } => {
                if !self.timers.due(Timer::Close, now) {
                    return false;
                }
                self.closed_old(retry_at);
                true
            }
            Phase::Connected { epoch, .. } => self.step_connected(epoch),
        }
    }

    /// The old socket is closed (or its close timer passed): the backoff wait begins.
    fn closed_old(&mut self, retry_at: crate::time::Instant) {
        self.timers.clear(Timer::Close);
        self.timers.set(Timer::Retry, retry_at);
        self.phase = Phase::Backoff;
    }

    /// A graceful close has nothing left to do (our goodbye, if the protocol has one, was
    /// answered or is not needed).
    fn drained(&mut self) -> bool {
        if self.ledger.len() > 0 {
            return false;
        }
        match self.phase {
            Phase::Connected { .. } => {
                if self.conn.writing {
                    return false;
                }
                match self.conn.goodbye {
                    Goodbye::No => {
                        self.conn.goodbye = Goodbye::Owed;
                        false
                    }
                    Goodbye::Owed => false,
                    Goodbye::Sent => self.timers.due(Timer::Close, self.now),
                    Goodbye::None => true,
                }
            }
            _ => true,
        }
    }

    fn start_dial(&mut self, epoch: Epoch, addr: Addr) {
        self.stats.attempts += 1;
        let deadline = self.now + self.cfg.connect_timeout;
        self.phase = Phase::Dialing { epoch, addr };
        self.timers.set(Timer::Connect, deadline);
        self.push(Action::Dial {
            epoch,
            addr,
            deadline,
        });
        let attempt = self.attempt;
        self.notify(Notification::AttemptStarted {
            epoch,
            attempt,
            addr,
        });
    }

    /// The transport is up: the protocol opens the connection.
    fn transport_up(&mut self, epoch: Epoch, addr: Addr) {
        let open = Open {
            nonce: self.rng.next_u64(),
            unconfirmed: self.ledger.in_flight() > 0,
        };
        self.conn = Conn::new(self.now);
        match self.proto.open(open) {
            Ok(true) => self.phase = Phase::Handshaking { epoch, addr },
            Ok(false) => self.connected(epoch, addr, false, None),
            Err(_) => {
                // The protocol cannot even open: a configuration error, retrying cannot help.
                self.push(Action::Close {
                    epoch,
                    reason: DisconnectReason::Io(NetError::Unsupported),
                });
                self.attempt_failed(epoch, Some(addr), NetError::Unsupported);
            }
        }
    }

    /// The handshake accepted the connection (or there was none).
    pub(super) fn connected(
        &mut self,
        epoch: Epoch,
        addr: Addr,
        resumed: bool,
        keepalive: Option<Duration>,
    ) {
        self.stats.connects += 1;
        if self.ever_connected {
            self.stats.reconnects += 1;
        }
        self.ever_connected = true;
        self.timers.clear(Timer::Connect);
        self.phase = Phase::Connected { epoch, addr };
        self.conn.keepalive = keepalive;
        self.conn.last_read = self.now;
        if self.proto.resumable() {
            if resumed {
                self.ledger.resume();
            } else {
                let max = self.cfg.max_replays;
                let replayed = self.with_ledger(|l, settle| l.unconfirmed_lost(max, settle));
                self.stats.replayed += replayed as u64;
            }
        }
        if !(resumed && self.proto.resumable()) {
            let mut ended = alloc::vec::Vec::new();
            self.subs.new_connection(&mut ended);
            for id in ended {
                self.notify(Notification::Unsubscribed { id, refused: false });
            }
        }
        self.refresh_liveness();
        let attempt = core::mem::take(&mut self.attempt);
        self.notify(Notification::Connected {
            epoch,
            addr,
            attempt,
        });
    }

    /// The handshake ended without a connection: the attempt fails, its socket closes.
    pub(super) fn handshake_failed(&mut self, addr: Addr, error: NetError) {
        let Phase::Handshaking { epoch, .. } = self.phase else {
            return;
        };
        self.push(Action::Close {
            epoch,
            reason: DisconnectReason::Io(error),
        });
        self.attempt_failed(epoch, Some(addr), error);
    }

    /// Counts a failure; says whether the session must now give up.
    fn count_failure(&mut self, error: NetError) -> bool {
        self.failures = self.failures.saturating_add(1);
        self.stats.failures += 1;
        self.last_error = error;
        let start = *self.streak_start.get_or_insert(self.now);
        !error.is_retryable() || self.cfg.give_up.reached(self.failures, self.now - start)
    }

    pub(super) fn next_delay(&mut self) -> Duration {
        let d = self
            .cfg
            .backoff
            .delay(self.failures.max(1), self.last_delay, &mut self.rng);
        self.last_delay = d;
        // A delay the peer asked for holds for the next attempt only; it may exceed the cap
        // (the peer knows when it will be back), never the give-up budget's meaning.
        match self.retry_floor.take() {
            Some(floor) => d.max(floor),
            None => d,
        }
    }

    pub(super) fn attempt_failed(&mut self, epoch: Epoch, addr: Option<Addr>, error: NetError) {
        let give_up = self.count_failure(error);
        let next_delay = (!give_up).then(|| self.next_delay());
        let attempt = self.attempt;
        self.notify(Notification::AttemptFailed {
            epoch,
            attempt,
            addr,
            error,
            next_delay,
        });
        match next_delay {
            None => self.give_up(),
            Some(d) => {
                self.phase = Phase::Backoff;
                self.timers.clear(Timer::Connect);
                self.timers.set(Timer::Retry, self.now + d);
            }
        }
    }

    /// EOF or an error: the peer is gone. While our goodbye awaits its answer, that *is* the
    /// answer.
    fn peer_gone(&mut self, reason: DisconnectReason) {
        if self.conn.farewell.is_some() {
            // The peer did not wait for our farewell: the conversation ends as it would have.
            self.farewell_done();
        } else if self.conn.goodbye == Goodbye::Sent {
            self.finish(AbandonReason::Closed, DisconnectReason::UserClose);
        } else {
            self.lose(reason);
        }
    }

    /// The peer closed the conversation in its protocol.
    pub(super) fn peer_closed(&mut self, code: u16, then: AfterClose) {
        let reason = DisconnectReason::PeerClosed { code };
        if self.conn.goodbye == Goodbye::Sent {
            self.finish(AbandonReason::Closed, DisconnectReason::UserClose);
            return;
        }
        match then {
            AfterClose::Reconnect => self.lose(reason),
            AfterClose::ReconnectAfter(d) => {
                self.retry_floor = Some(d);
                self.lose(reason);
            }
            AfterClose::GiveUp(error) => {
                self.lose_for_good(reason, error);
            }
            AfterClose::Done => self.finish(AbandonReason::Closed, reason),
        }
    }

    /// The current connection ended for a reason retrying cannot cure.
    fn lose_for_good(&mut self, reason: DisconnectReason, error: NetError) {
        let Phase::Connected { epoch, .. } = self.phase else {
            return;
        };
        self.end_connection(epoch, reason);
        self.count_failure(error);
        let uptime = self.now - self.conn.since;
        self.notify(Notification::Disconnected {
            epoch,
            reason,
            uptime,
            next_delay: None,
        });
        self.give_up();
    }

    /// Closes the current connection's socket and settles what it carried.
    fn end_connection(&mut self, epoch: Epoch, reason: DisconnectReason) {
        self.push(Action::Close { epoch, reason });
        self.table.clear().for_each(drop);
        self.timers.clear_connection();
        let resumable = self.proto.resumable();
        let max_replays = self.cfg.max_replays;
        let replayed =
            self.with_ledger(|l, settle| l.connection_lost(resumable, max_replays, settle));
        self.stats.replayed += replayed as u64;
    }

    /// The current connection is lost (or dropped on purpose).
    pub(super) fn lose(&mut self, reason: DisconnectReason) {
        let Phase::Connected { epoch, .. } = self.phase else {
            return;
        };
        let now = self.now;
        self.end_connection(epoch, reason);
        let uptime = now - self.conn.since;
        let on_purpose = matches!(
            reason,
            DisconnectReason::ReconnectRequested | DisconnectReason::Moved
        );
        if uptime >= self.cfg.stable_after {
            // Flap damping: only a connection that stayed up resets the streak.
            self.failures = 0;
            self.streak_start = None;
            self.last_delay = Duration::ZERO;
        } else if !on_purpose && self.count_failure(as_net_error(reason)) {
            self.notify(Notification::Disconnected {
                epoch,
                reason,
                uptime,
                next_delay: None,
            });
            self.give_up();
            return;
        }
        let delay = if on_purpose {
            Duration::ZERO
        } else {
            self.next_delay()
        };
        self.notify(Notification::Disconnected {
            epoch,
            reason,
            uptime,
            next_delay: Some(delay),
        });
        self.phase = Phase::Closing {
            epoch,
            retry_at: now + delay,
        };
        self.timers.set(Timer::Close, now + self.cfg.close_timeout);
    }

    pub(super) fn give_up(&mut self) {
        let elapsed = self.streak_start.map_or(Duration::ZERO, |s| self.now - s);
        self.with_ledger(|l, settle| l.abandon_all(AbandonReason::GaveUp, settle));
        let (failures, last_error) = (self.failures, self.last_error);
        self.notify(Notification::GaveUp {
            failures,
            elapsed,
            last_error,
        });
        self.close_down();
    }

    /// Ends the session: closes whatever socket or attempt is open and settles every message.
    pub(super) fn finish(&mut self, abandon: AbandonReason, reason: DisconnectReason) {
        match self.phase {
            Phase::Resolving { epoch }
            | Phase::Dialing { epoch, .. }
            | Phase::Handshaking { epoch, .. } => self.push(Action::Close { epoch, reason }),
            Phase::Connected { epoch, .. } => {
                self.push(Action::Close { epoch, reason });
                self.table.clear().for_each(drop);
                let uptime = self.now - self.conn.since;
                self.notify(Notification::Disconnected {
                    epoch,
                    reason,
                    uptime,
                    next_delay: None,
                });
            }
            Phase::Backoff | Phase::Closing { .. } | Phase::Closed => {}
        }
        self.with_ledger(|l, settle| l.abandon_all(abandon, settle));
        self.close_down();
    }

    /// The terminal state: no timer, no subscription.
    fn close_down(&mut self) {
        self.phase = Phase::Closed;
        self.draining = false;
        self.timers = Default::default();
        for id in self.subs.clear() {
            self.notify(Notification::Unsubscribed { id, refused: false });
        }
    }
}

/// The closest network-class error to a disconnect reason, for give-up reports.
fn as_net_error(reason: DisconnectReason) -> NetError {
    match reason {
        DisconnectReason::Io(e) => e,
        DisconnectReason::HeartbeatTimeout { .. }
        | DisconnectReason::ReadIdle { .. }
        | DisconnectReason::WriteTimeout(_)
        | DisconnectReason::ConnectTimeout => NetError::TimedOut,
        DisconnectReason::Eof | DisconnectReason::PeerClosed { .. } => NetError::Reset,
        DisconnectReason::Protocol(_) => NetError::Protocol,
        _ => NetError::Other,
    }
}
