//! The session: one long-lived conversation's state machine.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use rand_core::RngCore;

use crate::config::{AckMode, Config};
use crate::epoch::Epoch;
use crate::error::{AbandonReason, ConfigError, DisconnectReason, NetError};
use crate::event::{Action, CloseMode, Event, Notification, State};
use crate::heartbeat::RttEstimator;
use crate::message::{Batch, Delivery, MsgId, Outcome, Rejected};
use crate::queue::{Item, Ledger, Settled};
use crate::rng::SplitMix64;
use crate::stats::Stats;
use crate::time::{duration_nanos, Instant};

/// Where the session is. [`State`] is the public, coarser view of this.
// An explicit tag: without it the discriminant hides in `SocketAddr`'s niche and every
// `match` on the phase has to decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Waiting out a backoff delay; at `retry_at` a new attempt starts.
    Backoff {
        retry_at: Instant,
    },
    Resolving {
        epoch: Epoch,
        deadline: Instant,
    },
    Dialing {
        epoch: Epoch,
        addr: SocketAddr,
        deadline: Instant,
    },
    Connected {
        epoch: Epoch,
        addr: SocketAddr,
    },
    /// The old socket is closing; the next attempt waits for it (or for `deadline`), so the
    /// queue is never flushed to a new socket while the old one may still be writing.
    Closing {
        epoch: Epoch,
        deadline: Instant,
        retry_at: Instant,
    },
    Closed,
}

/// Per-connection liveness and write state; reset on every connect.
#[derive(Clone, Copy, Debug)]
struct Conn {
    since: Instant,
    last_read: Instant,
    ping_sent: Option<Instant>,
    ping_wanted: bool,
    pongs_owed: u8,
    write_started: Option<Instant>,
    /// The liveness deadline's distance from `last_read` in nanoseconds: the PING (or, with
    /// one outstanding or wanted, its answer's) deadline or the read-idle one, whichever is
    /// first (saturated "never" without either). Set by [`Session::ping_state_changed`].
    live_after: u64,
    /// The write deadline in nanoseconds (`u64::MAX` when none runs).
    write_at: u64,
    /// Whether a deadline exists: a liveness one is configured, or a write deadline runs.
    armed: bool,
    /// The earliest of the ping, liveness and write deadlines, derived from the fields above
    /// by [`Session::refresh_deadline`] whenever one of them changes.
    deadline: Option<Instant>,
}

/// The configured durations the connected phase needs, converted to nanoseconds once.
/// An unconfigured one is `u64::MAX`, so `t.saturating_add(d)` is `u64::MAX` ("never").
#[derive(Clone, Copy, Debug)]
struct Nanos {
    /// `heartbeat.interval`, when a heartbeat is configured.
    hb_interval: u64,
    /// The heartbeat timeout in force (`RttEstimator::timeout`), refreshed at each RTT sample.
    hb_timeout: u64,
    /// `heartbeat.timeout` as configured (the cap of an adaptive timeout).
    hb_max_timeout: u64,
    /// `heartbeat.adaptive_floor`: when set, RTT samples adapt `hb_timeout`.
    hb_floor: Option<u64>,
    read_idle: u64,
    write: u64,
    /// Whether a write timeout is configured.
    has_write: bool,
    /// Whether a heartbeat or a read-idle timeout is configured: the connection then always
    /// has a deadline.
    liveness: bool,
}

impl Nanos {
    fn new(cfg: &Config, rtt: &RttEstimator) -> Self {
        Nanos {
            hb_interval: cfg
                .heartbeat
                .map_or(u64::MAX, |hb| duration_nanos(hb.interval)),
            hb_timeout: cfg
                .heartbeat
                .map_or(u64::MAX, |hb| duration_nanos(rtt.timeout(&hb))),
            hb_max_timeout: cfg
                .heartbeat
                .map_or(u64::MAX, |hb| duration_nanos(hb.timeout)),
            hb_floor: cfg
                .heartbeat
                .and_then(|hb| hb.adaptive_floor)
                .map(duration_nanos),
            read_idle: cfg.read_idle_timeout.map_or(u64::MAX, duration_nanos),
            write: cfg.write_timeout.map_or(u64::MAX, duration_nanos),
            has_write: cfg.write_timeout.is_some(),
            liveness: cfg.heartbeat.is_some() || cfg.read_idle_timeout.is_some(),
        }
    }
}

