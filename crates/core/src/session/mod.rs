//! The session: one long-lived conversation's state machine.
//!
//! | room | what |
//! |---|---|
//! | `mod.rs` | the type, its views and the user's commands |
//! | `lifecycle.rs` | attempts, connecting, losing a connection, giving up, closing |
//! | `connected.rs` | the connection's deadlines: heartbeat, liveness, writes, requests |
//! | `read.rs` | the read side: bytes to units, units to replies, messages and events |
//! | `transmit.rs` | the one encode path: control, heartbeat, subscriptions, messages |
//! | `moving.rs` | leaving an endpoint on purpose; attempts a retry budget refused |

use crate::addr::Addr;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use rand_core::RngCore;

use crate::attribution::Table;
use crate::config::Config;
use crate::epoch::Epoch;
use crate::error::{ConfigError, FrameError, NetError, RejectReason};
use crate::heartbeat::RttEstimator;
use crate::input::{Handled, Input};
use crate::ledger::{Item, Ledger, Settled};
use crate::message::{Batch, Delivery, MsgId, Outcome, Rejected};
use crate::output::{Action, CloseMode, Notification, State};
use crate::proto::Protocol;
use crate::rng::SplitMix64;
use crate::stats::Stats;
use crate::subscription::{SubId, Subs};
use crate::time::Instant;
use crate::timers::{Timer, Timers};

mod connected;
mod lifecycle;
mod moving;
mod read;
mod transmit;

/// Where the session is. [`State`] is the public, coarser view of this.
// An explicit tag: without it the discriminant hides in a niche of `Addr` and every
// `match` on the phase has to decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Waiting out a backoff delay (the retry timer).
    Backoff,
    Resolving {
        epoch: Epoch,
    },
    Dialing {
        epoch: Epoch,
        addr: Addr,
    },
    /// The transport is up; the protocol's handshake runs (still within the connect timer).
    Handshaking {
        epoch: Epoch,
        addr: Addr,
    },
    Connected {
        epoch: Epoch,
        addr: Addr,
    },
    /// The old socket is closing; the next attempt waits for it (or for the close timer), so
    /// the queue is never flushed to a new socket while the old one may still be writing.
    Closing {
        epoch: Epoch,
        /// When the next attempt may start once the socket is closed (the retry timer is
        /// armed only then: a past retry instant in the table would wake the host in a loop).
        retry_at: Instant,
    },
    Closed,
}

/// Our graceful goodbye (WebSocket Close, MQTT `DISCONNECT`) at the end of a drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goodbye {
    /// Not yet due.
    No,
    /// Due: the next transmit carries it.
    Owed,
    /// Written (or being written): waiting for the peer to close, up to the close timer.
    Sent,
    /// The protocol has none: the drain is over.
    None,
}

/// Why a connection ends once the protocol's farewell is written ([`Protocol::farewell_owed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Farewell {
    /// The peer closed the conversation; our answer to its close goes first.
    Peer {
        code: u16,
        then: crate::proto::AfterClose,
    },
    /// The peer broke the grammar; the protocol tells it so first.
    Error(FrameError),
}

/// Per-connection state; reset on every connect.
#[derive(Clone, Copy, Debug)]
struct Conn {
    since: Instant,
    last_read: Instant,
    /// When the last transmit started (the write-idle heartbeat of some protocols).
    last_write: Instant,
    /// A transmit is in progress (asked for, not yet reported written).
    writing: bool,
    /// [`Session::encode_transmit`] ran for the transmit in progress.
    encoded: bool,
    ping_wanted: bool,
    /// The protocol has no heartbeat request of its own.
    no_ping: bool,
    /// Reading is paused since then (the user has not taken what was received).
    paused: Option<Instant>,
    /// The peer closed the conversation: nothing more is written.
    peer_closing: bool,
    goodbye: Goodbye,
    /// The connection ends once the protocol's farewell is written (or the close timer
    /// passes): nothing else is written meanwhile.
    farewell: Option<Farewell>,
    /// The heartbeat interval the peer imposed in its handshake, if any.
    keepalive: Option<Duration>,
    /// Leaving this endpoint ([`Session::move_off`]): nothing new is written, and the
    /// connection ends once drained or by then.
    moving: Option<Instant>,
}

