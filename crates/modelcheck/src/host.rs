//! The checked host: one real [`Session`], the peer model and the network between them.
//!
//! [`Host::apply`] performs one model [`Act`] the way an adapter would (answering the
//! session's actions, moving bytes, advancing time, issuing user commands), drains
//! [`Session::poll`] until `Wait`, and checks every action, notification and unit received
//! against the invariants of DESIGN.md. A broken invariant is recorded as a [`Violation`]
//! (never a panic of the host's own, so a violation ends the path cleanly); a panic of the
//! core is caught by the model and reported as invariant 1.
//!
//! Everything the host knows besides the session lives in [`Mirror`], which is plain,
//! hashable data: together with the session's observable views it is the state's
//! fingerprint (see the crate docs for why that is sound for what it reports).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use redial_core::proto::nats::{self, Nats};
use redial_core::proto::resp::{self, Resp};
use redial_core::{
    Action, Addr, Backoff, CloseMode, Config, Delivery, DisconnectReason, Epoch, GiveUp,
    GiveUpWhen, Handled, Heartbeat, InboundLimits, Input, Instant, Jitter, MsgId, NetError,
    Notification, Outcome, Protocol, QueueLimits, Received, Session, State, SubId,
};

use crate::peer::{self, Meaning, Peer, Proto, Unit, CHANNEL, INBOX};
use crate::record::Recording;

/// The one address the resolver answers.
const ADDR: Addr = Addr::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6379));

/// What the session handed out for one unit: reply id, subscription, body, refused, message.
type Got = (Option<MsgId>, Option<SubId>, Vec<u8>, bool, bool);

fn shown(g: Option<&Got>) -> String {
    match g {
        None => "nothing".into(),
        Some((Some(id), _, body, refused, _)) => format!(
            "a reply to {id:?} {:?}{}",
            String::from_utf8_lossy(body),
            if *refused { " (refused)" } else { "" }
        ),
        Some((None, sub, body, _, true)) => {
            format!("a message for {sub:?} {:?}", String::from_utf8_lossy(body))
        }
        Some(_) => "an unknown unit".into(),
    }
}

/// How a dial fails: one transient class and one permanent one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DialError {
    /// Connection refused: retried after a backoff delay.
    Refused,
    /// An invalid address: permanent, never retried.
    Invalid,
}

/// How many of the next bytes arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feed {
    /// Everything the peer has sent.
    All,
    /// Exactly the next whole unit.
    Unit,
    /// The next unit up to the end of its first line (a bulk or `MSG` header without body).
    Head,
    /// The next unit but its last byte (CR arrived, LF did not).
    Cut,
}

/// One step of the model: what the network, the peer, time or the user does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    /// The outstanding dial succeeds.
    DialOk,
    /// The outstanding dial fails.
    DialFail(DialError),
    /// The outstanding transmit's bytes reach the peer; its completion is not reported yet.
    Deliver,
    /// The outstanding transmit completes (its bytes reach the peer if they had not).
    Written,
    /// The oldest socket the core asked to close is fully closed.
    Closed,
    /// The peer answers its oldest in-order request.
    Reply,
    /// The NATS peer answers its `i`-th outstanding request (by key, any order).
    Answer(u8),
    /// The peer sends an out-of-band message for the user's subscription.
    Push,
    /// The NATS server sends a `PING` of its own.
    PeerPing,
    /// Bytes from the peer arrive.
    Feed(Feed),
    /// The peer closes the connection (EOF); bytes it had not delivered are lost.
    Eof,
    /// The connection is reset (an I/O error).
    Reset,
    /// The peer restarts: EOF, its unsent replies lost, and the next dial refused.
    Restart,
    /// The peer goes silent on this connection: it reads, answers nothing, sends nothing.
    Silence,
    /// A late EOF of the previous connection (a stale epoch).
    Stale,
    /// Time advances to the next deadline the core asked for.
    Jump,
    /// The user enqueues a message (NATS: a publish).
    Enqueue(Delivery),
    /// The user sends a request (NATS, through the inbox).
    Request,
    /// The user subscribes to `ch0`.
    Subscribe,
    /// The user closes at once.
    CloseNow,
    /// The user closes gracefully, draining for 300 ms.
    CloseGraceful,
    /// The user asks for a reconnect now.
    ReconnectNow,
}

/// Bounds of the explored space and which kinds of steps exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// User messages (enqueues and requests).
    pub messages: u8,
    /// Faults: dial failures, EOFs, resets, restarts, silences (each can cost a reconnect).
    pub faults: u8,
    /// Unforced time jumps (jumps are always allowed while the session is not connected or
    /// the peer is silent: recovery needs time, and give-up bounds it).
    pub jumps: u8,
    /// Out-of-band pushes and server pings.
    pub pushes: u8,
    /// Whether the user subscribes.
    pub subscribe: bool,
    /// User closes and reconnect requests.
    pub user_ops: u8,
    /// Stale inputs.
    pub stale: u8,
    /// Whether bytes arrive split (`Head`, `Cut`) and one unit at a time.
    pub splits: bool,
    /// Whether a transmit's bytes can reach the peer before its completion is reported.
    pub early_delivery: bool,
    /// Whether old sockets close by themselves at once (fewer interleavings).
    pub auto_close: bool,
    /// Whether the peer answers the handshake and its bytes arrive by themselves.
    pub auto_handshake: bool,
}

impl Limits {
    /// The bounds of the CI test: small enough for ~2 minutes, deep enough for the planted bugs.
    pub const CI: Limits = Limits {
        messages: 2,
        faults: 2,
        jumps: 1,
        pushes: 0,
        subscribe: false,
        user_ops: 0,
        stale: 0,
        splits: false,
        early_delivery: false,
        auto_close: true,
        auto_handshake: true,
    };

