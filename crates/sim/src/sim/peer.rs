//! The simulated server's side of a session: dials arriving, what each session writes read
//! frame by frame and answered, the session's notifications checked.

use super::*;

impl Simulation {
    /// The server's frames in `self.answer` arrive on `epoch`. The simulated user takes
    /// every reply at once, so reading never stays paused.
    pub(super) fn read_answer(&mut self, i: usize, epoch: Epoch) {
        self.core_events += 1;
        let bytes = core::mem::take(&mut self.answer);
        let (mut at, mut fresh) = (0, bytes.len());
        let session = &mut self.clients[i].session;
        while at < bytes.len() {
            let (mut units, mut taken) = (0, 0);
            let used = session.handle_read(self.now, epoch, &bytes[at..], fresh, &mut |r| {
                units += 1;
                taken += r.len();
            });
            session.inbound_taken(self.now, units, taken);
            at += used;
            fresh = 0;
            if used == 0 && units == 0 {
                break;
            }
        }
        if at < bytes.len() {
            let left = bytes.len() - at;
            self.violation(
                i,
                format!("{left} of {} answer bytes never read", bytes.len()),
            );
        }
        self.answer = bytes;
        self.answer.clear();
    }

    /// A dial's SYN-ACK arrives. Returns whether the session has something to process.
    pub(super) fn dial_arrived(&mut self, i: usize, epoch: Epoch) -> bool {
        let Some(dial) = self.clients[i].dial.filter(|d| d.epoch == epoch) else {
            return false; // Aborted by the core's connect timeout.
        };
        if self.blackholed > 0 || self.blackhole_mark.is_some_and(|m| m > dial.started) {
            return false; // The answer is lost: the dial hangs until its deadline.
        }
        self.clients[i].dial = None;
        if self.kill_mark.is_some_and(|m| m > dial.started) {
            // Accepted by a server that has died since.
            self.handle(
                i,
                Input::DialFailed {
                    epoch,
                    error: NetError::Reset,
                },
            );
            return true;
        }
        self.handle(i, Input::DialOk { epoch });
        if self.clients[i].session.connection() == Some(epoch) {
            if let Some(old) = self.clients[i].conn {
                self.violation(
                    i,
                    format!("second connection {epoch} while {} open", old.epoch),
                );
            }
            self.clients[i].conn = Some(Conn {
                epoch,
                server: dial.server,
                wedged: false,
                killed: false,
                doomed: dial.flap,
                last_seq: None,
            });
            if dial.flap {
                let at = self.now + self.sc.network.flap_life;
                self.push(at, i as u32, What::Eof(epoch));
            }
        }
        true
    }

    pub(super) fn dial(&mut self, i: usize, epoch: Epoch, addr: Addr) {
        let server = self.addrs.iter().position(|a| *a == addr).unwrap_or(0) as u8;
        self.dials += 1;
        let (done, earliest) = (self.clients[i].done, self.clients[i].earliest_dial);
        if done {
            self.violation(i, "dial after give-up or close".into());
        }
        if self.now < earliest {
            let early = earliest - self.now;
            self.violation(i, format!("dial {early:?} before its backoff deadline"));
        }
        let net = self.sc.network;
        let flap = self.flapping > 0;
        self.clients[i].dial = Some(Dial {
            epoch,
            server,
            started: self.now,
            flap,
        });
        if self.blackholed > 0 {
            return; // The SYN is lost: the server never sees it.
        }
        let bucket = (self.now.as_nanos() / self.sc.bucket.as_nanos().max(1) as u64) as usize;
        if let Some(b) = self.server_dials.get_mut(bucket) {
            *b += 1;
        }
        if let Some(b) = self.server_dials_by[usize::from(server)].get_mut(bucket) {
            *b += 1;
        }
        let at = self.now + net.dial_latency + self.rng.duration_upto(net.dial_jitter);
        let what = if self.refusing > 0 {
            What::DialFailed(epoch, NetError::Refused)
        } else {
            What::DialOk(epoch)
        };
        self.push(at, i as u32, what);
    }

