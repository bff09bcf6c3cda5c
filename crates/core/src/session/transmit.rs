//! The one encode path: what a transmit carries, in order.
//!
//! 1. what the protocol owes the peer on its own (the opening, answers to the peer's pings,
//!    acknowledgements): ahead of everything, so a peer's PING is answered even while the user
//!    only sends;
//! 2. our heartbeat, if due;
//! 3. subscriptions owed to this connection (restored before anything queued is flushed);
//! 4. queued messages, up to the batch bounds and the peer's in-flight window;
//! 5. our heartbeat request again, if a message confirmed by a later in-order reply
//!    ([`Expect::Barrier`]: NATS `PUB`) has nothing after it to be answered: so its outcome
//!    comes within a round trip, as a flush would;
//! 6. our goodbye, at the end of a graceful close.

use alloc::vec::Vec;

use rand_core::RngCore;

use super::{Goodbye, Phase, Session};
use crate::attribution::Owner;
use crate::epoch::Epoch;
use crate::error::DisconnectReason;
use crate::ledger::Ledger;
use crate::output::{Action, Notification};
use crate::proto::{Expect, Protocol, Sending};
use crate::subscription::Owed;
use crate::timers::Timer;

impl<P: Protocol, R: RngCore> Session<P, R> {
    /// Whether a write is owed and may start now.
    fn owes_write(&self) -> bool {
        let c = &self.conn;
        if c.writing {
            return false;
        }
        if c.peer_closing {
            // Only a farewell (a WebSocket Close) may still go out.
            return c.farewell.is_some() && self.proto.control_pending() > 0;
        }
        if self.proto.control_pending() > 0 {
            return true;
        }
        if !matches!(self.phase, Phase::Connected { .. }) {
            return false;
        }
        c.ping_wanted
            || self.subs.any_owed()
            || c.goodbye == Goodbye::Owed
            || (self.ledger.queued() > 0
                && c.goodbye == Goodbye::No
                && c.moving.is_none()
                && self.table.keyed() < self.proto.max_in_flight())
    }

    /// Asks for a transmit if one is owed.
    pub(super) fn transmit_if_owed(&mut self, epoch: Epoch) -> bool {
        if !self.owes_write() {
            return false;
        }
        self.conn.writing = true;
        self.conn.encoded = false;
        self.conn.last_write = self.now;
        if let Some(limit) = self.cfg.write_timeout {
            self.timers.set(Timer::Write, self.now + limit);
        }
        self.push(Action::Transmit { epoch });
        true
    }