    /// The bounds of the deep run.
    pub const DEEP: Limits = Limits {
        messages: 3,
        faults: 2,
        jumps: 2,
        pushes: 1,
        subscribe: true,
        user_ops: 1,
        stale: 1,
        splits: true,
        early_delivery: true,
        auto_close: false,
        auto_handshake: false,
    };
}

/// Which property a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prop {
    /// Invariant 1: no input sequence makes the core panic.
    NoPanic,
    /// Invariant 2: at most one current connection; stale inputs change nothing.
    OneConnection,
    /// Invariant 3: no dial before its backoff deadline or after close; delays within the cap.
    Backoff,
    /// Invariant 4: one outcome each; never rewritten unless idempotent; order holds.
    Ledger,
    /// Every reply credited to the request it answers; heartbeats never taken for data or the
    /// reverse; pushes to their subscription.
    Attribution,
    /// The peer executed each message within [delivered, delivered + in doubt]; a
    /// non-idempotent message at most once.
    Executed,
    /// Invariant 5: a silent peer is declared dead by interval + timeout.
    Liveness,
    /// An honest peer's bytes never break the connection; the session writes only what a
    /// server understands.
    Honest,
}

impl Prop {
    /// Every property, in bit order.
    pub const ALL: [Prop; 8] = [
        Prop::NoPanic,
        Prop::OneConnection,
        Prop::Backoff,
        Prop::Ledger,
        Prop::Attribution,
        Prop::Executed,
        Prop::Liveness,
        Prop::Honest,
    ];

    /// Its bit in [`Mirror::broken`].
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A broken property and what happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    /// Which property.
    pub prop: Prop,
    /// What happened, in words.
    pub what: String,
}

/// A message the user enqueued and the session accepted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sent {
    /// Its bytes.
    pub payload: Vec<u8>,
    /// Its reply (Redis).
    pub reply: Vec<u8>,
    /// How it may be resent.
    pub delivery: Delivery,
    /// Times written.
    pub writes: u8,
    /// Times the peer executed it.
    pub executed: u8,
    /// Its outcome, once it has one.
    pub outcome: Option<Outcome>,
    /// Whether its reply was handed out.
    pub replied: bool,
}

/// Everything the host knows besides the session itself: plain, hashable data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mirror {
    /// The latest attempt's epoch.
    pub latest: Epoch,
    /// The resolution outstanding, if any (answered at once).
    pub resolve: Option<Epoch>,
    /// The dial outstanding, if any.
    pub dial: Option<Epoch>,
    /// The transmit outstanding: its epoch, bytes, and whether the peer read them.
    pub transmit: Option<(Epoch, Vec<u8>, bool)>,
    /// Sockets the core asked to close, not yet closed.
    pub closing: VecDeque<Epoch>,
    /// The connection the peer is on (`Epoch::NONE`: none).
    pub peer_epoch: Epoch,
    /// The peer's state on that connection.
    pub peer: Peer,
    /// The next dial is refused (the peer is restarting).
    pub restarting: bool,
    /// Units sent by the peer, not yet handed to the session in full.
    pub to_session: VecDeque<Unit>,
    /// Bytes of the head of `to_session` already handed to the session.
    pub head_fed: usize,
    /// Units handed to the session in full and not yet decoded.
    pub unread: VecDeque<Unit>,
    /// How much of the first of `unread` the session has already used.
    pub unread_off: usize,
    /// The host's read buffer (bytes handed to `handle_read` and not used), as a driver keeps it.
    pub kept: Vec<u8>,
    /// The connection `kept` belongs to.
    pub kept_epoch: Epoch,
    /// The current connection and the last instant its peer was heard from.
    pub conn: Option<(Epoch, Instant)>,
    /// The connection that went silent, if any.
    pub silent: Option<Epoch>,
    /// The earliest instant the next attempt may start, unless the user asked for it now.
    pub earliest_retry: Option<Instant>,
    /// The user asked for a reconnect: the next attempt may start at once.
    pub skip_backoff: bool,
    /// The session gave up or was closed.
    pub ended: bool,
    /// The user closed the session (it may still be draining).
    pub user_closed: bool,
    /// Accepted messages.
    pub sent: BTreeMap<MsgId, Sent>,
    /// Payload -> message.
    pub by_payload: BTreeMap<Vec<u8>, MsgId>,
    /// Messages made so far (accepted or not): numbers their payloads.
    pub made: u8,
    /// The user's subscription.
    pub sub: Option<SubId>,
    /// Budgets used: faults, unforced jumps, pushes, user ops, stale inputs.
    pub used: [u8; 5],
    /// The last message delivered (order).
    pub last_delivered: Option<MsgId>,
    /// Broken properties (bits of [`Prop::bit`]).
    pub broken: u16,
}

impl Default for Mirror {
    fn default() -> Self {
        Mirror {
            latest: Epoch::NONE,
            resolve: None,
            dial: None,
            transmit: None,
            closing: VecDeque::new(),
            peer_epoch: Epoch::NONE,
            peer: Peer::default(),
            restarting: false,
            to_session: VecDeque::new(),
            head_fed: 0,
            unread: VecDeque::new(),
            unread_off: 0,
            kept: Vec::new(),
            kept_epoch: Epoch::NONE,
            conn: None,
            silent: None,
            earliest_retry: None,
            skip_backoff: false,
            ended: false,
            user_closed: false,
            sent: BTreeMap::new(),
            by_payload: BTreeMap::new(),
            made: 0,
            sub: None,
            used: [0; 5],
            last_delivered: None,
            broken: 0,
        }
    }
}

/// The checked host around one real session.
pub struct Host {
    proto: Proto,
    lim: Limits,
    cfg: Config,
    s: Session<Box<dyn Protocol>>,
    now: Instant,
    /// The host's state besides the session.
    pub m: Mirror,
    /// The first violation found, in words.
    pub violations: Vec<Violation>,
    /// The trace of core calls, when recording.
    pub rec: Option<Recording>,
}

