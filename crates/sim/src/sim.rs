//! The discrete-event engine: a queue of timed events over many real sessions, a server and a
//! network, on virtual time that jumps from one event to the next.

use core::cmp::Ordering;
use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;

use redial_core::{
    AckMode, Action, Addr, Codec, ConfigError, Delivery, Epoch, Frame, Framed, Input, Instant,
    LengthCodec, NetError, Notification, Outcome, Session, State,
};

use crate::book::{decode, MsgBook};
use crate::fault::{Fault, FaultKind};
use crate::queue::{EventQueue, Timed};
use crate::report::{MessageCounts, Report, Sample};
use crate::rng::{derive_seed, SimRng};
use crate::scenario::Scenario;

/// Violations kept verbatim in the report; the rest are only counted.
const KEEP_VIOLATIONS: usize = 32;
/// Actions one round may produce before the simulator calls it a livelock.
const MAX_ROUND: usize = 100_000;
/// The wire protocol of every simulated session: length-delimited frames, with the
/// scenario's acknowledgement mode. The simulated server reads what a session writes frame by
/// frame and answers with real frames, so the core's grammar and reply attribution run as
/// they do on a socket.
pub type SimProtocol = Framed<LengthCodec>;

/// A simulated session.
pub type SimSession = Session<SimProtocol>;

/// What happens at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    Wake,
    Enqueue,
    DialOk(Epoch),
    DialFailed(Epoch, NetError),
    Written(Epoch),
    Pong(Epoch),
    Acked(Epoch, u32),
    Eof(Epoch),
    IoError(Epoch, NetError),
    Closed(Epoch),
    FaultStart(u16),
    FaultEnd(u16),
}

/// A scheduled event. Ordered by time, then by scheduling order, so runs are deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ev {
    at: Instant,
    seq: u64,
    client: u32,
    what: What,
}