    /// Appends the bytes of the transmit just asked for ([`Action::Transmit`]) to `out` and
    /// returns how many. Write them as one write, then report [`crate::Input::Written`]. When
    /// it appends nothing, the transmit is already complete (reporting it written anyway is
    /// harmless). Outside a transmit it appends nothing.
    pub fn encode_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        let Some(epoch) = self.reading() else {
            return 0;
        };
        if !self.conn.writing || self.conn.encoded {
            return 0;
        }
        self.conn.encoded = true;
        self.proto.write_control(out);
        if let (Phase::Connected { .. }, false) = (self.phase, self.conn.peer_closing) {
            self.encode_ping(out);
            self.encode_subscriptions(epoch, out);
            let messages = self.encode_messages(out);
            if messages.is_ok() && self.table.barrier_unanswered() && !self.conn.no_ping {
                self.conn.ping_wanted = true;
                self.encode_ping(out);
            }
            if let Err(e) = messages {
                // Every message was checked at enqueue: only a protocol that changes its mind
                // gets here, and the connection can no longer be trusted with the rest.
                out.truncate(start);
                self.conn.writing = false;
                self.lose(DisconnectReason::Protocol(e));
                self.sync_state();
                return 0;
            }
            if self.conn.goodbye == Goodbye::Owed {
                if self.proto.encode_goodbye(out) {
                    self.conn.goodbye = Goodbye::Sent;
                    self.timers
                        .set(Timer::Close, self.now + self.cfg.close_timeout);
                } else {
                    self.conn.goodbye = Goodbye::None;
                }
            }
            self.refresh_request_deadline();
        }
        let n = out.len() - start;
        self.stats.bytes_written = self.stats.bytes_written.saturating_add(n as u64);
        if n == 0 {
            self.on_written();
        }
        // Control bytes owed are written now: reading may go on.
        self.maybe_resume();
        self.sync_state();
        n
    }

    fn encode_ping(&mut self, out: &mut Vec<u8>) {
        if !core::mem::take(&mut self.conn.ping_wanted) {
            return;
        }
        let token = self.stats.pings + 1;
        match self.proto.encode_ping(token, out) {
            Some(expect) => {
                self.stats.pings = token;
                let owner = Owner::Ping { token };
                // A heartbeat answered "once written" would prove nothing: wait for a reply.
                let expect = if expect == Expect::Written {
                    Expect::Heartbeat
                } else {
                    expect
                };
                self.table.push(expect, owner, self.now);
            }
            None => self.conn.no_ping = true,
        }
        self.refresh_liveness();
    }

    fn encode_subscriptions(&mut self, epoch: Epoch, out: &mut Vec<u8>) {
        while let Some((id, owed)) = self.subs.take_owed() {
            let Some(spec) = self.subs.get(id).map(|s| s.spec.clone()) else {
                continue;
            };
            let (r, owner) = match owed {
                Owed::Subscribe => (self.proto.encode_subscribe(&spec, id, out), Owner::Sub(id)),
                Owed::Unsubscribe => (
                    self.proto.encode_unsubscribe(&spec, id, out),
                    Owner::Unsub(id),
                ),
                Owed::Nothing => continue,
            };
            match (r, owner) {
                (Ok(Expect::Written), Owner::Sub(_)) => {
                    self.notify(Notification::Subscribed { id, epoch });
                }
                (Ok(Expect::Written), _) => {
                    self.subs.remove(id);
                    self.notify(Notification::Unsubscribed { id, refused: false });
                }
                (Ok(expect), owner) => self.table.push(expect, owner, self.now),
                (Err(_), _) => {
                    // Checked when made: a protocol that cannot encode it now refuses it.
                    self.subs.remove(id);
                    self.notify(Notification::Unsubscribed { id, refused: true });
                }
            }
        }
    }

    /// Queued messages, within the batch bounds and the peer's window.
    fn encode_messages(&mut self, out: &mut Vec<u8>) -> Result<(), crate::error::FrameError> {
        if self.conn.goodbye != Goodbye::No || self.conn.moving.is_some() {
            return Ok(());
        }
        let (max_bytes, max_messages) = (self.cfg.batch_bytes, self.cfg.batch_messages);
        let window = self.proto.max_in_flight();
        let now = self.now;
        let (ledger, proto, table) = (&mut self.ledger, &mut self.proto, &mut self.table);
        let (mut bytes, mut count) = (0usize, 0usize);
        while count < max_messages && table.keyed() < window {
            let Some(size) = ledger.peek_size() else {
                break;
            };
            // At least one message per write, however large.
            if count > 0 && bytes + size > max_bytes {
                break;
            }
            let Some(e) = ledger.next_to_write() else {
                break;
            };
            bytes += size;
            count += 1;
            let (id, single) = (e.id, true);
            let send = Sending {
                again: if e.again { e.key } else { None },
                stage: e.stage,
            };
            let mut key = None;
            let mut on_write = 0;
            let mut units = 0;
            for payload in e.payloads() {
                units += 1;
                match proto.encode(payload, send, out)? {
                    Expect::Written => on_write += 1,
                    expect => {
                        if let Expect::Key(k) = expect {
                            key = Some(k);
                        }
                        table.push(expect, Owner::Msg(id), now);
                    }
                }
            }
            if single && units == 1 {
                e.key = key.or(e.key);
            }
            for _ in 0..on_write {
                Ledger::confirm_on_write(e);
            }
            e.again = false;
        }
        Ok(())
    }
}