/// Most PONGs owed at once: a peer flooding PINGs cannot make us write without bound.
const MAX_PONGS_OWED: u8 = 4;
/// The latest `now` the session accepts (about 292 years after the origin); later instants are
/// clamped to it, leaving room below [`Instant::MAX`] for every deadline computed from `now`.
const END_OF_TIME: Instant = Instant::from_nanos(u64::MAX / 2);
/// Most phase transitions in one round; more would mean a bug, so stop and wait instead of
/// spinning.
const MAX_STEPS: usize = 16;

/// A reconnecting, heartbeating TCP conversation as a pure state machine.
///
/// Feed it [`Event`]s with [`Session::handle`] and user commands ([`Session::enqueue`],
/// [`Session::close`], [`Session::reconnect_now`]); then call [`Session::poll`] until it
/// returns [`Action::Wait`]. Every call takes `now`; the session never reads a clock.
pub struct Session<R = SplitMix64> {
    /// Shared, immutable: sessions built from one configuration can hold one copy.
    cfg: Arc<Config>,
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
    rotation: usize,
    ever_connected: bool,
    conn: Conn,
    drain_deadline: Option<Instant>,
    ledger: Ledger,
    rtt: RttEstimator,
    ns: Nanos,
    out: VecDeque<Action>,
    /// While `now` is below this (nanoseconds) and `out` is empty, [`Session::poll`] answers
    /// `Wait { until: conn.deadline }` at once: the session is connected and steady (not
    /// draining, state reported), nothing waits to be written (no PONG, PING or queued
    /// message) and no connection deadline is due before it. Zero (always safe) forces the
    /// full check. Set only by `poll` in the steady state; every change that could end the
    /// quiet zeroes it (or lowers it to a new deadline).
    wake: u64,
    stats: Stats,
}

impl Session<SplitMix64> {
    /// A session with the default jitter generator seeded from `config.seed`. The first
    /// attempt starts at the first [`Session::poll`]. The config is kept behind an [`Arc`]:
    /// pass an `Arc<Config>` to share one copy between many sessions.
    pub fn new(config: impl Into<Arc<Config>>, now: Instant) -> Result<Self, ConfigError> {
        let config = config.into();
        let rng = SplitMix64::new(config.seed);
        Session::with_rng(config, rng, now)
    }
}

impl<R: RngCore> Session<R> {
    /// A session drawing jitter from `rng` (the config as in [`Session::new`]).
    pub fn with_rng(
        config: impl Into<Arc<Config>>,
        rng: R,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let config = config.into();
        config.validate()?;
        let now = now.min(END_OF_TIME);
        let rtt = RttEstimator::default();
        Ok(Session {
            ns: Nanos::new(&config, &rtt),
            ledger: Ledger::new(&config.queue),
            cfg: config,
            rng,
            now,
            phase: Phase::Backoff { retry_at: now },
            reported: State::Disconnected,
            last_epoch: Epoch::NONE,
            failures: 0,
            streak_start: None,
            attempt: 0,
            last_delay: Duration::ZERO,
            last_error: NetError::Other,
            rotation: 0,
            ever_connected: false,
            conn: Conn::new(now),
            drain_deadline: None,
            rtt,
            // Starts empty and grows on demand, keeping its capacity, so steady state does
            // not reallocate once warmed up (an idle session should cost little).
            out: VecDeque::new(),
            wake: 0,
            stats: Stats::default(),
        })
    }

    // ----- read-only views -----

    /// The lifecycle state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Backoff { .. } => State::Disconnected,
            Phase::Resolving { .. } | Phase::Dialing { .. } => State::Connecting,
            Phase::Connected { .. } if self.drain_deadline.is_some() => State::Disconnecting,
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

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
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

    /// Consecutive failures in the current streak.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The latest `now` seen (after clamping).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The payloads of the last [`Action::Transmit`], in the order to write them: one per
    /// message, and each message of a [`Batch`] separately.
    pub fn transmit_payloads(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ledger.writing()
    }

    /// A message still held by the session.
    pub fn payload(&self, id: MsgId) -> Option<&[u8]> {
        self.ledger.payload(id)
    }

    /// When the session next needs [`Session::poll`] if no event arrives first.
    pub fn next_deadline(&self) -> Option<Instant> {
        let d = match self.phase {
            Phase::Closed => return None,
            Phase::Backoff { retry_at } => Some(retry_at),
            Phase::Resolving { deadline, .. } | Phase::Dialing { deadline, .. } => Some(deadline),
            Phase::Closing { deadline, .. } => Some(deadline),
            Phase::Connected { .. } => self.conn.deadline,
        };
        min_opt(d, self.drain_deadline)
    }

    // ----- inputs -----