impl Conn {
    fn new(now: Instant) -> Self {
        Conn {
            since: now,
            last_read: now,
            last_write: now,
            writing: false,
            encoded: false,
            ping_wanted: false,
            no_ping: false,
            paused: None,
            peer_closing: false,
            goodbye: Goodbye::No,
            farewell: None,
            keepalive: None,
            moving: None,
        }
    }
}

/// What the user has been handed and not yet taken ([`Session::inbound_taken`]).
#[derive(Clone, Copy, Debug, Default)]
struct InboundUse {
    messages: usize,
    bytes: usize,
}

/// The latest `now` the session accepts (about 292 years after the origin); later instants are
/// clamped to it, leaving room below [`Instant::MAX`] for every deadline computed from `now`.
const END_OF_TIME: Instant = Instant::from_nanos(u64::MAX / 2);
/// Most phase transitions in one round; more would mean a bug, so stop and wait instead of
/// spinning.
const MAX_STEPS: usize = 16;

/// A reconnecting, heartbeating conversation as a pure state machine, speaking protocol `P`.
///
/// Feed it [`Input`]s with [`Session::handle_input`], bytes read with
/// [`Session::handle_read`], and user commands ([`Session::enqueue`],
/// [`Session::subscribe`], [`Session::close`], [`Session::reconnect_now`]); then call
/// [`Session::poll`] until it returns [`Action::Wait`]. Every call takes `now`; the session
/// never reads a clock.
pub struct Session<P = crate::proto::Framed<crate::proto::LineCodec>, R = SplitMix64> {
    /// Shared, immutable: sessions built from one configuration can hold one copy.
    cfg: Arc<Config>,
    proto: P,
    rng: R,
    now: Instant,
    phase: Phase,
    reported: State,
    last_epoch: Epoch,
    failures: u32,
    streak_start: Option<Instant>,
    attempt: u32,
    last_delay: Duration,
    last_error: NetError,
    /// The least delay the peer asked for before the next attempt.
    retry_floor: Option<Duration>,
    rotation: usize,
    ever_connected: bool,
    conn: Conn,
    draining: bool,
    ledger: Ledger,
    table: Table,
    subs: Subs,
    rtt: RttEstimator,
    /// The heartbeat timeout in force (adaptive, when configured).
    hb_timeout: Duration,
    timers: Timers,
    inbound: InboundUse,
    out: VecDeque<Action>,
    stats: Stats,
}

impl<P: Protocol> Session<P, SplitMix64> {
    /// A session speaking `protocol`, with the default jitter generator seeded from
    /// `config.seed`. The first attempt starts at the first [`Session::poll`]. The config is
    /// kept behind an [`Arc`]: pass an `Arc<Config>` to share one copy between many sessions.
    pub fn new(
        config: impl Into<Arc<Config>>,
        protocol: P,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let config = config.into();
        let rng = SplitMix64::new(config.seed);
        Session::with_rng(config, protocol, rng, now)
    }
}

