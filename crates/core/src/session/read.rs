//! The read side: bytes to units (the protocol's grammar), units to what they mean (the
//! attribution table): replies, heartbeat answers, messages, handshake steps, the peer's
//! close.

use rand_core::RngCore;

use super::{Farewell, Phase, Session};
use crate::attribution::{Answered, Owner};
use crate::epoch::Epoch;
use crate::error::{DisconnectReason, FrameError, NetError};
use crate::ledger::Ledger;
use crate::output::{Action, Notification, Received};
use crate::proto::{Handshake, Match, Protocol, ReplyStatus, Route, Unit, SHOWN_BYTES};
use crate::session::settled;
use crate::timers::Timer;

/// How far past the protocol's largest unit the buffer may grow without a unit being found:
/// room for a header around the largest body.
const FRAME_SLACK: usize = 64;

impl<P: Protocol, R: RngCore> Session<P, R> {
    /// Bytes read from `epoch`'s socket: decodes every complete unit at the start of `buf`,
    /// hands replies and messages to `sink` (borrowed from `buf`), and returns how many bytes
    /// it used. Keep the rest and pass it again, at the start of the buffer, with the next
    /// bytes appended. `fresh` is how many of `buf`'s bytes are new from the socket (the
    /// rest were kept from before): only those prove the peer alive.
    ///
    /// Decoding stops early while reading is paused for backpressure
    /// ([`Session::wants_read`]). A protocol error ends the connection (the session closes
    /// it and reconnects); the whole buffer is then used. Bytes of a stale epoch are counted
    /// and dropped.
    pub fn handle_read(
        &mut self,
        now: crate::time::Instant,
        epoch: Epoch,
        buf: &[u8],
        fresh: usize,
        sink: &mut dyn FnMut(Received<'_>),
    ) -> usize {
        let _ = self.tick(now);
        if !self.is_current(epoch) {
            self.stats.stale_inputs += 1;
            return buf.len();
        }
        self.stats.bytes_read = self.stats.bytes_read.saturating_add(fresh as u64);
        if fresh > 0 && self.conn.paused.is_none() {
            self.conn.last_read = self.now;
            self.refresh_liveness();
        }
        let mut used = 0;
        while used < buf.len() {
            if !self.is_current(epoch) || self.conn.peer_closing {
                // A unit ended the connection (or the peer's close said it sends no more):
                // the rest belongs to a dead conversation.
                used = buf.len();
                break;
            }
            if self.read_blocked() {
                self.pause_read();
                break;
            }
            let rest = &buf[used..];
            match self.proto.decode(rest) {
                Ok(Some((unit, n))) => {
                    // A protocol claiming zero bytes would loop forever; one claiming more
                    // than it was given must not panic.
                    used += n.clamp(1, rest.len());
                    self.apply(epoch, unit, sink);
                }
                Ok(None) => {
                    let max = self.proto.max_frame().saturating_add(FRAME_SLACK);
                    if rest.len() > max {
                        let error = FrameError::TooLarge {
                            size: rest.len(),
                            max: self.proto.max_frame(),
                        };
                        self.protocol_error(error);
                        used = buf.len();
                    }
                    break;
                }
                Err(error) => {
                    self.protocol_error(error);
                    used = buf.len();
                    break;
                }
            }
        }
        self.refresh_request_deadline();
        self.sync_state();
        used
    }

    /// The peer broke the grammar (or answered what was never asked).
    fn protocol_error(&mut self, error: FrameError) {
        match self.phase {
            Phase::Handshaking { addr, .. } => self.handshake_failed(addr, NetError::Protocol),
            _ if self.proto.farewell_owed() => self.farewell(Farewell::Error(error)),
            _ => self.lose(DisconnectReason::Protocol(error)),
        }
    }

    /// The conversation ends, but the protocol first tells the peer (a WebSocket Close): only
    /// that is written, within the close timeout; then the connection ends as `why` says.
    fn farewell(&mut self, why: Farewell) {
        self.conn.peer_closing = true;
        self.conn.farewell = Some(why);
        self.timers
            .set(Timer::Close, self.now + self.cfg.close_timeout);
        self.refresh_liveness();
    }

    fn peer_said(&mut self, epoch: Epoch, text: &[u8], notice: bool) {
        if !text.is_empty() {
            let text = text[..text.len().min(SHOWN_BYTES)].to_vec();
            self.notify(Notification::PeerSaid {
                epoch,
                text,
                notice,
            });
        }
    }

    fn apply(&mut self, epoch: Epoch, unit: Unit<'_>, sink: &mut dyn FnMut(Received<'_>)) {
        if let Phase::Handshaking { addr, .. } = self.phase {
            match unit {
                Unit::Handshake(Handshake::Progress) | Unit::Control => {}
                Unit::Handshake(Handshake::Accepted { resumed, keepalive }) => {
                    self.connected(epoch, addr, resumed, keepalive);
                }
                Unit::Handshake(Handshake::Refused {
                    error,
                    text,
                    retry_after,
                }) => {
                    self.peer_said(epoch, text, false);
                    self.retry_floor = retry_after;
                    self.handshake_failed(addr, error);
                }
                Unit::Closing(pc) => {
                    self.peer_said(epoch, pc.text, false);
                    let error = match pc.then {
                        crate::proto::AfterClose::GiveUp(e) => e,
                        _ => NetError::Refused,
                    };
                    self.handshake_failed(addr, error);
                }
                Unit::Notice(text) => self.peer_said(epoch, text, true),
                Unit::Reply { .. } | Unit::Message { .. } | Unit::Assembled { .. } => {
                    // Data before the connection is accepted: the peer does not follow the
                    // protocol's handshake.
                    self.handshake_failed(addr, NetError::Protocol);
                }
            }
            return;
        }
        match unit {
            Unit::Control | Unit::Handshake(_) => {}
            Unit::Notice(text) => self.peer_said(epoch, text, true),
            Unit::Closing(pc) => {
                self.peer_said(epoch, pc.text, false);
                if self.proto.farewell_owed() {
                    self.farewell(Farewell::Peer {
                        code: pc.code,
                        then: pc.then,
                    });
                } else {
                    self.conn.peer_closing = true;
                    self.peer_closed(pc.code, pc.then);
                }
            }
            Unit::Assembled { meta } => {
                // Taken out for the delivery and put back, so its capacity is reused.
                let body = self.proto.assembled().map(core::mem::take);
                let body = body.unwrap_or_default();
                let unit = Unit::Message {
                    route: Route::None,
                    body: &body,
                    meta,
                };
                self.apply(epoch, unit, sink);
                if let Some(slot) = self.proto.assembled() {
                    *slot = body;
                }
            }
            Unit::Reply { to, body, status } => self.reply(to, body, status, sink),
            Unit::Message { route, body, meta } => {
                let mut delivered = false;
                if route == Route::None {
                    delivered = true;
                    self.received(
                        sink,
                        Received::Message {
                            sub: None,
                            body,
                            meta,
                        },
                    );
                } else {
                    // Every live subscription the route belongs to gets it (overlapping MQTT
                    // filters); an ended one gets nothing.
                    for i in 0..self.subs.len() {
                        let Some(s) = self.subs.at(i) else {
                            break;
                        };
                        let id = s.id;
                        if !s.ending && self.proto.route_matches(&route, id, &s.spec) {
                            delivered = true;
                            self.received(
                                sink,
                                Received::Message {
                                    sub: Some(id),
                                    body,
                                    meta,
                                },
                            );
                        }
                    }
                }
                if !delivered {
                    self.stats.messages_dropped += 1;
                }
            }
        }
    }