    /// Reports something that happened. Events of an epoch that is not current are counted
    /// as stale and can only finish closing their own socket.
    pub fn handle(&mut self, now: Instant, event: Event<'_>) {
        self.tick(now);
        let Some(epoch) = event.epoch() else {
            return; // A timer: deadlines are checked in `poll`.
        };
        if let Phase::Connected { epoch: e, .. } = self.phase {
            // The steady state: an event of the live connection (the match below would pick
            // the same arm).
            if e == epoch {
                // Refreshes the deadline and syncs the state itself, only when needed.
                self.on_connection(event);
                return;
            }
        }
        self.handle_other(epoch, event);
    }

    /// [`Session::handle`] for every event but those of the live connection.
    #[inline(never)]
    fn handle_other(&mut self, epoch: Epoch, event: Event<'_>) {
        self.wake = 0;
        match (self.phase, event) {
            (Phase::Resolving { epoch: e, .. }, Event::Resolved { addrs, .. }) if e == epoch => {
                if addrs.is_empty() {
                    self.attempt_failed(epoch, None, NetError::NoAddresses);
                } else {
                    let addr = addrs[self.rotation % addrs.len()];
                    self.rotation = self.rotation.wrapping_add(1);
                    self.start_dial(epoch, addr);
                }
            }
            (Phase::Resolving { epoch: e, .. }, Event::ResolveFailed { error, .. })
                if e == epoch =>
            {
                self.attempt_failed(epoch, None, error);
            }
            (Phase::Dialing { epoch: e, addr, .. }, Event::DialOk { .. }) if e == epoch => {
                self.connected(epoch, addr);
            }
            (Phase::Dialing { epoch: e, addr, .. }, Event::DialFailed { error, .. })
                if e == epoch =>
            {
                self.attempt_failed(epoch, Some(addr), error);
            }
            (Phase::Connected { epoch: e, .. }, _) if e == epoch => self.on_connection(event),
            (
                Phase::Closing {
                    epoch: e, retry_at, ..
                },
                Event::Closed { .. },
            ) if e == epoch => {
                self.phase = Phase::Backoff { retry_at };
            }
            (_, Event::Closed { .. }) => {} // An aborted dial or an already-forgotten socket.
            (_, Event::DialOk { .. }) => {
                // A dial we stopped waiting for succeeded after all: only its close is allowed.
                self.stats.stale_events += 1;
                self.push(Action::Close {
                    epoch,
                    reason: DisconnectReason::Stale,
                });
            }
            _ => self.stats.stale_events += 1,
        }
        self.sync_state();
    }

    /// An event of the live connection. Refreshes the connection deadline when the event
    /// moved it, and syncs the reported state when the connection was lost. The light arms
    /// are inline; the heavier ones are calls, so the common ones stay cheap.
    #[inline]
    fn on_connection(&mut self, event: Event<'_>) {
        let now = self.now;
        match event {
            Event::BytesRead { len, .. } => {
                // An adapter may report any length; a counter must never be a way to panic.
                self.stats.bytes_read = self.stats.bytes_read.saturating_add(len as u64);
                if len > 0 {
                    self.conn.last_read = now;
                    self.refresh_deadline();
                }
            }
            Event::Pong { .. } => self.on_pong(),
            Event::PeerPing { .. } => {
                self.conn.last_read = now;
                self.conn.pongs_owed = (self.conn.pongs_owed + 1).min(MAX_PONGS_OWED);
                // A PONG is owed now (or once the write in progress completes).
                self.wake = 0;
                self.refresh_deadline();
            }
            Event::Written { .. } => {
                if self.conn.write_started.take().is_some() {
                    // With nothing handed to the write (only PINGs or PONGs), there is nothing
                    // to settle or move.
                    if self.ledger.writing_len() > 0 {
                        if self.cfg.acks == AckMode::InOrder {
                            // The messages now await their acknowledgements: nothing settles.
                            self.ledger.written_awaiting_ack();
                        } else {
                            self.write_done();
                        }
                    }
                    self.conn.write_at = u64::MAX;
                    self.conn.armed = self.ns.liveness;
                    // Nothing became owed (whatever was, PONGs, PING or queued messages,
                    // zeroed `wake` when it arrived) and the deadline did not move earlier.
                    self.refresh_deadline();
                }
            }
            Event::Acked { count, .. } => self.on_acked(count),
            Event::Eof { .. } => self.lost(DisconnectReason::Eof),
            Event::IoError { error, .. } => self.lost(DisconnectReason::Io(error)),
            Event::ProtocolError { error, .. } => self.lost(DisconnectReason::Protocol(error)),
            Event::Closed { .. } => self.lost(DisconnectReason::Io(NetError::Aborted)),
            // Resolution and dial events never carry a connected epoch.
            _ => self.stats.stale_events += 1,
        }
    }

