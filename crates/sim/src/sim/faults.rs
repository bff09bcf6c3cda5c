//! Faults starting and ending: refusals, blackholes, resets, across every session.

use super::*;

impl Simulation {
    pub(super) fn fault_start(&mut self, f: Fault) {
        let now = self.now;
        let one_way = self.sc.network.one_way;
        match f.kind {
            FaultKind::Blackhole => {
                self.blackholed += 1;
                self.blackhole_mark = Some(now);
            }
            FaultKind::Refuse => self.refusing += 1,
            FaultKind::Flap => self.flapping += 1,
            FaultKind::Reset => {}
        }
        if f.kind != FaultKind::Blackhole {
            self.kill_mark = Some(now);
        }
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.watch.is_none() && c.session.state() == State::Connected {
                c.watch = Some((f.kind, now));
            }
            let Some(conn) = c.conn.as_mut() else {
                continue;
            };
            if f.kind == FaultKind::Blackhole {
                conn.wedged = true;
                continue;
            }
            if !conn.usable() {
                continue;
            }
            conn.killed = true;
            let (epoch, what) = (conn.epoch, f.kind);
            let ev = match what {
                FaultKind::Reset => What::IoError(epoch, NetError::Reset),
                _ => What::Eof(epoch),
            };
            self.push(now + one_way, i as u32, ev);
        }
    }

    pub(super) fn fault_end(&mut self, f: Fault) {
        match f.kind {
            FaultKind::Blackhole => self.blackholed -= 1,
            FaultKind::Refuse => self.refusing -= 1,
            FaultKind::Flap => self.flapping -= 1,
            FaultKind::Reset => {}
        }
        let now = self.now;
        for c in &mut self.clients {
            if c.done {
                continue;
            }
            let healthy = c.watch.is_none()
                && c.session.state() == State::Connected
                && c.conn.is_some_and(|k| k.usable() && !k.doomed);
            if !healthy {
                c.reconnect_from = Some((f.kind, now));
            }
        }
    }
}
