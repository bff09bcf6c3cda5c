//! The discrete-event engine: a queue of timed events over many real sessions, a server and a
//! network, on virtual time that jumps from one event to the next.

use core::cmp::Ordering;
use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;

use redial_core::budget::RetryBudget;
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

mod faults;
mod peer;
mod registry;

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
    /// A server leaves the registry's set.
    Leave(u8),
    /// A session starts moving off a departed server.
    Move,
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
    server: u8,
    started: Instant,
    flap: bool,
}

/// An established connection, as the network sees it.
#[derive(Clone, Copy, Debug)]
struct Conn {
    epoch: Epoch,
    /// Which server it goes to.
    server: u8,
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
    /// The session's seed (its own order of the servers).
    seed: u64,
    /// When the server it was connected to left the set, until it connects elsewhere.
    moving_since: Option<Instant>,
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
    /// Every server's address; `present`: whether it is in the registry's set.
    addrs: Vec<Addr>,
    present: Vec<bool>,
    /// Scratch for one resolution.
    resolved: Vec<Addr>,
    budget: Option<RetryBudget>,
    server_dials_by: Vec<Vec<u32>>,
    moves: Vec<Sample>,
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
        let servers = scenario.registry.map_or(1, |r| r.servers.max(1));
        let mut sim = Simulation {
            now: Instant::ZERO,
            end: Instant::ZERO + scenario.duration,
            queue: EventQueue::new(),
            seq: 0,
            clients: Vec::with_capacity(scenario.clients),
            rng: SimRng::new(0),
            addrs: (0..servers)
                .map(|k| Addr::from(SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1 + k), 6379))))
                .collect(),
            present: vec![true; usize::from(servers)],
            resolved: Vec::new(),
            budget: match scenario.budget {
                Some(p) => Some(RetryBudget::new(p, Instant::ZERO)?),
                None => None,
            },
            server_dials_by: vec![vec![0; buckets + 1]; usize::from(servers)],
            moves: Vec::new(),
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
        if let Some((server, at)) = sim.sc.registry.and_then(|r| r.leaves) {
            sim.push(Instant::ZERO + at, u32::MAX, What::Leave(server));
        }
        for i in 0..sim.sc.clients {
            let mut config = sim.sc.config.clone();
            config.seed = derive_seed(sim.sc.seed, i as u64);
            let seed = config.seed;
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
                seed,
                moving_since: None,
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
            server_dials_by: self.server_dials_by,
            moves: self.moves,
            budget: self.budget.as_ref().map(RetryBudget::stats),
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

    fn dispatch(&mut self, ev: Ev) {
        let i = ev.client as usize;
        match ev.what {
            What::FaultStart(f) => return self.fault_start(self.sc.faults.faults()[f as usize]),
            What::FaultEnd(f) => return self.fault_end(self.sc.faults.faults()[f as usize]),
            What::Leave(server) => return self.leave(server),
            What::Move => {
                let drain = self
                    .sc
                    .registry
                    .map(|r| r.departure.drain)
                    .unwrap_or_default();
                let departed = self.clients[i]
                    .conn
                    .is_some_and(|c| !self.present[usize::from(c.server)]);
                if departed {
                    self.core_events += 1;
                    let _ = self.clients[i].session.move_off(self.now, drain);
                }
            }
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
                Action::Resolve { epoch } => self.resolve(i, epoch),
                Action::Dial { epoch, addr, .. } => self.dial(i, epoch, addr),
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
}