    /// The messages of the write in progress are written.
    #[inline(never)]
    fn write_done(&mut self) {
        let acks = self.cfg.acks;
        self.with_ledger(|l, settle| l.write_done(acks, settle));
    }

    /// The peer confirmed `count` messages.
    #[inline(never)]
    fn on_acked(&mut self, count: usize) {
        if count == 1 {
            // The common case, without the general loop.
            if let Some(id) = self.ledger.ack_one() {
                self.stats.delivered += 1;
                self.out.push_back(Action::Notify(Notification::Outcome {
                    id,
                    outcome: Outcome::Delivered,
                    payload: None,
                }));
                return;
            }
        }
        if let Err(e) = self.with_ledger(|l, settle| l.ack(count, settle)) {
            self.lost(DisconnectReason::Protocol(e));
        }
    }

    /// The peer answered a PING.
    #[inline(never)]
    fn on_pong(&mut self) {
        let now = self.now;
        self.conn.last_read = now;
        self.stats.pongs += 1;
        // An unsolicited PONG proves liveness but gives no RTT sample.
        if let Some(sent) = self.conn.ping_sent.take() {
            let sample = now.as_nanos().saturating_sub(sent.as_nanos());
            self.rtt.sample_nanos(sample);
            let smoothed = self.rtt.smoothed_nanos();
            if let Some(floor) = self.ns.hb_floor {
                self.ns.hb_timeout = self.rtt.timeout_nanos(floor, self.ns.hb_max_timeout);
            }
            self.notify(Notification::Rtt {
                sample: Duration::from_nanos(sample),
                smoothed: Duration::from_nanos(smoothed),
            });
        }
        self.ping_state_changed();
        // The deadline may have moved earlier (no PING outstanding, a new timeout).
        let d = self.refresh_deadline();
        self.wake = self.wake.min(d);
    }

    /// [`Session::lose`] from an event, then the state change.
    #[inline(never)]
    fn lost(&mut self, reason: DisconnectReason) {
        self.lose(reason);
        self.sync_state();
    }

    /// Adds a message to the queue. It will end in exactly one [`Outcome`], reported as a
    /// [`Notification::Outcome`]; a refusal is returned at once with the message.
    pub fn enqueue(
        &mut self,
        now: Instant,
        payload: Vec<u8>,
        delivery: Delivery,
    ) -> Result<MsgId, Rejected> {
        self.tick(now);
        // The common case: open, and the message fits without evicting anything.
        if self.phase != Phase::Closed
            && self.drain_deadline.is_none()
            && self.ledger.fits_one(payload.len(), &self.cfg.queue)
        {
            // A write is owed now (or once the write in progress completes).
            self.wake = 0;
            return Ok(self.ledger.push_fitting(payload, 0, delivery));
        }
        self.enqueue_item(now, Item::One(payload), delivery)
    }

    /// Adds a [`Batch`]: many messages that take one queue entry and end in one [`Outcome`]
    /// (one [`Notification::Outcome`], whose payload is the batch's records, see
    /// [`Batch::from_vec`]). [`Session::transmit_payloads`] yields its messages one by one,
    /// and with [`crate::AckMode::InOrder`] each takes one acknowledgement. Each message must
    /// be within [`crate::QueueLimits::max_message`] and the whole batch within
    /// [`crate::QueueLimits::max_bytes`]; an empty batch is refused.
    pub fn enqueue_batch(
        &mut self,
        now: Instant,
        batch: Batch,
        delivery: Delivery,
    ) -> Result<MsgId, Rejected> {
        self.enqueue_item(now, Item::Batch(batch), delivery)
    }

    #[inline(never)]
    fn enqueue_item(
        &mut self,
        now: Instant,
        item: Item,
        delivery: Delivery,
    ) -> Result<MsgId, Rejected> {
        self.tick(now);
        // A write is owed now (or once the write in progress completes).
        self.wake = 0;
        if self.phase == Phase::Closed || self.drain_deadline.is_some() {
            self.stats.rejected += 1;
            let payload = match item {
                Item::One(p) => p,
                Item::Batch(b) => b.into_vec(),
            };
            return Err(Rejected {
                reason: crate::error::RejectReason::Closed,
                payload,
            });
        }
        let limits = self.cfg.queue;
        let r = self.with_ledger(|l, settle| l.push(item, delivery, &limits, settle));
        if r.is_err() {
            self.stats.rejected += 1;
        }
        r
    }