impl Ord for Ev {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl Timed for Ev {
    fn at(&self) -> Instant {
        self.at
    }
}

impl PartialOrd for Ev {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A dial in progress, as the network sees it.
#[derive(Clone, Copy, Debug)]
struct Dial {
    epoch: Epoch,
    started: Instant,
    flap: bool,
}

/// An established connection, as the network sees it.
#[derive(Clone, Copy, Debug)]
struct Conn {
    epoch: Epoch,
    /// Crossed a blackhole: silent for good.
    wedged: bool,
    /// The server side is gone (EOF or reset on its way).
    killed: bool,
    /// Accepted by a flapping server; will die.
    doomed: bool,
    last_seq: Option<u32>,
}

impl Conn {
    fn usable(&self) -> bool {
        !self.wedged && !self.killed
    }
}

struct Client {
    session: SimSession,
    /// The earliest wake queued for this session.
    wake: Option<Instant>,
    dial: Option<Dial>,
    conn: Option<Conn>,
    earliest_dial: Instant,
    watch: Option<(FaultKind, Instant)>,
    reconnect_from: Option<(FaultKind, Instant)>,
    book: MsgBook,
    done: bool,
}

/// A running simulation. Build it from a [`Scenario`], then [`Simulation::run`] it (or step
/// it with [`Simulation::run_until`] and end it with [`Simulation::finish`]).
pub struct Simulation {
    sc: Scenario,
    now: Instant,
    end: Instant,
    queue: EventQueue<Ev>,
    seq: u64,
    clients: Vec<Client>,
    rng: SimRng,
    addrs: [Addr; 1],
    /// Scratch for one transmit's bytes and for the server's answers.
    wire: Vec<u8>,
    answer: Vec<u8>,
    refusing: u32,
    blackholed: u32,
    flapping: u32,
    /// Last instant the server killed its connections (refuse, reset, flap start).
    kill_mark: Option<Instant>,
    /// Last instant a blackhole began.
    blackhole_mark: Option<Instant>,
    liveness_bound: Option<Duration>,
    server_dials: Vec<u32>,
    dials: u64,
    detection: Vec<Sample>,
    reconnection: Vec<Sample>,
    gave_up: u64,
    messages: MessageCounts,
    violations: Vec<String>,
    violation_count: u64,
    core_events: u64,
    polls: u64,
}

impl Simulation {
    /// Sets up every session, the workload and the fault schedule. Fails if the config is
    /// invalid.
    pub fn new(scenario: Scenario) -> Result<Simulation, ConfigError> {
        scenario.config.validate()?;
        let mut rng = SimRng::new(derive_seed(scenario.seed, u64::MAX));
        let hb = scenario.config.heartbeat.map(|h| h.interval + h.timeout);
        let liveness_bound = match (hb, scenario.config.read_idle_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let buckets = (scenario.duration.as_nanos() / scenario.bucket.as_nanos().max(1)) as usize;
        let mut sim = Simulation {
            now: Instant::ZERO,
            end: Instant::ZERO + scenario.duration,
            queue: EventQueue::new(),
            seq: 0,
            clients: Vec::with_capacity(scenario.clients),
            rng: SimRng::new(0),
            addrs: [Addr::from(SocketAddr::from((
                Ipv4Addr::new(10, 0, 0, 1),
                6379,
            )))],
            wire: Vec::new(),
            answer: Vec::new(),
            refusing: 0,
            blackholed: 0,
            flapping: 0,
            kill_mark: None,
            blackhole_mark: None,
            liveness_bound,
            server_dials: vec![0; buckets + 1],
            dials: 0,
            detection: Vec::new(),
            reconnection: Vec::new(),
            gave_up: 0,
            messages: MessageCounts::default(),
            violations: Vec::new(),
            violation_count: 0,
            core_events: 0,
            polls: 0,
            sc: scenario,
        };
        for (i, f) in sim.sc.faults.faults().to_vec().iter().enumerate() {
            let i = i as u16;
            sim.push(Instant::ZERO + f.start, u32::MAX, What::FaultStart(i));
            sim.push(Instant::ZERO + f.end, u32::MAX, What::FaultEnd(i));
        }
        for i in 0..sim.sc.clients {
            let mut config = sim.sc.config.clone();
            config.seed = derive_seed(sim.sc.seed, i as u64);
            let protocol = Framed::new(LengthCodec::default()).with_acks(sim.sc.acks);
            let session = Session::new(config, protocol, Instant::ZERO)?;
            sim.clients.push(Client {
                session,
                wake: None,
                dial: None,
                conn: None,
                earliest_dial: Instant::ZERO,
                watch: None,
                reconnect_from: None,
                book: MsgBook::default(),
                done: false,
            });
            let start = Instant::ZERO + rng.duration_upto(sim.sc.start_spread);
            sim.clients[i].wake = Some(start);
            sim.push(start, i as u32, What::Wake);
            if let Some(w) = sim.sc.workload {
                let first = start + rng.duration_upto(w.every);
                sim.push(first, i as u32, What::Enqueue);
            }
        }
        sim.rng = rng;
        Ok(sim)
    }

    /// Virtual time reached.
    pub fn now(&self) -> Duration {
        self.now.since_origin()
    }

    /// How far the run is, from 0 to 1.
    pub fn progress(&self) -> f64 {
        let total = self.end.as_nanos().max(1) as f64;
        (self.now.as_nanos() as f64 / total).min(1.0)
    }

    /// Session `i`, to inspect.
    pub fn session(&self, i: usize) -> &SimSession {
        &self.clients[i].session
    }

    /// Processes every event up to virtual time `t` (at most the scenario's duration).
    /// Returns whether the run has time left.
    pub fn run_until(&mut self, t: Duration) -> bool {
        let limit = (Instant::ZERO + t).min(self.end);
        while let Some(ev) = self.queue.pop_until(limit) {
            self.now = ev.at;
            self.dispatch(ev);
        }
        self.now = self.now.max(limit);
        self.now < self.end
    }

    /// Runs the whole scenario and reports.
    pub fn run(mut self) -> Report {
        self.run_until(self.sc.duration);
        self.finish()
    }

    /// Ends the run at the scenario's end: closes every session at once (settling every
    /// message still held), checks that every message has exactly one outcome, and reports.
    pub fn finish(mut self) -> Report {
        self.now = self.end;
        for i in 0..self.clients.len() {
            self.clients[i]
                .session
                .close(self.end, redial_core::CloseMode::Immediate);
            self.drive(i);
        }
        let mut not_reconnected = 0;
        for i in 0..self.clients.len() {
            let c = &self.clients[i];
            if c.reconnect_from.is_some() && !c.done {
                not_reconnected += 1;
            }
            self.messages.enqueued += c.book.enqueued() as u64;
            let lost = c.book.unsettled();
            if lost > 0 {
                self.violation(i, format!("{lost} messages never reached an outcome"));
            }
        }
        Report {
            clients: self.sc.clients,
            bucket: self.sc.bucket,
            server_dials: self.server_dials,
            dials: self.dials,
            detection: self.detection,
            reconnection: self.reconnection,
            gave_up: self.gave_up,
            not_reconnected,
            messages: self.messages,
            violations: self.violations,
            violation_count: self.violation_count,
            last_heal: self.sc.faults.last_heal(),
            core_events: self.core_events,
            polls: self.polls,
            duration: self.sc.duration,
        }
    }

    fn push(&mut self, at: Instant, client: u32, what: What) {
        self.seq += 1;
        self.queue.push(Ev {
            at,
            seq: self.seq,
            client,
            what,
        });
    }

    fn violation(&mut self, client: usize, what: String) {
        self.violation_count += 1;
        if self.violations.len() < KEEP_VIOLATIONS {
            self.violations
                .push(format!("session {client} at {}: {what}", self.now));
        }
    }

    fn handle(&mut self, i: usize, input: Input<'_>) {
        self.core_events += 1;
        let _ = self.clients[i].session.handle_input(self.now, input);
    }

    /// The server's frames in `self.answer` arrive on `epoch`. The simulated user takes
    /// every reply at once, so reading never stays paused.
    fn read_answer(&mut self, i: usize, epoch: Epoch) {
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

    fn dispatch(&mut self, ev: Ev) {
        let i = ev.client as usize;
        match ev.what {
            What::FaultStart(f) => return self.fault_start(self.sc.faults.faults()[f as usize]),
            What::FaultEnd(f) => return self.fault_end(self.sc.faults.faults()[f as usize]),
            What::Wake => {
                if self.clients[i].wake != Some(ev.at) {
                    return; // Superseded by an earlier wake.
                }
                self.clients[i].wake = None;
                self.core_events += 1;
            }
            What::Enqueue => self.enqueue(i),
            What::DialOk(epoch) => {
                if !self.dial_arrived(i, epoch) {
                    return;
                }
            }
            What::DialFailed(epoch, error) => {
                if self.clients[i].dial.is_none_or(|d| d.epoch != epoch) {
                    return; // Aborted by the core's connect timeout.
                }
                self.clients[i].dial = None;
                self.handle(i, Input::DialFailed { epoch, error });
            }
            What::Written(epoch) => {
                if self.clients[i].conn.is_none_or(|c| c.epoch != epoch) {
                    return;
                }
                self.handle(i, Input::Written { epoch });
            }
            What::Pong(epoch) | What::Acked(epoch, _) => {
                if self.clients[i]
                    .conn
                    .is_none_or(|c| c.epoch != epoch || c.wedged)
                {
                    return; // Lost on the wire, or the socket is gone.
                }
                let mut codec = LengthCodec::default();
                let (frame, n) = match ev.what {
                    What::Acked(_, n) => (Frame::Data(b"+"), n),
                    _ => (Frame::Pong, 1),
                };
                for _ in 0..n {
                    codec
                        .encode(frame, &mut self.answer)
                        .expect("an answer frame fits");
                }
                self.read_answer(i, epoch);
            }
            What::Eof(epoch) | What::IoError(epoch, _) => {
                let Some(conn) = self.clients[i].conn.as_mut() else {
                    return;
                };
                if conn.epoch != epoch || conn.wedged {
                    return;
                }
                conn.killed = true;
                match ev.what {
                    What::IoError(_, error) => self.handle(i, Input::IoError { epoch, error }),
                    _ => self.handle(i, Input::Eof { epoch }),
                }
            }
            What::Closed(epoch) => self.handle(i, Input::Closed { epoch }),
        }
        self.drive(i);
    }

    /// A dial's SYN-ACK arrives. Returns whether the session has something to process.
    fn dial_arrived(&mut self, i: usize, epoch: Epoch) -> bool {
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

    fn enqueue(&mut self, i: usize) {
        let Some(w) = self.sc.workload else { return };
        let c = &mut self.clients[i];
        let n = c.book.enqueued() as u32;
        let delivery = if w.idempotent_every > 0 && n % w.idempotent_every == w.idempotent_every - 1
        {
            Delivery::Idempotent
        } else {
            Delivery::AtMostOnce
        };
        let (seq, payload) = c.book.next(delivery);
        self.core_events += 1;
        match c.session.enqueue(self.now, payload, delivery) {
            Ok(id) => c.book.accepted(id, seq),
            Err(rejected) => {
                let outcome = Outcome::Rejected(rejected.reason);
                let r = c
                    .book
                    .settled(None, Some(seq), outcome, false, &mut self.messages);
                if let Err(e) = r {
                    self.violation(i, e);
                }
            }
        }
        let next = self.now + w.every;
        if w.until.is_none_or(|u| next <= Instant::ZERO + u) && next < self.end {
            self.push(next, i as u32, What::Enqueue);
        }
    }

    /// Runs one round of session `i`: performs its actions until it waits.
    fn drive(&mut self, i: usize) {
        for _ in 0..MAX_ROUND {
            self.polls += 1;
            match self.clients[i].session.poll(self.now) {
                Action::Resolve { epoch } => {
                    let addrs = self.addrs;
                    self.handle(
                        i,
                        Input::Resolved {
                            epoch,
                            addrs: &addrs,
                        },
                    );
                }
                Action::Dial { epoch, .. } => self.dial(i, epoch),
                Action::Transmit { epoch } => self.transmit(i, epoch),
                Action::Close { epoch, .. } => {
                    let c = &mut self.clients[i];
                    if c.conn.is_some_and(|c| c.epoch == epoch) {
                        c.conn = None;
                    }
                    if c.dial.is_some_and(|d| d.epoch == epoch) {
                        c.dial = None;
                    }
                    let at = self.now + self.sc.network.close_latency;
                    self.push(at, i as u32, What::Closed(epoch));
                }
                Action::Notify(n) => self.notified(i, n),
                Action::Wait { until: Some(at) } => {
                    // Re-arm only when the deadline moves earlier: a later deadline is met
                    // by the wake already queued, which fires early (harmless: deadlines
                    // are absolute) and re-arms. Most rounds push the liveness deadline a
                    // little later, so this saves a queued event per message.
                    let c = &mut self.clients[i];
                    if c.wake.is_none_or(|w| at < w) {
                        c.wake = Some(at);
                        self.push(at, i as u32, What::Wake);
                    }
                    return;
                }
                Action::Wait { until: None } => return,
                _ => {}
            }
        }
        self.violation(i, format!("no Wait after {MAX_ROUND} actions"));
    }

    fn dial(&mut self, i: usize, epoch: Epoch) {
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
        let at = self.now + net.dial_latency + self.rng.duration_upto(net.dial_jitter);
        let what = if self.refusing > 0 {
            What::DialFailed(epoch, NetError::Refused)
        } else {
            What::DialOk(epoch)
        };
        self.push(at, i as u32, what);
    }

    fn transmit(&mut self, i: usize, epoch: Epoch) {
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

    fn notified(&mut self, i: usize, n: Notification) {
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

    fn fault_start(&mut self, f: Fault) {
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

    fn fault_end(&mut self, f: Fault) {
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