    /// Hands a unit to the user and counts it against the inbound bounds.
    fn received(&mut self, sink: &mut dyn FnMut(Received<'_>), r: Received<'_>) {
        match r {
            Received::Message { .. } => self.stats.messages_received += 1,
            Received::Reply { .. } => self.stats.replies += 1,
        }
        self.inbound.messages += 1;
        self.inbound.bytes += r.len();
        sink(r);
    }

    /// Finds what a reply answers and settles it.
    fn reply(
        &mut self,
        to: Match,
        body: &[u8],
        status: ReplyStatus,
        sink: &mut dyn FnMut(Received<'_>),
    ) {
        let continues = status == ReplyStatus::Continues;
        let found: Option<Answered> = match to {
            Match::Next => {
                let epoch = self.connection();
                let (table, ledger, subs, out, stats) = (
                    &mut self.table,
                    &mut self.ledger,
                    &mut self.subs,
                    &mut self.out,
                    &mut self.stats,
                );
                let found = table.answer_next(&mut |owner| {
                    confirm_barrier(ledger, subs, out, stats, epoch, owner)
                });
                if found.is_none() {
                    self.lose(DisconnectReason::Protocol(FrameError::UnexpectedReply));
                    return;
                }
                found
            }
            Match::Key(key) => {
                let found = self.table.answer_key(key, continues);
                if found.is_none() {
                    self.lose(DisconnectReason::Protocol(FrameError::UnknownKey { key }));
                    return;
                }
                found
            }
            Match::KeyIfAny(key) => {
                let found = self.table.answer_key(key, continues);
                if found.is_none() {
                    self.stats.late_replies += 1;
                }
                found
            }
            Match::Heartbeat { token } => {
                // An answer nothing waited for still proves the peer alive (counted as read).
                let epoch = self.connection();
                let (table, ledger, subs, out, stats) = (
                    &mut self.table,
                    &mut self.ledger,
                    &mut self.subs,
                    &mut self.out,
                    &mut self.stats,
                );
                table.answer_heartbeat(token, &mut |owner| {
                    confirm_barrier(ledger, subs, out, stats, epoch, owner)
                })
            }
        };
        let Some(found) = found else {
            return;
        };
        match found.owner {
            Owner::Msg(id) => {
                if !continues {
                    self.received(
                        sink,
                        Received::Reply {
                            id,
                            body,
                            refused: status == ReplyStatus::Refused,
                        },
                    );
                }
                let (ledger, out, stats) = (&mut self.ledger, &mut self.out, &mut self.stats);
                let held = Ledger::answered(ledger, id, continues, &mut |s| settled(out, stats, s));
                if !held {
                    self.stats.late_replies += 1;
                }
            }
            Owner::Ping { .. } => self.pong(found.at),
            Owner::Sub(id) => {
                let Some(epoch) = self.connection() else {
                    return;
                };
                if status == ReplyStatus::Refused {
                    self.peer_said(epoch, body, true);
                    self.subs.remove(id);
                    self.notify(Notification::Unsubscribed { id, refused: true });
                } else {
                    self.notify(Notification::Subscribed { id, epoch });
                }
            }
            Owner::Unsub(id) => {
                if self.subs.remove(id) {
                    self.notify(Notification::Unsubscribed { id, refused: false });
                }
            }
            Owner::Gone => self.stats.late_replies += 1,
        }
    }
}

/// A barrier written before the answered entry is confirmed by it: a message is delivered, a
/// subscription in place, an unsubscription done.
fn confirm_barrier(
    ledger: &mut Ledger,
    subs: &mut crate::subscription::Subs,
    out: &mut alloc::collections::VecDeque<Action>,
    stats: &mut crate::stats::Stats,
    epoch: Option<Epoch>,
    owner: Owner,
) {
    match owner {
        Owner::Msg(id) => {
            ledger.answered(id, false, &mut |s| settled(out, stats, s));
        }
        Owner::Sub(id) => {
            if let Some(epoch) = epoch {
                out.push_back(Action::Notify(Notification::Subscribed { id, epoch }));
            }
        }
        Owner::Unsub(id) => {
            if subs.remove(id) {
                out.push_back(Action::Notify(Notification::Unsubscribed {
                    id,
                    refused: false,
                }));
            }
        }
        Owner::Ping { .. } | Owner::Gone => {}
    }
}