impl<P: Protocol, R: RngCore> Session<P, R> {
    /// A session drawing jitter (and handshake nonces) from `rng`.
    pub fn with_rng(
        config: impl Into<Arc<Config>>,
        protocol: P,
        rng: R,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let cfg = config.into();
        cfg.validate()?;
        protocol.validate()?;
        let now = now.min(END_OF_TIME);
        let mut timers = Timers::default();
        timers.set(Timer::Retry, now);
        Ok(Session {
            hb_timeout: cfg.heartbeat.map_or(Duration::ZERO, |hb| hb.timeout),
            cfg,
            proto: protocol,
            rng,
            now,
            phase: Phase::Backoff,
            reported: State::Disconnected,
            last_epoch: Epoch::NONE,
            failures: 0,
            streak_start: None,
            attempt: 0,
            last_delay: Duration::ZERO,
            last_error: NetError::Other,
            retry_floor: None,
            rotation: 0,
            ever_connected: false,
            conn: Conn::new(now),
            draining: false,
            ledger: Ledger::new(),
            table: Table::default(),
            subs: Subs::default(),
            rtt: RttEstimator::default(),
            timers,
            inbound: InboundUse::default(),
            // Starts empty and grows on demand, keeping its capacity, so steady state does
            // not reallocate once warmed up.
            out: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    // ----- read-only views -----

    /// The lifecycle state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Backoff => State::Disconnected,
            Phase::Resolving { .. } | Phase::Dialing { .. } | Phase::Handshaking { .. } => {
                State::Connecting
            }
            Phase::Connected { .. } if self.draining => State::Disconnecting,
            Phase::Connected { .. } => State::Connected,
            Phase::Closing { .. } => State::Disconnecting,
            Phase::Closed => State::Closed,
        }
    }

    /// The epoch of the current connection, if connected.
    pub fn connection(&self) -> Option<Epoch> {
        match self.phase {
            Phase::Connected { epoch, .. } => Some(epoch),
            _ => None,
        }
    }

    /// The epoch whose socket is open and read (connected, or running its handshake).
    pub fn reading(&self) -> Option<Epoch> {
        match self.phase {
            Phase::Connected { epoch, .. } | Phase::Handshaking { epoch, .. } => Some(epoch),
            _ => None,
        }
    }

    /// Whether the host should read the socket now. `false` while reading is paused for
    /// backpressure (then, once it is `true` again, pass the bytes kept back to
    /// [`Session::handle_read`] with `fresh = 0` before reading more).
    pub fn wants_read(&self) -> bool {
        self.reading().is_some() && self.conn.paused.is_none() && !self.conn.peer_closing
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The protocol.
    pub fn protocol(&self) -> &P {
        &self.proto
    }

    /// Counters, with the RTT estimate.
    pub fn stats(&self) -> Stats {
        Stats {
            rtt: self.rtt.latest(),
            srtt: self.rtt.smoothed(),
            ..self.stats
        }
    }

    /// Messages held: queued plus in flight (a batch counts once).
    pub fn queue_len(&self) -> usize {
        self.ledger.len()
    }

    /// Payload bytes held.
    pub fn queue_bytes(&self) -> usize {
        self.ledger.bytes()
    }

    /// Messages written (or being written) and not yet settled (a batch counts once).
    pub fn in_flight(&self) -> usize {
        self.ledger.in_flight()
    }

    /// Live subscriptions.
    pub fn subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// Consecutive failures in the current streak.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The latest `now` seen (after clamping).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// A message still held by the session.
    pub fn payload(&self, id: MsgId) -> Option<&[u8]> {
        self.ledger.payload(id)
    }

    /// When the session next needs [`Session::poll`] if no input arrives first.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ----- inputs -----

    /// Reports what the host's I/O did. An input of an epoch that is not current is counted
    /// as stale and can only finish closing its own socket.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Handled {
        let _ = self.tick(now);
        let handled = self.on_input(input);
        if handled == Handled::Stale {
            self.stats.stale_inputs += 1;
        }
        self.sync_state();
        handled
    }

    /// Adds a message to the queue. It will end in exactly one [`Outcome`], reported as a
    /// [`Notification::Outcome`]; a refusal is returned at once with the message. The
    /// protocol checks it first ([`Protocol::check`]): a message it cannot send is rejected
    /// as [`RejectReason::Unencodable`].
    pub fn enqueue(
        &mut self,
        now: Instant,
        payload: Vec<u8>,
        delivery: Delivery,
    ) -> Result<MsgId, Rejected> {
        let _ = self.tick(now);
        if let Err(e) = self.proto.check(&payload) {
            return Err(self.rejected(RejectReason::Unencodable(e), payload));
        }
        self.enqueue_item(Item::One(payload), delivery)
    }

    /// Adds a [`Batch`]: many messages that take one queue entry and end in one [`Outcome`]
    /// (one [`Notification::Outcome`], whose payload is the batch's records, see
    /// [`Batch::from_vec`]). Each message is framed on its own and confirmed on its own.
    /// Each must be within [`crate::QueueLimits::max_message`] and the whole batch within
    /// [`crate::QueueLimits::max_bytes`]; an empty batch is refused. Not for protocols whose
    /// sessions resume ([`Protocol::resumable`]): a batch has no per-message resend state.
    pub fn enqueue_batch(
        &mut self,
        now: Instant,
        batch: Batch,
        delivery: Delivery,
    ) -> Result<MsgId, Rejected> {
        let _ = self.tick(now);
        let bad = if self.proto.resumable() {
            Some(FrameError::Malformed {
                reason: "batches are not supported with resumable sessions",
            })
        } else {
            batch.iter().find_map(|m| self.proto.check(m).err())
        };
        if let Some(e) = bad {
            return Err(self.rejected(RejectReason::Unencodable(e), batch.into_vec()));
        }
        self.enqueue_item(Item::Batch(batch), delivery)
    }

    fn rejected(&mut self, reason: RejectReason, payload: Vec<u8>) -> Rejected {
        self.stats.rejected += 1;
        Rejected { reason, payload }
    }

    fn enqueue_item(&mut self, item: Item, delivery: Delivery) -> Result<MsgId, Rejected> {
        if self.phase == Phase::Closed || self.draining {
            let payload = match item {
                Item::One(p) => p,
                Item::Batch(b) => b.into_vec(),
            };
            return Err(self.rejected(RejectReason::Closed, payload));
        }
        let limits = self.cfg.queue;
        let r = self.with_ledger(|l, settle| l.push(item, delivery, &limits, settle));
        if r.is_err() {
            self.stats.rejected += 1;
        }
        r
    }

    /// Subscribes to `spec` (the protocol's form: a NATS subject, a Redis channel; see each
    /// protocol's `subscription` helpers). The subscription is made on the current connection
    /// and restored, before anything queued is flushed, on every new one; its messages come
    /// out of [`Session::handle_read`] as [`crate::Received::Message`] with its id.
    pub fn subscribe(&mut self, now: Instant, spec: Vec<u8>) -> Result<SubId, FrameError> {
        let _ = self.tick(now);
        if self.phase == Phase::Closed || self.draining {
            return Err(FrameError::Malformed {
                reason: "the session is closing",
            });
        }
        self.proto.check_subscription(&spec)?;
        Ok(self.subs.add(spec))
    }

    /// Ends subscription `id`: nothing more is delivered for it, and the peer is told.
    /// Returns `false` for an unknown (or already ended) id.
    pub fn unsubscribe(&mut self, now: Instant, id: SubId) -> bool {
        let _ = self.tick(now);
        let told = self.connection().is_some() || self.proto.resumable();
        match self.subs.end(id, told) {
            Some(true) => true,
            Some(false) => {
                self.notify(Notification::Unsubscribed { id, refused: false });
                true
            }
            None => false,
        }
    }

    /// The user took `messages` units of `bytes` bytes of what [`Session::handle_read`]
    /// handed out (or dropped them): they no longer count against
    /// [`crate::config::InboundLimits`], and reading resumes if it was paused.
    pub fn inbound_taken(&mut self, now: Instant, messages: usize, bytes: usize) {
        let _ = self.tick(now);
        self.inbound.messages = self.inbound.messages.saturating_sub(messages);
        self.inbound.bytes = self.inbound.bytes.saturating_sub(bytes);
        self.maybe_resume();
        self.sync_state();
    }

    /// Closes the session, gracefully (drain with a deadline) or at once.
    pub fn close(&mut self, now: Instant, mode: CloseMode) {
        let now = self.tick(now);
        if self.phase == Phase::Closed {
            return;
        }
        match mode {
            CloseMode::Graceful { drain } => {
                self.draining = true;
                let deadline = now + drain;
                let at = self
                    .timers
                    .get(Timer::Drain)
                    .map_or(deadline, |d| d.min(deadline));
                self.timers.set(Timer::Drain, at);
            }
            CloseMode::Immediate => self.finish(
                crate::error::AbandonReason::Closed,
                crate::error::DisconnectReason::UserClose,
            ),
        }
        self.sync_state();
    }

    /// Skips the backoff wait, or drops a live connection and dials again at once. Does not
    /// reset the failure streak.
    pub fn reconnect_now(&mut self, now: Instant) {
        let now = self.tick(now);
        match self.phase {
            Phase::Backoff => self.timers.set(Timer::Retry, now),
            Phase::Closing {
                ref mut retry_at, ..
            } => *retry_at = now,
            Phase::Connected { .. } => {
                self.lose(crate::error::DisconnectReason::ReconnectRequested)
            }
            Phase::Resolving { .. }
            | Phase::Dialing { .. }
            | Phase::Handshaking { .. }
            | Phase::Closed => {}
        }
        self.sync_state();
    }

    // ----- outputs -----

    /// The next action. Call until it returns [`Action::Wait`]; then wait for that instant or
    /// for the next input, whichever comes first.
    #[inline]
    pub fn poll(&mut self, now: Instant) -> Action {
        let _ = self.tick(now);
        if let Some(a) = self.out.pop_front() {
            return a;
        }
        for _ in 0..MAX_STEPS {
            let progressed = self.step();
            self.sync_state();
            if !progressed {
                break;
            }
        }
        self.out.pop_front().unwrap_or(Action::Wait {
            until: self.timers.next(),
        })
    }

    /// Frees the spare capacity of internal queues once empty: after a rare burst (a state
    /// change, a pipeline), so an idle session does not keep the burst's buffers.
    pub fn shrink_to_fit(&mut self) {
        if self.out.is_empty() {
            self.out = VecDeque::new();
        }
        self.ledger.shrink();
    }

    // ----- helpers shared by the rooms -----

    /// Takes the caller's `now` and returns the session's: a clock that goes backwards is
    /// clamped, never trusted. One that reaches the end of time is held at `END_OF_TIME`, so
    /// `now + d` (d > 0) is always a future deadline: a deadline saturated to `now` would
    /// expire at once, forever (a livelock), and one at `Instant::MAX` would mean "never".
    /// Every input uses the returned instant, never its argument.
    #[must_use]
    fn tick(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now.min(END_OF_TIME));
        self.now
    }

