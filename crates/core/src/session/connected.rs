//! The connection's deadlines: heartbeat, liveness, write, request; pausing and resuming reads.

use core::time::Duration;

use rand_core::RngCore;

use super::{Farewell, Phase, Session};
use crate::epoch::Epoch;
use crate::error::DisconnectReason;
use crate::output::Notification;
use crate::proto::{ControlBuf, Protocol};
use crate::time::Instant;
use crate::timers::Timer;

impl<P: Protocol, R: RngCore> Session<P, R> {
    /// Deadlines and owed writes of the live connection.
    pub(super) fn step_connected(&mut self, epoch: Epoch) -> bool {
        let now = self.now;
        if self.conn.farewell.is_some()
            && (self.timers.due(Timer::Close, now)
                || (!self.conn.writing && self.proto.control_pending() == 0))
        {
            // The farewell is written, or the peer took too long to read it.
            self.farewell_done();
            return true;
        }
        if self.timers.due(Timer::Liveness, now) {
            self.liveness_lost();
            return true;
        }
        if self.timers.due(Timer::Write, now) {
            let limit = self.cfg.write_timeout.unwrap_or_default();
            self.stats.write_timeouts += 1;
            self.lose(DisconnectReason::WriteTimeout(limit));
            return true;
        }
        if self.timers.due(Timer::Request, now) {
            self.requests_timed_out();
        }
        if self.step_moving() {
            return true;
        }
        if self.timers.due(Timer::Ping, now) {
            self.timers.clear(Timer::Ping);
            self.conn.ping_wanted = true;
        }
        self.transmit_if_owed(epoch)
    }

    /// The farewell is over: the connection ends as the reason for it says.
    pub(super) fn farewell_done(&mut self) {
        match self.conn.farewell.take() {
            Some(Farewell::Peer { code, then }) => self.peer_closed(code, then),
            Some(Farewell::Error(e)) => self.lose(DisconnectReason::Protocol(e)),
            None => {}
        }
    }

    /// The heartbeat interval in force: the peer's (handshake) or ours.
    fn interval(&self) -> Option<Duration> {
        self.cfg
            .heartbeat
            .map(|hb| self.conn.keepalive.unwrap_or(hb.interval))
    }

    /// Recomputes the ping and liveness deadlines from the connection's state: call after any
    /// change to what they derive from (a read, a write, a ping sent or answered, a pause).
    pub(super) fn refresh_liveness(&mut self) {
        let c = &self.conn;
        if c.paused.is_some() || c.peer_closing {
            // Our silence, not the peer's: no deadline counts it.
            self.timers.clear(Timer::Ping);
            self.timers.clear(Timer::Liveness);
            return;
        }
        let last = c.last_read;
        let interval = self.interval();
        let dead_by_hb = interval.map(|i| last + i + self.hb_timeout);
        let dead_by_idle = self.cfg.read_idle_timeout.map(|d| last + d);
        let dead = match (dead_by_hb, dead_by_idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.timers.put(Timer::Liveness, dead);
        let ping = match interval {
            Some(i) if !c.no_ping && !c.ping_wanted && !self.table.ping_outstanding() => {
                let base = if self.proto.ping_when_write_idle() {
                    last.min(c.last_write)
                } else {
                    last
                };
                Some(base + i)
            }
            _ => None,
        };
        self.timers.put(Timer::Ping, ping);
    }

    #[cold]
    fn liveness_lost(&mut self) {
        let now = self.now;
        self.stats.liveness_timeouts += 1;
        let silent_for = now - self.conn.last_read;
        let by_idle = self
            .cfg
            .read_idle_timeout
            .is_some_and(|d| now >= self.conn.last_read + d);
        self.lose(if by_idle {
            DisconnectReason::ReadIdle { silent_for }
        } else {
            DisconnectReason::HeartbeatTimeout { silent_for }
        });
    }

    /// The request deadline: the oldest message waiting for its own reply.
    pub(super) fn refresh_request_deadline(&mut self) {
        if let Some(limit) = self.cfg.request_timeout {
            let at = self.table.oldest_request().map(|(_, at)| at + limit);
            self.timers.put(Timer::Request, at);
        }
    }

    /// Every message whose reply is overdue ends in doubt; its reply is dropped if it comes.
    #[cold]
    fn requests_timed_out(&mut self) {
        let Some(limit) = self.cfg.request_timeout else {
            return;
        };
        while let Some((id, at)) = self.table.oldest_request() {
            if self.now < at + limit {
                break;
            }
            self.table.forget_msg(id);
            self.stats.request_timeouts += 1;
            self.with_ledger(|l, settle| l.doubt(id, settle));
        }
        self.refresh_request_deadline();
    }

    /// The transmit in progress is written.
    pub(super) fn on_written(&mut self) {
        if !core::mem::take(&mut self.conn.writing) {
            // Reported twice, or for a transmit that wrote nothing: harmless.
            return;
        }
        self.conn.encoded = false;
        self.timers.clear(Timer::Write);
        self.with_ledger(|l, settle| l.written(settle));
        if self.proto.ping_when_write_idle() {
            self.refresh_liveness();
        }
    }

    /// A heartbeat answer written at `sent` arrived.
    pub(super) fn pong(&mut self, sent: Instant) {
        self.stats.pongs += 1;
        let sample = self.now - sent;
        self.rtt.sample(sample);
        if let Some(hb) = self.cfg.heartbeat {
            self.hb_timeout = self.rtt.timeout(&hb);
        }
        let smoothed = self.rtt.smoothed().unwrap_or(sample);
        self.notify(Notification::Rtt { sample, smoothed });
        self.refresh_liveness();
    }

    /// Whether reading must stop before the next unit: the user has not taken enough of what
    /// was handed out, or the protocol owes the peer too much already.
    pub(super) fn read_blocked(&self) -> bool {
        let lim = &self.cfg.inbound;
        self.inbound.messages >= lim.max_messages
            || self.inbound.bytes >= lim.max_bytes
            || self.proto.control_pending() > ControlBuf::SOFT_LIMIT
    }

    /// Reading stops (once) for backpressure.
    pub(super) fn pause_read(&mut self) {
        if self.conn.paused.is_some() {
            return;
        }
        let Some(epoch) = self.reading() else {
            return;
        };
        self.conn.paused = Some(self.now);
        self.stats.read_pauses += 1;
        self.refresh_liveness();
        self.notify(Notification::ReadPaused { epoch });
    }

    /// Reading resumes once the user has taken back to half the inbound bounds (a low
    /// watermark, so a consumer taking one message at a time does not flip reading on and off
    /// per message) and nothing else blocks it: the peer's silence counts from now.
    pub(super) fn maybe_resume(&mut self) {
        let Some(since) = self.conn.paused else {
            return;
        };
        let lim = &self.cfg.inbound;
        if self.read_blocked()
            || self.inbound.messages > lim.max_messages / 2
            || self.inbound.bytes > lim.max_bytes / 2
        {
            return;
        }
        let Some(epoch) = self.reading() else {
            self.conn.paused = None;
            return;
        };
        self.conn.paused = None;
        self.conn.last_read = self.now;
        self.refresh_liveness();
        self.notify(Notification::ReadResumed {
            epoch,
            paused_for: self.now - since,
        });
    }

    /// Whether the current phase has an open socket of `epoch`.
    pub(super) fn is_current(&self, epoch: Epoch) -> bool {
        matches!(self.phase,
            Phase::Connected { epoch: e, .. } | Phase::Handshaking { epoch: e, .. } if e == epoch)
    }
}