    /// Closes the session, gracefully (drain with a deadline) or at once.
    pub fn close(&mut self, now: Instant, mode: CloseMode) {
        self.tick(now);
        self.wake = 0;
        if self.phase == Phase::Closed {
            return;
        }
        match mode {
            CloseMode::Graceful { drain } => {
                let deadline = now + drain;
                self.drain_deadline =
                    Some(self.drain_deadline.map_or(deadline, |d| d.min(deadline)));
            }
            CloseMode::Immediate => self.finish(AbandonReason::Closed, DisconnectReason::UserClose),
        }
        self.sync_state();
    }

    /// Skips the backoff wait, or drops a live connection and dials again at once. Does not
    /// reset the failure streak.
    pub fn reconnect_now(&mut self, now: Instant) {
        self.tick(now);
        self.wake = 0;
        match &mut self.phase {
            Phase::Backoff { retry_at } | Phase::Closing { retry_at, .. } => *retry_at = now,
            Phase::Connected { .. } => self.lose(DisconnectReason::ReconnectRequested),
            Phase::Resolving { .. } | Phase::Dialing { .. } | Phase::Closed => {}
        }
        self.sync_state();
    }

    // ----- outputs -----

    /// The next action. Call until it returns [`Action::Wait`]; then wait for that instant or
    /// for the next event, whichever comes first.
    #[inline]
    pub fn poll(&mut self, now: Instant) -> Action {
        self.tick(now);
        if self.now.as_nanos() < self.wake && self.out.is_empty() {
            // Quiet: connected and steady, nothing owed, no deadline due (see `wake`).
            debug_assert!(self.quiet_holds(), "`wake` outlived the quiet");
            return Action::Wait {
                until: self.conn.deadline,
            };
        }
        if self.out.is_empty() {
            if let Phase::Connected { epoch, .. } = self.phase {
                if self.drain_deadline.is_none() && self.reported == State::Connected {
                    // The steady state: connected, not draining, nothing queued.
                    return self.poll_connected(epoch);
                }
            }
        }
        self.poll_round()
    }

    /// What `wake` promises (checked in debug builds).
    fn quiet_holds(&self) -> bool {
        let c = &self.conn;
        matches!(self.phase, Phase::Connected { .. })
            && self.drain_deadline.is_none()
            && self.reported == State::Connected
            && c.pongs_owed == 0
            && !c.ping_wanted
            && self.ledger.queued() == 0
            && c.deadline.is_none_or(|d| self.now < d)
            && c.deadline.map_or(u64::MAX, Instant::as_nanos) >= self.wake
    }

    /// [`Session::poll`] in the steady state when a deadline passed or a write is owed.
    /// Answers what a round of `step` would, without queueing: the one `Transmit` owed (the
    /// next `poll` continues the round), or `Wait`.
    #[inline(never)]
    fn poll_connected(&mut self, epoch: Epoch) -> Action {
        if self.conn.deadline.is_some_and(|d| self.now >= d) && self.connection_deadlines() {
            return self.poll_after_loss();
        }
        // Steady: quiet once nothing waits to be written (the deadline is in the future: it
        // passed only if `connection_deadlines` moved it).
        if self.owes_write() {
            let action = self.transmit(epoch);
            // PONGs and the PING are in this write; messages may be left over.
            self.wake = if self.ledger.queued() == 0 {
                self.wake_at()
            } else {
                0
            };
            return action;
        }
        let c = &self.conn;
        let pending = c.pongs_owed > 0 || c.ping_wanted || self.ledger.queued() > 0;
        self.wake = if pending { 0 } else { self.wake_at() };
        Action::Wait {
            until: self.conn.deadline,
        }
    }

    /// The connection was just lost in `poll_connected`: the rest of the round (and its state
    /// change) the long way.
    #[cold]
    #[inline(never)]
    fn poll_after_loss(&mut self) -> Action {
        self.sync_state();
        self.steps();
        self.poll_round()
    }

    /// The rest of [`Session::poll`] (after `tick`): a round of `step` if nothing is queued,
    /// then the first queued action or `Wait`. Kept out of line so the idle path stays small.
    #[inline(never)]
    fn poll_round(&mut self) -> Action {
        if self.out.is_empty() {
            self.steps();
        }
        match self.out.pop_front() {
            Some(action) => action,
            None => Action::Wait {
                until: self.next_deadline(),
            },
        }
    }

    // ----- the machine -----