    fn push(&mut self, action: Action) {
        self.out.push_back(action);
    }

    fn notify(&mut self, n: Notification) {
        self.out.push_back(Action::Notify(n));
    }

    fn sync_state(&mut self) {
        let to = self.state();
        if to != self.reported {
            let from = core::mem::replace(&mut self.reported, to);
            self.notify(Notification::StateChanged { from, to });
        }
    }

    /// Runs `f` on the ledger, turning every settled message into stats and a notification.
    fn with_ledger<T>(&mut self, f: impl FnOnce(&mut Ledger, &mut dyn FnMut(Settled)) -> T) -> T {
        let (ledger, out, stats) = (&mut self.ledger, &mut self.out, &mut self.stats);
        f(ledger, &mut |s| settled(out, stats, s))
    }
}

/// A settled message: counted and reported.
fn settled(out: &mut VecDeque<Action>, stats: &mut Stats, (id, outcome, payload): Settled) {
    match outcome {
        Outcome::Delivered => stats.delivered += 1,
        Outcome::InDoubt => stats.in_doubt += 1,
        Outcome::Abandoned(_) => stats.abandoned += 1,
        Outcome::Rejected(_) => stats.rejected += 1,
    }
    out.push_back(Action::Notify(Notification::Outcome {
        id,
        outcome,
        payload,
    }));
}