    pub(super) fn transmit(&mut self, i: usize, epoch: Epoch) {
        let net = self.sc.network;
        let acked = self.sc.acks == AckMode::InOrder;
        let Some(mut conn) = self.clients[i].conn.filter(|c| c.epoch == epoch) else {
            self.violation(i, format!("transmit on {epoch}, which is not connected"));
            return;
        };
        let mut problems = Vec::new();
        let c = &mut self.clients[i];
        let mut wire = core::mem::take(&mut self.wire);
        wire.clear();
        c.session.encode_transmit(&mut wire);
        // The server reads the bytes frame by frame, as a real one would.
        let mut codec = LengthCodec::default();
        let (mut messages, mut ping, mut at) = (0usize, false, 0usize);
        while at < wire.len() {
            let payload = match codec.decode(&wire[at..]) {
                Ok(Some((frame, used))) => {
                    at += used;
                    match frame {
                        Frame::Data(payload) => payload,
                        Frame::Ping => {
                            ping = true;
                            continue;
                        }
                        Frame::Pong => {
                            problems.push("a PONG the server never asked for".to_string());
                            continue;
                        }
                    }
                }
                Ok(None) => {
                    problems.push(format!("a transmit ends in a partial frame on {epoch}"));
                    break;
                }
                Err(e) => {
                    problems.push(format!("a transmit the server cannot frame: {e}"));
                    break;
                }
            };
            messages += 1;
            let Some(seq) = decode(payload) else {
                problems.push("transmit of a payload the workload never made".to_string());
                continue;
            };
            c.book.transmitted(seq);
            if !conn.usable() {
                continue; // Lost on the wire.
            }
            if let Err(e) = c.book.received(seq, &mut self.messages) {
                problems.push(e);
            }
            if conn.last_seq.is_some_and(|last| seq <= last) && !c.book.is_idempotent(seq) {
                problems.push(format!("message {seq} out of order on {epoch}"));
            }
            conn.last_seq = Some(seq);
        }
        self.wire = wire;
        c.conn = Some(conn);
        for p in problems {
            self.violation(i, p);
        }
        if net.write_latency.is_zero() {
            // Into the send buffer at once: report it within this round, as an adapter whose
            // write completed immediately would.
            self.handle(i, Input::Written { epoch });
        } else {
            let at = self.now + net.write_latency;
            self.push(at, i as u32, What::Written(epoch));
        }
        if !conn.usable() {
            return;
        }
        let back = self.now + net.one_way * 2;
        if acked && messages > 0 {
            self.push(
                back + net.ack_latency,
                i as u32,
                What::Acked(epoch, messages as u32),
            );
        }
        if ping {
            self.push(back + net.pong_latency, i as u32, What::Pong(epoch));
        }
    }

    pub(super) fn notified(&mut self, i: usize, n: Notification) {
        let now = self.now;
        let cap = self.sc.config.backoff.cap;
        match n {
            Notification::AttemptFailed { next_delay, .. }
            | Notification::Disconnected { next_delay, .. } => {
                if let Some(d) = next_delay {
                    if d > cap {
                        self.violation(i, format!("delay {d:?} above the cap {cap:?}"));
                    }
                    self.clients[i].earliest_dial = now + d;
                }
                if matches!(n, Notification::Disconnected { .. }) {
                    if let Some((kind, at)) = self.clients[i].watch.take() {
                        let time = now - at;
                        let bound = match kind {
                            FaultKind::Blackhole => self.liveness_bound,
                            _ => Some(self.sc.network.one_way),
                        };
                        if let Some(b) = bound.filter(|b| time > *b) {
                            self.violation(
                                i,
                                format!("{kind} detected after {time:?}, bound {b:?}"),
                            );
                        }
                        self.detection.push(Sample {
                            session: i as u32,
                            kind,
                            time,
                        });
                    }
                }
            }
            Notification::Connected { .. } => {
                self.on_connected(i);
                if let Some((kind, at)) = self.clients[i].reconnect_from.take() {
                    self.reconnection.push(Sample {
                        session: i as u32,
                        kind,
                        time: now - at,
                    });
                }
            }
            Notification::Outcome {
                id,
                outcome,
                payload,
            } => {
                let acked = self.sc.acks == AckMode::InOrder;
                let seq = payload.as_deref().and_then(decode);
                let c = &mut self.clients[i];
                if let Err(e) = c
                    .book
                    .settled(Some(id), seq, outcome, acked, &mut self.messages)
                {
                    self.violation(i, e);
                }
            }
            Notification::GaveUp { .. } => {
                self.gave_up += 1;
                let c = &mut self.clients[i];
                c.done = true;
                c.reconnect_from = None;
                c.watch = None;
            }
            Notification::StateChanged {
                to: State::Closed, ..
            } => self.clients[i].done = true,
            _ => {}
        }
    }
}
