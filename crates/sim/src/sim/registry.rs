//! The registry model and the shared budget inside the engine: resolutions from the set, a
//! server leaving it, sessions moving off it, retries the budget refuses.

use super::*;

impl Simulation {
    /// A resolution: the servers in the set, in the session's own order; or, when the
    /// session is retrying and the shared budget is empty, no attempt at all.
    pub(super) fn resolve(&mut self, i: usize, epoch: Epoch) {
        if let Some(budget) = self.budget.as_mut() {
            if self.clients[i].session.failures() > 0 {
                if let Err(denied) = budget.withdraw(self.now) {
                    self.core_events += 1;
                    let now = self.now;
                    let _ = self.clients[i]
                        .session
                        .defer_attempt(now, epoch, denied.retry_in);
                    return;
                }
            }
        }
        let mut addrs = core::mem::take(&mut self.resolved);
        addrs.clear();
        addrs.extend(
            self.addrs
                .iter()
                .zip(&self.present)
                .filter(|(_, p)| **p)
                .map(|(a, _)| *a),
        );
        if self.sc.registry.is_some() {
            redial_core::spread::order(self.clients[i].seed, &mut addrs);
        }
        self.handle(
            i,
            Input::Resolved {
                epoch,
                addrs: &addrs,
            },
        );
        self.resolved = addrs;
    }

    /// `server` leaves the set: every session connected to it schedules its move.
    pub(super) fn leave(&mut self, server: u8) {
        let Some(reg) = self.sc.registry else { return };
        let Some(p) = self.present.get_mut(usize::from(server)) else {
            return;
        };
        *p = false;
        let now = self.now;
        for i in 0..self.clients.len() {
            let on_it = self.clients[i]
                .conn
                .is_some_and(|c| c.server == server && c.usable());
            if on_it {
                self.clients[i].moving_since = Some(now);
                let at = reg
                    .departure
                    .at(now, &mut redial_core::SplitMix64::new(self.rng.next_u64()));
                self.push(at, i as u32, What::Move);
            }
        }
    }

    /// A session connected: a deposit in the budget; done moving if it was; told to move if
    /// its server has left meanwhile (it resolved before the server left).
    pub(super) fn on_connected(&mut self, i: usize) {
        if let Some(b) = self.budget.as_mut() {
            b.deposit(self.now);
        }
        let Some(reg) = self.sc.registry else { return };
        let Some(conn) = self.clients[i].conn else {
            return;
        };
        if !self.present[usize::from(conn.server)] {
            let now = self.now;
            self.clients[i].moving_since.get_or_insert(now);
            let at = reg
                .departure
                .at(now, &mut redial_core::SplitMix64::new(self.rng.next_u64()));
            self.push(at, i as u32, What::Move);
        } else if let Some(since) = self.clients[i].moving_since.take() {
            self.moves.push(Sample {
                session: i as u32,
                kind: FaultKind::Reset,
                time: self.now - since,
            });
        }
    }
}