/// The configuration every model uses: no jitter (the fingerprint then covers the backoff),
/// short deadlines, at most 3 failures in a row.
pub fn config() -> Config {
    let ms = Duration::from_millis;
    let mut c = Config::default()
        .with_backoff(
            Backoff::new()
                .with_initial(ms(100))
                .with_multiplier(2.0)
                .with_cap(ms(400))
                .with_jitter(Jitter::None),
        )
        .with_give_up(GiveUp {
            max_failures: Some(3),
            max_elapsed: None,
            when: GiveUpWhen::Either,
        })
        .with_heartbeat(Some(Heartbeat {
            interval: ms(1000),
            timeout: ms(500),
            adaptive_floor: None,
        }))
        .with_stable_after(ms(0))
        .with_connect_timeout(ms(300))
        .with_close_timeout(ms(100))
        .with_inbound(InboundLimits {
            max_messages: 64,
            max_bytes: 1 << 16,
        })
        .with_max_replays(1)
        .with_queue(QueueLimits {
            max_messages: 8,
            max_bytes: 4096,
            max_message: 1024,
            overflow: redial_core::Overflow::Reject,
        })
        .with_seed(7);
    c.batch_messages = 4;
    c.batch_bytes = 4096;
    c
}

fn protocol(proto: Proto) -> Box<dyn Protocol> {
    match proto {
        Proto::Redis => Box::new(Resp::new().resp3()),
        Proto::Nats => Box::new(Nats::new().with_inbox(INBOX)),
    }
}

const FAULTS: usize = 0;
const JUMPS: usize = 1;
const PUSHES: usize = 2;
const USER: usize = 3;
const STALE: usize = 4;

impl Host {
    /// A fresh session at time zero, drained once (its first attempt starts).
    pub fn new(proto: Proto, lim: Limits, record: bool) -> Host {
        let cfg = config();
        let s = Session::new(cfg.clone(), protocol(proto), Instant::ZERO)
            .expect("the model's config is valid");
        let mut rec = record.then(Recording::default);
        if let Some(r) = rec.as_mut() {
            r.start(&cfg, proto);
        }
        let mut h = Host {
            proto,
            lim,
            cfg,
            s,
            now: Instant::ZERO,
            m: Mirror::default(),
            violations: Vec::new(),
            rec,
        };
        h.drain();
        h
    }