    /// Steps until nothing progresses (at most `MAX_STEPS`). Out of line, so popping an
    /// already queued action does not pay for it.
    #[inline(never)]
    fn steps(&mut self) {
        for _ in 0..MAX_STEPS {
            let progressed = self.step();
            self.sync_state();
            if !progressed {
                break;
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        // A clock that goes backwards is clamped, never trusted. One that reaches the end of
        // time is held at `END_OF_TIME`, so `now + d` (d > 0) is always a future deadline:
        // a deadline saturated to `now` would expire at once, forever (a livelock).
        self.now = self.now.max(now.min(END_OF_TIME));
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
        f(ledger, &mut |(id, outcome, payload)| {
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
        })
    }

    /// One transition driven by time or by queued work. Returns whether anything happened.
    fn step(&mut self) -> bool {
        let now = self.now;
        if let Some(drain) = self.drain_deadline {
            if self.phase != Phase::Closed {
                let idle = match self.phase {
                    Phase::Connected { .. } => self.conn.write_started.is_none(),
                    _ => true,
                };
                if self.ledger.len() == 0 && idle {
                    self.finish(AbandonReason::Closed, DisconnectReason::UserClose);
                    return true;
                }
                if now >= drain {
                    self.finish(AbandonReason::DrainTimeout, DisconnectReason::UserClose);
                    return true;
                }
            }
        }
        match self.phase {
            Phase::Closed => false,
            Phase::Backoff { retry_at } => {
                if now < retry_at {
                    return false;
                }
                self.last_epoch = self.last_epoch.next();
                self.attempt = self.attempt.saturating_add(1);
                self.phase = Phase::Resolving {
                    epoch: self.last_epoch,
                    deadline: now + self.cfg.connect_timeout,
                };
                self.push(Action::Resolve {
                    epoch: self.last_epoch,
                });
                true
            }
            Phase::Resolving { epoch, deadline } => {
                if now < deadline {
                    return false;
                }
                self.push(Action::Close {
                    epoch,
                    reason: DisconnectReason::ConnectTimeout,
                });
                self.attempt_failed(epoch, None, NetError::TimedOut);
                true
            }
            Phase::Dialing {
                epoch,
                addr,
                deadline,
            } => {
                if now < deadline {
                    return false;
                }
                self.push(Action::Close {
                    epoch,
                    reason: DisconnectReason::ConnectTimeout,
                });
                self.attempt_failed(epoch, Some(addr), NetError::ConnectTimeout);
                true
            }
            Phase::Closing {
                deadline, retry_at, ..
            } => {
                if now < deadline {
                    return false;
                }
                self.phase = Phase::Backoff { retry_at };
                true
            }
            Phase::Connected { epoch, .. } => self.step_connected(epoch),
        }
    }

    /// Recomputes `conn.deadline` from the connection state; call after any change to
    /// `last_read`, `live_after`, `write_at` or `armed` (those after any change to
    /// `ping_sent`, `ping_wanted`, `write_started` or the RTT estimate). Returns the deadline
    /// in nanoseconds (`u64::MAX`: none).
    #[inline]
    fn refresh_deadline(&mut self) -> u64 {
        let c = &mut self.conn;
        // Unconfigured durations are `u64::MAX`, so their deadlines saturate to "never".
        let d = c
            .last_read
            .as_nanos()
            .saturating_add(c.live_after)
            .min(c.write_at);
        c.deadline = c.armed.then_some(Instant::from_nanos(d));
        if c.armed {
            d
        } else {
            u64::MAX
        }
    }

    /// The connection deadline in nanoseconds, `u64::MAX` when none: what `wake` becomes when
    /// the session is quiet.
    #[inline]
    fn wake_at(&self) -> u64 {
        self.conn.deadline.map_or(u64::MAX, Instant::as_nanos)
    }

    /// Recomputes `conn.live_after`; call after any change to `ping_sent`, `ping_wanted` or
    /// the heartbeat timeout.
    #[inline]
    fn ping_state_changed(&mut self) {
        let (c, ns) = (&mut self.conn, &self.ns);
        let hb = if c.ping_sent.is_none() && !c.ping_wanted {
            ns.hb_interval
        } else {
            ns.hb_interval.saturating_add(ns.hb_timeout)
        };
        c.live_after = hb.min(ns.read_idle);
    }

    fn liveness_deadline(&self) -> Option<Instant> {
        let last = self.conn.last_read.as_nanos();
        let hb = last
            .saturating_add(self.ns.hb_interval)
            .saturating_add(self.ns.hb_timeout);
        let idle = last.saturating_add(self.ns.read_idle);
        self.ns
            .liveness
            .then_some(Instant::from_nanos(hb.min(idle)))
    }

    fn step_connected(&mut self, epoch: Epoch) -> bool {
        if self.conn.deadline.is_some_and(|d| self.now >= d) && self.connection_deadlines() {
            return true;
        }
        if self.owes_write() {
            let action = self.transmit(epoch);
            self.push(action);
            return true;
        }
        false
    }

    /// Whether a write is owed and may start now: none in progress, and PONGs, a PING or
    /// queued messages are waiting.
    #[inline]
    fn owes_write(&self) -> bool {
        let c = &self.conn;
        c.write_started.is_none() && (c.pongs_owed > 0 || c.ping_wanted || self.ledger.queued() > 0)
    }

    /// The connection deadline has passed: declares the connection lost (returns true) if its
    /// liveness or write deadline passed, else marks the PING that is due.
    #[inline(never)]
    fn connection_deadlines(&mut self) -> bool {
        let now = self.now.as_nanos();
        let last = self.conn.last_read.as_nanos();
        if let Some(d) = self.liveness_deadline() {
            if now >= d.as_nanos() {
                self.liveness_lost();
                return true;
            }
        }
        if let Some(started) = self.conn.write_started {
            if self.ns.has_write && now >= started.as_nanos().saturating_add(self.ns.write) {
                self.write_timed_out();
                return true;
            }
        }
        let c = &mut self.conn;
        if c.ping_sent.is_none()
            && !c.ping_wanted
            && now >= last.saturating_add(self.ns.hb_interval)
        {
            c.ping_wanted = true;
            self.wake = 0;
            self.ping_state_changed();
            self.refresh_deadline();
        }
        false
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

    #[cold]
    fn write_timed_out(&mut self) {
        let limit = self.cfg.write_timeout.unwrap_or_default();
        self.stats.write_timeouts += 1;
        self.lose(DisconnectReason::WriteTimeout(limit));
    }

    /// Hands queued messages to a new write; returns how many. Out of line, so a write of
    /// only PINGs or PONGs does not pay for the ledger walk.
    #[inline(never)]
    fn start_write(&mut self) -> usize {
        self.ledger
            .start_write(self.cfg.batch_bytes, self.cfg.batch_messages)
    }

    /// Starts a write of whatever is owed: PONGs, a PING, queued messages. Returns the
    /// [`Action::Transmit`] for the caller to hand out (or queue).
    #[inline]
    fn transmit(&mut self, epoch: Epoch) -> Action {
        let now = self.now;
        let c = self.conn;
        let messages = if self.ledger.queued() > 0 {
            self.start_write()
        } else {
            0
        };
        if c.ping_wanted {
            self.stats.pings += 1;
            self.conn.ping_sent = Some(now);
            self.conn.ping_wanted = false;
            // The PING's deadline becomes its answer's: `live_after` grows by the timeout
            // (a PING is wanted only when none is outstanding, so it was already counted).
        }
        self.conn.pongs_owed = 0;
        self.conn.write_started = Some(now);
        if self.ns.has_write {
            self.conn.write_at = now.as_nanos().saturating_add(self.ns.write);
            self.conn.armed = true;
        }
        self.refresh_deadline();
        Action::Transmit {
            epoch,
            pongs: c.pongs_owed,
            ping: c.ping_wanted,
            messages,
        }
    }

    fn start_dial(&mut self, epoch: Epoch, addr: SocketAddr) {
        self.stats.attempts += 1;
        let deadline = self.now + self.cfg.connect_timeout;
        self.phase = Phase::Dialing {
            epoch,
            addr,
            deadline,
        };
        self.push(Action::Dial {
            epoch,
            addr,
            deadline,
        });
        let attempt = self.attempt;
        self.notify(Notification::AttemptStarted {
            epoch,
            attempt,
            addr,
        });
    }

    fn connected(&mut self, epoch: Epoch, addr: SocketAddr) {
        self.stats.connects += 1;
        if self.ever_connected {
            self.stats.reconnects += 1;
        }
        self.ever_connected = true;
        self.phase = Phase::Connected { epoch, addr };
        self.conn = Conn::new(self.now);
        self.conn.armed = self.ns.liveness;
        self.ping_state_changed();
        self.refresh_deadline();
        let attempt = core::mem::take(&mut self.attempt);
        self.notify(Notification::Connected {
            epoch,
            addr,
            attempt,
        });
    }

    /// Counts a failure; says whether the session must now give up.
    fn count_failure(&mut self, error: NetError) -> bool {
        self.failures = self.failures.saturating_add(1);
        self.stats.failures += 1;
        self.last_error = error;
        let start = *self.streak_start.get_or_insert(self.now);
        !error.is_retryable() || self.cfg.give_up.reached(self.failures, self.now - start)
    }

    fn next_delay(&mut self) -> Duration {
        let d = self
            .cfg
            .backoff
            .delay(self.failures.max(1), self.last_delay, &mut self.rng);
        self.last_delay = d;
        d
    }

    fn attempt_failed(&mut self, epoch: Epoch, addr: Option<SocketAddr>, error: NetError) {
        let give_up = self.count_failure(error);
        let next_delay = (!give_up).then(|| self.next_delay());
        let attempt = self.attempt;
        self.notify(Notification::AttemptFailed {
            epoch,
            attempt,
            addr,
            error,
            next_delay,
        });
        match next_delay {
            None => self.give_up(),
            Some(d) => {
                self.phase = Phase::Backoff {
                    retry_at: self.now + d,
                }
            }
        }
    }

    /// The current connection is lost (or dropped on purpose).
    fn lose(&mut self, reason: DisconnectReason) {
        let Phase::Connected { epoch, .. } = self.phase else {
            return;
        };
        self.wake = 0;
        let now = self.now;
        self.push(Action::Close { epoch, reason });
        let uptime = now - self.conn.since;
        let max_replays = self.cfg.max_replays;
        let replayed = self.with_ledger(|l, settle| l.connection_lost(max_replays, settle));
        self.stats.replayed += replayed as u64;
        let on_purpose = reason == DisconnectReason::ReconnectRequested;
        if uptime >= self.cfg.stable_after {
            // Flap damping: only a connection that stayed up resets the streak.
            self.failures = 0;
            self.streak_start = None;
            self.last_delay = Duration::ZERO;
        } else if !on_purpose && self.count_failure(as_net_error(reason)) {
            self.notify(Notification::Disconnected {
                epoch,
                reason,
                uptime,
                next_delay: None,
            });
            self.give_up();
            return;
        }
        let delay = if on_purpose {
            Duration::ZERO
        } else {
            self.next_delay()
        };
        self.notify(Notification::Disconnected {
            epoch,
            reason,
            uptime,
            next_delay: Some(delay),
        });
        self.phase = Phase::Closing {
            epoch,
            deadline: now + self.cfg.close_timeout,
            retry_at: now + delay,
        };
    }

    fn give_up(&mut self) {
        let elapsed = self.streak_start.map_or(Duration::ZERO, |s| self.now - s);
        self.with_ledger(|l, settle| l.abandon_all(AbandonReason::GaveUp, settle));
        let (failures, last_error) = (self.failures, self.last_error);
        self.notify(Notification::GaveUp {
            failures,
            elapsed,
            last_error,
        });
        self.phase = Phase::Closed;
    }

    /// Ends the session: closes whatever socket or attempt is open and settles every message.
    fn finish(&mut self, abandon: AbandonReason, reason: DisconnectReason) {
        self.wake = 0;
        match self.phase {
            Phase::Resolving { epoch, .. }
            | Phase::Dialing { epoch, .. }
            | Phase::Connected { epoch, .. } => self.push(Action::Close { epoch, reason }),
            Phase::Backoff { .. } | Phase::Closing { .. } | Phase::Closed => {}
        }
        if let Phase::Connected { epoch, .. } = self.phase {
            let uptime = self.now - self.conn.since;
            self.notify(Notification::Disconnected {
                epoch,
                reason,
                uptime,
                next_delay: None,
            });
        }
        self.with_ledger(|l, settle| l.abandon_all(abandon, settle));
        self.phase = Phase::Closed;
    }
}

/// Memory: kept apart from the machine above.
impl<R: RngCore> Session<R> {
    /// Frees the spare capacity of the internal action queue once it is empty. The queue
    /// keeps its capacity between rounds so steady state does not allocate; call this after
    /// a rare burst (a state change) so an idle session does not keep the burst's buffer.
    pub fn shrink_to_fit(&mut self) {
        if self.out.is_empty() {
            self.out = VecDeque::new();
        }
    }
}

impl Conn {
    fn new(now: Instant) -> Self {
        Conn {
            since: now,
            last_read: now,
            ping_sent: None,
            ping_wanted: false,
            pongs_owed: 0,
            write_started: None,
            live_after: u64::MAX,
            write_at: u64::MAX,
            armed: false,
            deadline: None,
        }
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The closest network-class error to a disconnect reason, for give-up reports.
fn as_net_error(reason: DisconnectReason) -> NetError {
    match reason {
        DisconnectReason::Io(e) => e,
        DisconnectReason::HeartbeatTimeout { .. }
        | DisconnectReason::ReadIdle { .. }
        | DisconnectReason::WriteTimeout(_)
        | DisconnectReason::ConnectTimeout => NetError::TimedOut,
        DisconnectReason::Eof => NetError::Reset,
        _ => NetError::Other,
    }
}