    fn violate(&mut self, prop: Prop, what: String) {
        if self.m.broken & prop.bit() == 0 {
            self.m.broken |= prop.bit();
            self.violations.push(Violation { prop, what });
        }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The session (read-only).
    pub fn session(&self) -> &Session<Box<dyn Protocol>> {
        &self.s
    }

    // ----- the core calls, recorded -----

    fn input(&mut self, input: Input<'_>) -> Handled {
        if let Some(r) = self.rec.as_mut() {
            r.input(self.now, &input);
        }
        self.s.handle_input(self.now, input)
    }

    /// Polls until `Wait`, checking every action; answers resolutions at once.
    fn drain(&mut self) -> Vec<Action> {
        let mut round = Vec::new();
        for _ in 0..64 {
            for _ in 0..1000 {
                let a = self.s.poll(self.now);
                if let Some(r) = self.rec.as_mut() {
                    r.poll(self.now, &a);
                }
                if let Action::Wait { until } = a {
                    if !self.m.ended && self.s.connection().is_none() && until.is_none() {
                        self.violate(
                            Prop::Liveness,
                            "an unconnected live session has no deadline".into(),
                        );
                    }
                    break;
                }
                self.check(&a);
                round.push(a);
            }
            // A healthy resolver answers at once; an old socket closes at once if so configured.
            if let Some(epoch) = self.m.resolve.take() {
                let _ = self.input(Input::Resolved {
                    epoch,
                    addrs: &[ADDR],
                });
                continue;
            }
            if self.lim.auto_close {
                if let Some(epoch) = self.m.closing.pop_front() {
                    let _ = self.input(Input::Closed { epoch });
                    continue;
                }
            }
            if self.lim.auto_handshake && self.auto_handshake_step() {
                continue;
            }
            break;
        }
        self.check_liveness();
        round
    }

    /// With `auto_handshake`, the handshake runs by itself: the transmit carrying it completes,
    /// the peer answers it and its answer is read. Returns whether it did a step.
    fn auto_handshake_step(&mut self) -> bool {
        if self.s.state() != State::Connecting || self.s.reading().is_none() {
            return false;
        }
        if self
            .m
            .transmit
            .as_ref()
            .is_some_and(|t| Some(t.0) == self.s.reading())
        {
            self.act_written();
            return true;
        }
        if !self.live_peer() || self.m.peer.silent {
            return false;
        }
        let handshake_reply = matches!(self.m.peer.fifo.front(), Some(peer::Req::Hello))
            || (self.proto == Proto::Nats
                && matches!(self.m.peer.fifo.front(), Some(peer::Req::Ping)));
        if handshake_reply {
            self.act_reply();
            return true;
        }
        if !self.m.to_session.is_empty() {
            self.feed(Feed::All);
            return true;
        }
        false
    }

    fn check(&mut self, a: &Action) {
        let now = self.s.now();
        let cap = self.cfg.backoff.cap;
        match a {
            Action::Resolve { epoch } => {
                if self.m.ended {
                    self.violate(
                        Prop::Backoff,
                        format!("resolve {epoch:?} after give-up or close"),
                    );
                }
                if *epoch <= self.m.latest {
                    self.violate(
                        Prop::OneConnection,
                        format!("epoch {epoch:?} does not grow"),
                    );
                }
                self.m.latest = *epoch;
                if let Some(t) = self.m.earliest_retry.take() {
                    if !self.m.skip_backoff && now < t {
                        self.violate(
                            Prop::Backoff,
                            format!("attempt at {now:?} before its backoff deadline {t:?}"),
                        );
                    }
                }
                self.m.skip_backoff = false;
                self.m.resolve = Some(*epoch);
            }
            Action::Dial { epoch, .. } => {
                if self.m.ended {
                    self.violate(
                        Prop::Backoff,
                        format!("dial {epoch:?} after give-up or close"),
                    );
                }
                if *epoch != self.m.latest {
                    self.violate(
                        Prop::OneConnection,
                        format!("dial of a stale epoch {epoch:?}"),
                    );
                }
                self.m.dial = Some(*epoch);
            }
            Action::Transmit { epoch } => {
                if self.s.reading() != Some(*epoch) {
                    self.violate(
                        Prop::OneConnection,
                        format!("transmit on a stale socket {epoch:?}"),
                    );
                }
                if self.m.transmit.is_some() {
                    self.violate(
                        Prop::OneConnection,
                        "a second transmit before the first was written".into(),
                    );
                }
                let mut bytes = Vec::new();
                self.s.encode_transmit(&mut bytes);
                if let Some(r) = self.rec.as_mut() {
                    r.transmit();
                }
                self.written_messages(*epoch, &bytes);
                self.m.transmit = Some((*epoch, bytes, false));
            }
            Action::Close { epoch, .. } => {
                if self.m.transmit.as_ref().is_some_and(|t| t.0 == *epoch) {
                    self.m.transmit = None;
                }
                if self.m.dial == Some(*epoch) {
                    self.m.dial = None;
                }
                if self.m.resolve == Some(*epoch) {
                    self.m.resolve = None;
                }
                if *epoch == self.m.peer_epoch {
                    self.peer_gone();
                }
                self.m.closing.push_back(*epoch);
            }
            Action::Notify(n) => self.notified(n, now, cap),
            _ => {}
        }
    }

    /// The peer's side of the connection is gone: what it had not sent is lost.
    fn peer_gone(&mut self) {
        self.m.peer_epoch = Epoch::NONE;
        self.m.peer = Peer::default();
        self.m.to_session.clear();
        self.m.head_fed = 0;
        self.m.unread.clear();
    }

    /// Which messages a transmit carries, in order: counts writes, checks order.
    fn written_messages(&mut self, epoch: Epoch, bytes: &[u8]) {
        let ids = self.messages_in(bytes);
        let mut last: Option<MsgId> = None;
        for id in ids {
            let Some(sent) = self.m.sent.get_mut(&id) else {
                continue;
            };
            sent.writes += 1;
            let (writes, delivery, outcome) = (sent.writes, sent.delivery, sent.outcome);
            if outcome.is_some() {
                self.violate(
                    Prop::Ledger,
                    format!("{id:?} written after its outcome {outcome:?}"),
                );
            }
            if let Some(l) = last {
                if id <= l {
                    self.violate(
                        Prop::Ledger,
                        format!("order broken on {epoch:?}: {id:?} after {l:?}"),
                    );
                }
            }
            last = Some(id);
            let limit = match delivery {
                Delivery::Idempotent => 1 + self.cfg.max_replays,
                _ => 1,
            };
            if writes > limit {
                self.violate(
                    Prop::Ledger,
                    format!("{id:?} ({delivery:?}) written {writes} times"),
                );
            }
        }
    }

    fn messages_in(&self, bytes: &[u8]) -> Vec<MsgId> {
        let mut probe = Peer::default();
        let by = &self.m.by_payload;
        match self.proto {
            Proto::Redis => {
                probe
                    .read_redis(bytes, &|w| by.get(w).map(|id| (*id, Vec::new())))
                    .executed
            }
            Proto::Nats => {
                probe.sids.insert(0, Vec::new());
                probe.pings_owed = u8::MAX;
                probe.read_nats(bytes, &|w| by.get(w).copied()).executed
            }
        }
    }

    fn notified(&mut self, n: &Notification, now: Instant, cap: Duration) {
        match n {
            Notification::AttemptFailed {
                next_delay: Some(d),
                ..
            } => {
                if *d > cap {
                    self.violate(Prop::Backoff, format!("delay {d:?} above cap {cap:?}"));
                }
                self.m.earliest_retry = Some(now + *d);
                self.m.skip_backoff = false;
            }
            Notification::Disconnected {
                epoch,
                reason,
                next_delay,
                ..
            } => {
                if self.m.conn.map(|c| c.0) != Some(*epoch) {
                    self.violate(
                        Prop::OneConnection,
                        format!("disconnect of a non-current connection {epoch:?}"),
                    );
                }
                if let DisconnectReason::Protocol(e) = reason {
                    self.violate(
                        Prop::Honest,
                        format!("an honest peer's bytes broke {epoch:?}: {e}"),
                    );
                }
                if matches!(
                    reason,
                    DisconnectReason::HeartbeatTimeout { .. } | DisconnectReason::ReadIdle { .. }
                ) && self.m.silent != Some(*epoch)
                {
                    // Allowed (a peer that did not answer in time is silent), but only after its deadline.
                    if let Some((_, last)) = self.m.conn {
                        let hb = self.cfg.heartbeat.expect("configured");
                        if now < last + hb.interval + hb.timeout {
                            self.violate(
                                Prop::Liveness,
                                format!(
                                    "{epoch:?} declared dead at {now:?}, heard from at {last:?}"
                                ),
                            );
                        }
                    }
                }
                self.m.conn = None;
                if let Some(d) = next_delay {
                    if *d > cap {
                        self.violate(Prop::Backoff, format!("delay {d:?} above cap {cap:?}"));
                    }
                    self.m.earliest_retry = Some(now + *d);
                    self.m.skip_backoff = false;
                }
            }
            Notification::Connected { epoch, .. } => {
                if self.m.conn.is_some() {
                    self.violate(
                        Prop::OneConnection,
                        format!("two current connections: {:?} and {epoch:?}", self.m.conn),
                    );
                }
                if *epoch != self.m.latest {
                    self.violate(
                        Prop::OneConnection,
                        format!("connected on a stale epoch {epoch:?}"),
                    );
                }
                self.m.conn = Some((*epoch, now));
            }
            Notification::GaveUp { .. } => self.m.ended = true,
            Notification::StateChanged {
                to: State::Closed, ..
            } => self.m.ended = true,
            Notification::Outcome { id, outcome, .. } => self.outcome(*id, *outcome),
            _ => {}
        }
    }

    fn outcome(&mut self, id: MsgId, outcome: Outcome) {
        let Some(sent) = self.m.sent.get_mut(&id) else {
            // A message rejected at enqueue gets its outcome before it is known here.
            return;
        };
        let prev = sent.outcome.replace(outcome);
        let (writes, executed, replied) = (sent.writes, sent.executed, sent.replied);
        if let Some(prev) = prev {
            self.violate(
                Prop::Ledger,
                format!("{id:?} got a second outcome {outcome:?} after {prev:?}"),
            );
            return;
        }
        match outcome {
            Outcome::Delivered => {
                if writes == 0 {
                    self.violate(Prop::Ledger, format!("{id:?} delivered, never written"));
                }
                if executed == 0 {
                    self.violate(
                        Prop::Executed,
                        format!("{id:?} delivered but the peer never executed it"),
                    );
                }
                let replies = self.proto == Proto::Redis
                    || self.m.sent[&id]
                        .payload
                        .windows(INBOX.len())
                        .any(|w| w == INBOX.as_bytes());
                if replies && !replied {
                    self.violate(
                        Prop::Attribution,
                        format!("{id:?} delivered without its reply"),
                    );
                }
                if self.proto == Proto::Redis {
                    if let Some(last) = self.m.last_delivered {
                        if id < last {
                            self.violate(Prop::Ledger, format!("{id:?} delivered after {last:?}"));
                        }
                    }
                }
                self.m.last_delivered = Some(id);
            }
            Outcome::InDoubt => {
                if writes == 0 {
                    self.violate(Prop::Ledger, format!("{id:?} in doubt, never written"));
                }
            }
            Outcome::Abandoned(_) => {
                if writes > 0 {
                    self.violate(
                        Prop::Ledger,
                        format!("{id:?} abandoned after being written"),
                    );
                }
                if executed > 0 {
                    self.violate(Prop::Executed, format!("{id:?} abandoned but executed"));
                }
            }
            Outcome::Rejected(_) => {}
        }
    }

    /// Invariant 5: a peer silent for interval + timeout is dead by then.
    fn check_liveness(&mut self) {
        let Some((epoch, last)) = self.m.conn else {
            return;
        };
        let Some(hb) = self.cfg.heartbeat else { return };
        let deadline = last + hb.interval + hb.timeout;
        if self.s.now() >= deadline && self.s.connection() == Some(epoch) && self.s.wants_read() {
            self.violate(
                Prop::Liveness,
                format!(
                    "silent since {last:?}, still connected at {:?} (deadline {deadline:?})",
                    self.s.now()
                ),
            );
        }
    }

    // ----- the network and the peer -----

    /// The peer reads a transmit's bytes.
    fn peer_reads(&mut self, epoch: Epoch, bytes: &[u8]) {
        if epoch != self.m.peer_epoch || self.s.reading() != Some(epoch) {
            return; // That socket is gone: its bytes went nowhere.
        }
        let by = self.m.by_payload.clone();
        let sent = self.m.sent.clone();
        let read = match self.proto {
            Proto::Redis => self.m.peer.read_redis(bytes, &|w| {
                by.get(w).map(|id| (*id, sent[id].reply.clone()))
            }),
            Proto::Nats => self.m.peer.read_nats(bytes, &|w| by.get(w).copied()),
        };
        if let Some(g) = read.garbage {
            self.violate(
                Prop::Honest,
                format!("the peer cannot read what the session wrote: {g}"),
            );
        }
        let mut seen = BTreeSet::new();
        for id in read.executed {
            if !seen.insert(id) {
                continue; // a batch executes once per write
            }
            let s = self.m.sent.get_mut(&id).expect("ours");
            s.executed += 1;
            let (n, d) = (s.executed, s.delivery);
            let limit = if d == Delivery::Idempotent {
                1 + self.cfg.max_replays
            } else {
                1
            };
            if n > limit {
                self.violate(
                    Prop::Executed,
                    format!("{id:?} ({d:?}) executed {n} times by the peer"),
                );
            }
        }
    }

    fn act_written(&mut self) {
        let Some((epoch, bytes, delivered)) = self.m.transmit.take() else {
            return;
        };
        if !delivered {
            self.peer_reads(epoch, &bytes);
        }
        let _ = self.input(Input::Written { epoch });
        self.drain();
    }

    fn act_reply(&mut self) {
        if let Some(u) = self.m.peer.answer_next(self.proto) {
            self.m.to_session.push_back(u);
        }
    }

    /// Hands the next bytes to the session as a driver would, and checks what it made of them.
    fn feed(&mut self, how: Feed) {
        let Some(epoch) = self.s.reading().filter(|e| *e == self.m.peer_epoch) else {
            return;
        };
        if !self.s.wants_read() {
            return;
        }
        let mut fresh = Vec::new();
        match how {
            Feed::All => {
                while let Some(u) = self.m.to_session.pop_front() {
                    fresh.extend_from_slice(&u.bytes[self.m.head_fed..]);
                    self.m.head_fed = 0;
                    self.m.unread.push_back(u);
                }
            }
            Feed::Unit => {
                if let Some(u) = self.m.to_session.pop_front() {
                    fresh.extend_from_slice(&u.bytes[self.m.head_fed..]);
                    self.m.head_fed = 0;
                    self.m.unread.push_back(u);
                }
            }
            Feed::Head | Feed::Cut => {
                let Some(u) = self.m.to_session.front() else {
                    return;
                };
                let upto = match how {
                    Feed::Head => u.first_line().unwrap_or(u.bytes.len()),
                    _ => u.bytes.len() - 1,
                };
                if upto <= self.m.head_fed {
                    return;
                }
                fresh.extend_from_slice(&u.bytes[self.m.head_fed..upto]);
                self.m.head_fed = upto;
            }
        }
        if fresh.is_empty() {
            return;
        }
        if let Some(c) = self.m.conn.as_mut().filter(|c| c.0 == epoch) {
            c.1 = self.now.max(self.s.now());
        }
        self.read(epoch, fresh);
    }

    fn read(&mut self, epoch: Epoch, fresh: Vec<u8>) {
        if epoch != self.m.kept_epoch {
            self.m.kept.clear();
            self.m.kept_epoch = epoch;
        }
        let had = self.m.kept.len();
        self.m.kept.extend_from_slice(&fresh);
        let buf = std::mem::take(&mut self.m.kept);
        let mut got: Vec<Got> = Vec::new();
        let used = self
            .s
            .handle_read(self.now, epoch, &buf, fresh.len(), &mut |r| match r {
                Received::Reply { id, body, refused } => {
                    got.push((Some(id), None, body.to_vec(), refused, false))
                }
                Received::Message { sub, body, .. } => {
                    got.push((None, sub, body.to_vec(), false, true))
                }
                _ => got.push((None, None, Vec::new(), false, false)),
            });
        if let Some(r) = self.rec.as_mut() {
            r.read(self.now, epoch, had, &fresh, used.min(buf.len()), got.len());
        }
        let used = used.min(buf.len());
        self.m.kept = buf[used..].to_vec();
        // Which whole units the session used, and what each must have given.
        let mut want = Vec::new();
        let mut left = used + std::mem::take(&mut self.m.unread_off);
        while let Some(u) = self.m.unread.front() {
            if u.bytes.len() > left {
                break;
            }
            left -= u.bytes.len();
            want.push(self.m.unread.pop_front().expect("front"));
        }
        if left > 0 {
            if self.m.unread.is_empty() {
                self.violate(
                    Prop::Honest,
                    format!("the session used {left} bytes of a unit it had not whole"),
                );
            }
            self.m.unread_off = left;
        }
        // A read that ended the connection may stop short; one that did not must not.
        let still = self.s.reading() == Some(epoch);
        self.compare(&want, &got, !still);
        let (m, b) = (got.len(), got.iter().map(|g| g.2.len()).sum());
        if m > 0 {
            if let Some(r) = self.rec.as_mut() {
                r.taken(self.now, m, b);
            }
            self.s.inbound_taken(self.now, m, b);
        }
        self.drain();
    }

    fn compare(&mut self, want: &[Unit], got: &[Got], may_stop: bool) {
        let mut got = got.iter().peekable();
        for u in want {
            if may_stop && got.peek().is_none() {
                return;
            }
            match &u.meaning {
                Meaning::Silent => {}
                Meaning::Reply(id) => match got.next() {
                    Some((Some(g), _, body, refused, _))
                        if g == id && *body == u.body && !refused =>
                    {
                        if let Some(s) = self.m.sent.get_mut(id) {
                            s.replied = true;
                        }
                    }
                    other => {
                        self.violate(
                            Prop::Attribution,
                            format!(
                                "the reply to {id:?} ({:?}) came out as {}",
                                String::from_utf8_lossy(&u.body),
                                shown(other)
                            ),
                        );
                        return;
                    }
                },
                Meaning::Push => match got.next() {
                    Some((None, Some(sub), body, _, true))
                        if Some(*sub) == self.m.sub && *body == u.body => {}
                    other => {
                        self.violate(
                            Prop::Attribution,
                            format!(
                                "a push ({:?}) came out as {}",
                                String::from_utf8_lossy(&u.body),
                                shown(other)
                            ),
                        );
                        return;
                    }
                },
            }
        }
        if let Some(extra) = got.next() {
            let what = want
                .iter()
                .map(|u| format!("{:?}", String::from_utf8_lossy(&u.bytes)))
                .collect::<Vec<_>>();
            self.violate(
                Prop::Attribution,
                format!(
                    "{} handed out for units {what:?} (a heartbeat or handshake taken for data?)",
                    shown(Some(extra))
                ),
            );
        }
    }

    // ----- what is possible next -----

    fn live_peer(&self) -> bool {
        self.m.peer_epoch != Epoch::NONE && self.s.reading() == Some(self.m.peer_epoch)
    }

    /// The steps possible in this state, in a fixed order.
    pub fn enabled(&self) -> Vec<Act> {
        let mut v = Vec::new();
        if self.m.broken != 0 {
            return v;
        }
        let lim = &self.lim;
        let fault = self.m.used[FAULTS] < lim.faults;
        if self.m.dial.is_some() {
            if !self.m.restarting {
                v.push(Act::DialOk);
            }
            if self.m.restarting {
                v.push(Act::DialFail(DialError::Refused));
            } else if fault {
                v.push(Act::DialFail(DialError::Refused));
                v.push(Act::DialFail(DialError::Invalid));
            }
        }
        if let Some((_, _, delivered)) = &self.m.transmit {
            if lim.early_delivery && !delivered {
                v.push(Act::Deliver);
            }
            v.push(Act::Written);
        }
        if !self.m.closing.is_empty() {
            v.push(Act::Closed);
        }
        let live = self.live_peer();
        if live && !self.m.peer.silent {
            if !self.m.peer.fifo.is_empty() {
                v.push(Act::Reply);
            }
            for i in 0..self.m.peer.requests.len().min(3) {
                v.push(Act::Answer(i as u8));
            }
            if self.m.used[PUSHES] < lim.pushes {
                let mut probe = self.m.peer.clone();
                if probe.push(self.proto, 0).is_some() {
                    v.push(Act::Push);
                }
                if self.proto == Proto::Nats && self.s.state() == State::Connected {
                    v.push(Act::PeerPing);
                }
            }
        }
        if live && !self.m.to_session.is_empty() && self.s.wants_read() {
            v.push(Act::Feed(Feed::All));
            if lim.splits {
                if self.m.to_session.len() > 1 {
                    v.push(Act::Feed(Feed::Unit));
                }
                let head = &self.m.to_session[0];
                if head.first_line().is_some_and(|n| n > self.m.head_fed) {
                    v.push(Act::Feed(Feed::Head));
                }
                if head.bytes.len() - 1 > self.m.head_fed {
                    v.push(Act::Feed(Feed::Cut));
                }
            }
        }
        if live && fault {
            v.push(Act::Eof);
            v.push(Act::Reset);
            v.push(Act::Restart);
            if !self.m.peer.silent {
                v.push(Act::Silence);
            }
        }
        if self.m.used[STALE] < lim.stale && self.stale_epoch().is_some() {
            v.push(Act::Stale);
        }
        if let Some(t) = self.s.next_deadline() {
            let forced = self.s.state() != State::Connected
                || self
                    .m
                    .silent
                    .is_some_and(|e| self.s.connection() == Some(e));
            if t > self.now && (forced || self.m.used[JUMPS] < lim.jumps) {
                v.push(Act::Jump);
            }
        }
        if self.m.made < lim.messages {
            v.push(Act::Enqueue(Delivery::AtMostOnce));
            v.push(Act::Enqueue(Delivery::Idempotent));
            if self.proto == Proto::Nats {
                v.push(Act::Request);
            }
        }
        if lim.subscribe && self.m.sub.is_none() && !self.m.ended && !self.m.user_closed {
            v.push(Act::Subscribe);
        }
        if self.m.used[USER] < lim.user_ops && !self.m.ended {
            v.push(Act::CloseNow);
            v.push(Act::CloseGraceful);
            v.push(Act::ReconnectNow);
        }
        v
    }

    fn stale_epoch(&self) -> Option<Epoch> {
        let prev = Epoch::from_raw(self.m.latest.get().checked_sub(1)?);
        (prev != Epoch::NONE && self.s.reading() != Some(prev) && self.m.dial != Some(prev))
            .then_some(prev)
    }

    // ----- one step -----

    /// Performs one step and checks everything it caused.
    pub fn apply(&mut self, act: Act) {
        match act {
            Act::DialOk => {
                let Some(epoch) = self.m.dial.take() else {
                    return;
                };
                let was = self.s.reading() == Some(epoch);
                let _ = self.input(Input::DialOk { epoch });
                if !was && self.s.reading() == Some(epoch) {
                    // A fresh server connection.
                    self.m.peer_epoch = epoch;
                    self.m.peer = Peer::default();
                    self.m.to_session.clear();
                    self.m.head_fed = 0;
                    self.m.unread.clear();
                    self.m.to_session.extend(Peer::greeting(self.proto));
                }
                self.drain();
            }
            Act::DialFail(e) => {
                let Some(epoch) = self.m.dial.take() else {
                    return;
                };
                if self.m.restarting {
                    self.m.restarting = false;
                } else {
                    self.m.used[FAULTS] += 1;
                }
                let error = match e {
                    DialError::Refused => NetError::Refused,
                    DialError::Invalid => NetError::InvalidAddress,
                };
                let _ = self.input(Input::DialFailed { epoch, error });
                self.drain();
            }
            Act::Deliver => {
                if let Some((epoch, bytes, delivered)) = self.m.transmit.clone() {
                    if !delivered {
                        self.peer_reads(epoch, &bytes);
                        self.m.transmit = Some((epoch, bytes, true));
                    }
                }
            }
            Act::Written => self.act_written(),
            Act::Closed => {
                if let Some(epoch) = self.m.closing.pop_front() {
                    let _ = self.input(Input::Closed { epoch });
                    self.drain();
                }
            }
            Act::Reply => self.act_reply(),
            Act::Answer(i) => {
                if let Some(u) = self.m.peer.answer_request(usize::from(i)) {
                    self.m.to_session.push_back(u);
                }
            }
            Act::Push => {
                self.m.used[PUSHES] += 1;
                let n = self.m.used[PUSHES];
                if let Some(u) = self.m.peer.push(self.proto, n) {
                    self.m.to_session.push_back(u);
                }
            }
            Act::PeerPing => {
                self.m.used[PUSHES] += 1;
                if let Some(u) = self.m.peer.ping() {
                    self.m.to_session.push_back(u);
                }
            }
            Act::Feed(how) => self.feed(how),
            Act::Eof | Act::Reset | Act::Restart => {
                self.m.used[FAULTS] += 1;
                let epoch = self.m.peer_epoch;
                self.peer_gone();
                if act == Act::Restart {
                    self.m.restarting = true;
                }
                let input = match act {
                    Act::Reset => Input::IoError {
                        epoch,
                        error: NetError::Reset,
                    },
                    _ => Input::Eof { epoch },
                };
                let _ = self.input(input);
                self.drain();
            }
            Act::Silence => {
                self.m.used[FAULTS] += 1;
                self.m.peer.silent = true;
                self.m.silent = Some(self.m.peer_epoch);
                self.m.to_session.clear();
                self.m.head_fed = 0;
            }
            Act::Stale => {
                self.m.used[STALE] += 1;
                let Some(epoch) = self.stale_epoch() else {
                    return;
                };
                let before = self.snapshot();
                let stale0 = self.s.stats().stale_inputs;
                let handled = self.input(Input::Eof { epoch });
                if handled != Handled::Stale || self.s.stats().stale_inputs <= stale0 {
                    self.violate(
                        Prop::OneConnection,
                        format!("a stale EOF of {epoch:?} was not counted as stale"),
                    );
                }
                if before != self.snapshot() {
                    self.violate(
                        Prop::OneConnection,
                        format!("a stale EOF of {epoch:?} changed the session"),
                    );
                }
                for a in self.drain() {
                    let ok = matches!(a, Action::Close { epoch: e, .. } if e == epoch)
                        || matches!(a, Action::Notify(_));
                    if !ok {
                        self.violate(
                            Prop::OneConnection,
                            format!("a stale EOF of {epoch:?} caused {a:?}"),
                        );
                    }
                }
            }
            Act::Jump => {
                if let Some(t) = self.s.next_deadline() {
                    let forced = self.s.state() != State::Connected
                        || self
                            .m
                            .silent
                            .is_some_and(|e| self.s.connection() == Some(e));
                    if !forced {
                        self.m.used[JUMPS] += 1;
                    }
                    self.now = self.now.max(t);
                }
                self.drain();
            }
            Act::Enqueue(d) => self.enqueue(d, false),
            Act::Request => self.enqueue(Delivery::AtMostOnce, true),
            Act::Subscribe => {
                let spec = match self.proto {
                    Proto::Redis => resp::channel(CHANNEL),
                    Proto::Nats => nats::subscription(CHANNEL, None),
                };
                if let Some(r) = self.rec.as_mut() {
                    r.subscribe(self.now, &spec);
                }
                match self.s.subscribe(self.now, spec) {
                    Ok(id) => self.m.sub = Some(id),
                    Err(e) => {
                        self.violate(Prop::Honest, format!("a valid subscription refused: {e}"))
                    }
                }
                self.drain();
            }
            Act::CloseNow | Act::CloseGraceful => {
                self.m.used[USER] += 1;
                self.m.user_closed = true;
                let mode = if act == Act::CloseNow {
                    CloseMode::Immediate
                } else {
                    CloseMode::Graceful {
                        drain: Duration::from_millis(300),
                    }
                };
                if let Some(r) = self.rec.as_mut() {
                    r.close(self.now, mode);
                }
                self.s.close(self.now, mode);
                self.drain();
            }
            Act::ReconnectNow => {
                self.m.used[USER] += 1;
                self.m.skip_backoff = true;
                if let Some(r) = self.rec.as_mut() {
                    r.reconnect(self.now);
                }
                self.s.reconnect_now(self.now);
                self.drain();
            }
        }
        self.check_executed();
    }

    fn enqueue(&mut self, d: Delivery, request: bool) {
        self.m.made += 1;
        let k = u64::from(self.m.made);
        let (payload, reply) = match self.proto {
            Proto::Redis => peer::redis_payload(k),
            Proto::Nats => (peer::nats_payload(k, request), Vec::new()),
        };
        if let Some(r) = self.rec.as_mut() {
            r.enqueue(self.now, &payload, d);
        }
        match self.s.enqueue(self.now, payload.clone(), d) {
            Ok(id) => {
                if self.m.ended || self.m.user_closed {
                    self.violate(Prop::Ledger, "enqueue accepted after close".into());
                }
                self.m.by_payload.insert(payload.clone(), id);
                self.m.sent.insert(
                    id,
                    Sent {
                        payload,
                        reply,
                        delivery: d,
                        writes: 0,
                        executed: 0,
                        outcome: None,
                        replied: false,
                    },
                );
            }
            Err(r) => {
                if !self.m.ended && !self.m.user_closed {
                    self.violate(
                        Prop::Ledger,
                        format!("a message refused by a live session: {:?}", r.reason),
                    );
                }
            }
        }
        self.drain();
    }

    /// Executed within [delivered, delivered + in doubt], per message and in all.
    fn check_executed(&mut self) {
        let mut bad = None;
        let (mut delivered, mut doubt, mut executed) = (0, 0, 0);
        for (id, s) in &self.m.sent {
            if s.delivery != Delivery::AtMostOnce {
                continue;
            }
            executed += u32::from(s.executed);
            match s.outcome {
                Some(Outcome::Delivered) => delivered += 1,
                Some(Outcome::InDoubt) => doubt += 1,
                Some(o) if s.executed > 0 => {
                    bad = Some(format!("{id:?} ended {o:?} but the peer executed it"))
                }
                _ => {}
            }
        }
        let unsettled = self
            .m
            .sent
            .values()
            .filter(|s| s.delivery == Delivery::AtMostOnce && s.outcome.is_none())
            .count() as u32;
        if let Some(b) = bad {
            self.violate(Prop::Executed, b);
        } else if executed < delivered || executed > delivered + doubt + unsettled {
            self.violate(
                Prop::Executed,
                format!("executed {executed} not within [delivered {delivered}, + in doubt {doubt} (+ {unsettled} unsettled)]"),
            );
        }
    }

    // ----- the fingerprint and the obligations -----

    fn snapshot(&self) -> impl PartialEq + std::fmt::Debug + Hash {
        let mut st = self.s.stats();
        st.stale_inputs = 0;
        let stats = format!("{st:?}");
        (
            (
                self.s.state(),
                self.s.connection(),
                self.s.reading(),
                self.s.wants_read(),
            ),
            (
                self.s.queue_len(),
                self.s.queue_bytes(),
                self.s.in_flight(),
                self.s.subscriptions(),
            ),
            (self.s.failures(), self.s.next_deadline()),
            stats,
        )
    }

    /// A 128-bit digest of the session's observable state, the host's mirror and the time.
    pub fn digest(&self) -> u128 {
        let mut a = std::collections::hash_map::DefaultHasher::new();
        let mut b = std::collections::hash_map::DefaultHasher::new();
        0xa5u8.hash(&mut b);
        for h in [&mut a, &mut b] {
            self.snapshot().hash(h);
            self.s.now().hash(h);
            self.now.hash(h);
            self.s.stats().stale_inputs.hash(h);
            self.m.hash(h);
        }
        u128::from(a.finish()) << 64 | u128::from(b.finish())
    }

    /// Every accepted message has its outcome.
    pub fn settled(&self) -> bool {
        self.m.sent.values().all(|s| s.outcome.is_some())
    }

    /// A connection that went silent is still the current one.
    pub fn silent_alive(&self) -> bool {
        self.m.silent.is_some() && self.s.connection() == self.m.silent
    }

    /// The trace recorded so far.
    pub fn recording(&self) -> Option<&Recording> {
        self.rec.as_ref()
    }
}
