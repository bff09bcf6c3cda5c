//! The run loop: one task per session, owning the core, the sockets and every write.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant as StdInstant};

use futures::channel::oneshot;
use futures::future::{self, BoxFuture};
use futures::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use futures::FutureExt;
use redial_core::{
    AckMode, Action, Batch, CloseMode, Codec, DisconnectReason, Epoch, Event, Frame, FrameError,
    Instant, MsgId, NetError, Notification, Outcome, RejectReason, Session, State,
};
use socket2::SockRef;

use crate::builder::{Connector, DEFAULT_DROP_DRAIN};
use crate::error::{classify, classify_resolve};
use crate::handle::{Command, Publisher, SessionEvent, Undelivered};
use crate::mailbox::{Took, Verdict};
use crate::runtime::Runtime;
use crate::socket::SocketOptions;
use crate::tap::Tap;
use crate::target::Target;

/// Bytes asked of the kernel per read, on top of a partial frame, at most.
const READ_CHUNK: usize = 16 << 10;
/// The read buffer's size on a connection's first read; it doubles (by at most
/// [`READ_CHUNK`] a step, up to the maximum frame plus [`READ_CHUNK`]) whenever a read fills
/// it, so an idle session stays small and a busy one soon reads in large chunks.
const READ_START: usize = 512;
/// Larger read buffers (grown for large frames) are freed rather than pooled.
const POOL_KEEP: usize = 4 * READ_CHUNK;
/// How long after the last user command an idle session keeps its busy part
/// ([`Driver::maybe_idle`]), in nanoseconds.
const BUSY_LINGER: u64 = 1_000_000_000;
/// [`Conn::writing`] when no write is in progress.
const NOT_WRITING: usize = usize::MAX;
/// [`Driver::timer_at`] with no deadline.
const UNARMED: u64 = u64::MAX;
/// Commands taken per wakeup, so a burst of sends is one round, not thousands.
const COMMAND_BATCH: usize = 256;

type Halves<R> = (<R as Runtime>::Reader, <R as Runtime>::Writer);

/// Hashes a [`MsgId`] with one multiplication (Fibonacci hashing) instead of SipHash: ids are
/// local, sequential and not attacker-chosen, and the multiplication spreads them over the
/// high bits that `hashbrown` uses for its tags.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The receipt slot of each message in the core, and whether it is a batch.
type Receipts = HashMap<MsgId, (u32, bool), BuildHasherDefault<IdHasher>>;

/// One live socket.
struct Conn<R: Runtime> {
    epoch: Epoch,
    /// `None` once EOF, an error or a framing error ended reading.
    reader: Option<R::Reader>,
    writer: R::Writer,
    /// Bytes of the busy part's `out` already written while a write is in progress;
    /// [`NOT_WRITING`] otherwise (a sentinel rather than an `Option`: a smaller task).
    writing: usize,
    /// Handshake replies still to read before the core hears `DialOk`.
    handshake: usize,
}

/// What woke the task.
enum Wake<R: Runtime> {
    /// A user command; `None` once every handle is dropped.
    Command(Option<Command>),
    Timer,
    Resolved(Epoch, io::Result<Vec<SocketAddr>>),
    Dialed(Epoch, io::Result<Halves<R>>),
    Read(Epoch, io::Result<usize>),
    Written(Epoch, io::Result<()>),
    /// The read buffer is full without a complete frame.
    Overflow(Epoch, FrameError),
}

/// Events the driver produces itself while performing actions, fed after the round.
enum Local {
    Closed(Epoch),
    Written(Epoch),
    IoError(Epoch, NetError),
}

pub(crate) struct Driver<R: Runtime> {
    rt: R,
    origin: StdInstant,
    session: Session,
    target: Dest,
    codec: Box<dyn Codec + Send>,
    /// Non-default socket options, connector or drop drain; `None` (no allocation) for a
    /// session built with the defaults.
    custom: Option<Box<Custom>>,
    /// False once every handle is gone.
    handles: bool,
    /// The state snapshot, the inbound and event streams and the mailbox.
    shared: Publisher,
    /// What only a busy session needs; `None` (no allocation, and a smaller task) while idle.
    busy: Option<Box<Busy>>,
    /// The instant the one timer (kept by the [`Task`]) is armed for.
    /// In the core's nanoseconds; [`UNARMED`] when there is no deadline.
    timer_at: u64,
    /// `timer_at` changed: the task replaces its timer.
    rearm: bool,
    /// The resolution or dial in flight (never both: an epoch dials once resolved, and a new
    /// epoch starts once the previous one is closed), as the wake it ends with.
    pending: Option<(Epoch, BoxFuture<'static, Wake<R>>)>,
    conn: Option<Conn<R>>,
    /// Empty while the session is idle (no busy part) and holds no partial frame: an idle
    /// session gives its buffer back to the thread ([`pool`]); a busy one keeps it.
    /// A boxed slice, not a `Vec`: 8 bytes less in every task; it only changes size when it
    /// grows.
    read_buf: Box<[u8]>,
    read_filled: usize,
    /// Which of commands and I/O `poll_wake` tries first this time.
    commands_first: bool,
    /// The first round has run; the task has finished.
    started: bool,
    done: bool,
    /// Events of this round are queued (hidden) in the shared event stream, to be revealed
    /// once the snapshot is published.
    told: bool,
}

/// The part of a [`Driver`] that is only needed while it has work in flight: allocated on
/// demand and freed once the session is idle again (nothing queued, written or awaited), so
/// an idle session's task is smaller and keeps no buffers.
#[derive(Default)]
struct Busy {
    /// Commands taken from the mailbox, not yet handled.
    cmds: VecDeque<Command>,
    receipts: Receipts,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// The write buffer (its bytes are being written while `Conn::writing` is set).
    out: Vec<u8>,
    local: Vec<Local>,
    /// Outcomes of this round, handed out after the snapshot is published.
    settled: Vec<(u32, Verdict)>,
    /// Scratch for the wakers of settled receipts.
    wakers: Vec<Waker>,
    /// When the last user command was handled (core nanoseconds; 0: none yet).
    last_command: u64,
    /// The OS error text behind the latest failure of an epoch, for the event stream (the
    /// failure and its notification come in the same round).
    last_error: Option<(Epoch, String)>,
}

impl Busy {
    /// Nothing is left that outlives a poll of the task: the box can go (`last_error` too:
    /// it is read in the round of its failure).
    fn is_idle(&self) -> bool {
        self.cmds.is_empty()
            && self.receipts.is_empty()
            && self.close_waiters.is_empty()
            && self.local.is_empty()
            && self.settled.is_empty()
    }
}

/// The busy part, allocated if needed.
fn busy(b: &mut Option<Box<Busy>>) -> &mut Busy {
    b.get_or_insert_with(Box::default)
}

/// The target: the common single IPv4 address inline (rather than in a `Vec`), any other
/// target boxed, so the task stays small.
enum Dest {
    V4(SocketAddrV4),
    Target(Box<Target>),
}

const _: () = assert!(std::mem::size_of::<Dest>() == 16);

impl From<Target> for Dest {
    fn from(t: Target) -> Self {
        match t {
            Target::Addrs(a) if a.len() == 1 => match a[0] {
                SocketAddr::V4(v4) => Dest::V4(v4),
                SocketAddr::V6(_) => Dest::Target(Box::new(Target::Addrs(a))),
            },
            t => Dest::Target(Box::new(t)),
        }
    }
}

/// What a session built with non-default settings (or recording) keeps apart.
struct Custom {
    socket: SocketOptions,
    connector: Option<Connector>,
    drop_drain: Duration,
    tap: Option<Box<dyn Tap>>,
}

/// The recorder, if any.
fn tap(custom: &mut Option<Box<Custom>>) -> Option<&mut Box<dyn Tap>> {
    custom.as_mut()?.tap.as_mut()
}

/// The pieces a [`Driver`] is built from.
pub(crate) struct Parts<R: Runtime> {
    pub(crate) rt: R,
    pub(crate) origin: StdInstant,
    pub(crate) session: Session,
    pub(crate) target: Target,
    pub(crate) codec: Box<dyn Codec + Send>,
    pub(crate) socket: SocketOptions,
    pub(crate) connector: Option<Connector>,
    pub(crate) drop_drain: Duration,
    pub(crate) shared: Publisher,
    pub(crate) tap: Option<Box<dyn Tap>>,
}

/// Feeds one event to the core (and the recorder), logging stale events.
fn feed(session: &mut Session, custom: &mut Option<Box<Custom>>, now: Instant, event: Event<'_>) {
    if let Some(t) = tap(custom) {
        t.event(now, &event);
    }
    let stale = session.stats().stale_events;
    session.handle(now, event);
    if session.stats().stale_events != stale {
        tracing::debug!(?event, "stale event ignored");
    }
}

impl<R: Runtime> Driver<R> {
    pub(crate) fn new(p: Parts<R>) -> Self {
        Driver {
            rt: p.rt,
            origin: p.origin,
            session: p.session,
            target: Dest::from(p.target),
            codec: p.codec,
            custom: (p.socket != SocketOptions::default()
                || p.connector.is_some()
                || p.drop_drain != DEFAULT_DROP_DRAIN
                || p.tap.is_some())
            .then(|| {
                Box::new(Custom {
                    socket: p.socket,
                    connector: p.connector,
                    drop_drain: p.drop_drain,
                    tap: p.tap,
                })
            }),
            handles: true,
            shared: p.shared,
            busy: None,
            timer_at: UNARMED,
            rearm: false,
            pending: None,
            conn: None,
            read_buf: Box::default(),
            read_filled: 0,
            commands_first: false,
            started: false,
            done: false,
            told: false,
        }
    }

    fn now(&self) -> Instant {
        let d = self.rt.now().saturating_duration_since(self.origin);
        Instant::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn to_std(&self, t: Instant) -> Option<StdInstant> {
        self.origin.checked_add(t.since_origin())
    }

    /// One step of the loop (a round of actions, then wait for exactly one thing to
    /// happen), as [`Task::poll`] runs it.
    fn poll_run(
        &mut self,
        mut timer: Pin<&mut Option<R::Sleep>>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        // The time of this poll's last round, if it ran one.
        let mut last = None;
        if !self.started {
            self.started = true;
            let now = self.now();
            self.rounds(now);
            last = Some(now);
        }
        loop {
            if self.rearm {
                self.rearm = false;
                let at = (self.timer_at != UNARMED)
                    .then(|| self.to_std(Instant::from_nanos(self.timer_at)))
                    .flatten();
                timer.set(at.map(|d| self.rt.sleep_until(d)));
            }
            if self.session.state() == State::Closed {
                self.done = true;
                timer.set(None);
                self.finish();
                return Poll::Ready(());
            }
            let Poll::Ready(wake) = self.poll_wake(timer.as_mut(), cx) else {
                if let Some(now) = last {
                    self.maybe_idle(now);
                }
                return Poll::Pending;
            };
            let now = self.now();
            self.on_wake(now, wake);
            let now = self.now();
            self.rounds(now);
            last = Some(now);
        }
    }

    /// Frees the busy part when nothing in it outlives this poll and no user command came
    /// for [`BUSY_LINGER`]: not between the bursts of a steady sender (which would allocate it
    /// and regrow its buffers every burst), but at the first wakeup (a heartbeat, say) after
    /// traffic stops. A busy part made only for a PING is freed once it is written.
    fn maybe_idle(&mut self, now: Instant) {
        let writing = self.conn.as_ref().is_some_and(|c| c.writing != NOT_WRITING);
        if !writing
            && self.busy.as_ref().is_some_and(|b| {
                b.is_idle() && now.as_nanos().saturating_sub(b.last_command) >= BUSY_LINGER
            })
        {
            self.busy = None;
            self.release_read_buf();
        }
    }

    /// Polls the core until it waits, performs the actions, and feeds back the events the
    /// actions produced at once (closes, empty writes) until there are none.
    fn rounds(&mut self, now: Instant) {
        loop {
            if let Some(t) = tap(&mut self.custom) {
                t.round(now);
            }
            let until = loop {
                let action = self.session.poll(now);
                if let Some(t) = tap(&mut self.custom) {
                    t.action(&action);
                }
                match action {
                    Action::Wait { until } => break until,
                    Action::Resolve { epoch } => self.start_resolve(epoch),
                    Action::Dial { epoch, addr, .. } => self.start_dial(epoch, addr),
                    Action::Transmit {
                        epoch, pongs, ping, ..
                    } => self.transmit(epoch, pongs, ping),
                    Action::Close { epoch, reason } => self.close_epoch(epoch, reason),
                    Action::Notify(n) => self.notify(n),
                    other => tracing::warn!(action = ?other, "unknown action ignored"),
                }
            };
            self.set_timer(until);
            let local = match &mut self.busy {
                Some(b) if !b.local.is_empty() => std::mem::take(&mut b.local),
                _ => break,
            };
            for l in local {
                let event = match l {
                    Local::Closed(epoch) => Event::Closed { epoch },
                    Local::Written(epoch) => Event::Written { epoch },
                    Local::IoError(epoch, error) => Event::IoError { epoch, error },
                };
                feed(&mut self.session, &mut self.custom, now, event);
            }
        }
        self.publish();
    }

    /// Publishes the state and counters, then hands out the round's receipts and events, so
    /// whoever sees an event or an outcome also sees the stats that include it.
    fn publish(&mut self) {
        self.shared
            .publish(self.session.state(), self.session.stats());
        if let Some(b) = &mut self.busy {
            self.shared.mailbox().settle(&mut b.settled, &mut b.wakers);
        }
        if self.told {
            self.told = false;
            self.shared.reveal_events();
            // Events are rare (state changes, RTT samples): an idle session should not keep
            // the core's action queue sized for its connect-time burst (empty now: the
            // round ended with a wait).
            self.session.shrink_to_fit();
        }
    }

    /// Re-arms the one timer only when needed: a timer armed for an earlier instant is kept
    /// (it fires, the core is polled, and the timer is armed again for the later deadline, or
    /// dropped if there is none), so a deadline that moves later on every read, or comes and
    /// goes with every write, costs nothing.
    fn set_timer(&mut self, until: Option<Instant>) {
        let at = until.map_or(UNARMED, Instant::as_nanos);
        // A timer armed for an earlier instant is kept even when the deadline goes away
        // (`UNARMED` is later than everything): it fires once, the core finds nothing due,
        // and the timer is dropped then. Dropping and re-creating it instead, as a write
        // deadline comes and goes with every write, costs a timer registration per write
        // (on async-io, a wakeup of its reactor thread).
        let keep = self.timer_at <= at;
        if !keep {
            self.timer_at = at;
            self.rearm = true;
        }
    }

    fn start_resolve(&mut self, epoch: Epoch) {
        debug_assert!(self.pending.is_none(), "one resolution or dial at a time");
        let target = match &self.target {
            Dest::V4(a) => {
                let addrs = vec![SocketAddr::V4(*a)];
                tracing::trace!(%epoch, target = %a, "resolving");
                self.pending = Some((
                    epoch,
                    future::ready(Wake::Resolved(epoch, Ok(addrs))).boxed(),
                ));
                return;
            }
            Dest::Target(t) => &**t,
        };
        let fut: BoxFuture<'static, io::Result<Vec<SocketAddr>>> = match target {
            Target::Addrs(a) => future::ready(Ok(a.clone())).boxed(),
            Target::HostPort(s) => match Target::split_host_port(s) {
                Some((host, port)) => self.rt.resolve(host, port).boxed(),
                None => {
                    let e = io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{s:?} is not host:port"),
                    );
                    future::ready(Err(e)).boxed()
                }
            },
            Target::Discover(d) => d.discover(),
        };
        tracing::trace!(%epoch, ?target, "resolving");
        self.pending = Some((epoch, fut.map(move |r| Wake::Resolved(epoch, r)).boxed()));
    }

    fn start_dial(&mut self, epoch: Epoch, addr: SocketAddr) {
        debug_assert!(self.pending.is_none(), "one resolution or dial at a time");
        let mut handshake = Vec::new();
        self.codec.handshake(&mut handshake);
        let rt = R::clone(&self.rt);
        let (opts, connector) = match &self.custom {
            Some(c) => (c.socket, c.connector.clone()),
            None => (SocketOptions::default(), None),
        };
        let fut = async move {
            let (reader, mut writer) = match connector {
                Some(connect) => {
                    let stream = connect(addr).await?;
                    opts.apply(SockRef::from(&stream))?;
                    stream.set_nonblocking(true)?;
                    rt.register(stream)?
                }
                None => rt.connect(addr, &opts).await?,
            };
            if !handshake.is_empty() {
                writer.write_all(&handshake).await?;
                writer.flush().await?;
            }
            Ok((reader, writer))
        };
        self.pending = Some((epoch, fut.map(move |r| Wake::Dialed(epoch, r)).boxed()));
    }

    /// Encodes the whole transmit into the one buffer and starts a single write.
    fn transmit(&mut self, epoch: Epoch, pongs: u8, ping: bool) {
        let b = busy(&mut self.busy);
        b.out.clear();
        let mut bad = None;
        for _ in 0..pongs {
            bad = bad.or(self.codec.encode(Frame::Pong, &mut b.out).err());
        }
        if ping {
            bad = bad.or(self.codec.encode(Frame::Ping, &mut b.out).err());
        }
        for p in self.session.transmit_payloads() {
            bad = bad.or(self.codec.encode(Frame::Data(p), &mut b.out).err());
        }
        let conn = match &mut self.conn {
            Some(c) if c.epoch == epoch => c,
            _ => {
                // The core only transmits on its current connection, which is always ours.
                b.local.push(Local::IoError(epoch, NetError::Reset));
                return;
            }
        };
        if let Some(e) = bad {
            // Payloads are checked at enqueue, so only a codec that changes its mind gets
            // here; the connection can no longer be trusted to carry the batch.
            tracing::error!(%epoch, error = %e, "cannot encode transmit");
            b.local.push(Local::IoError(epoch, NetError::Other));
        } else if b.out.is_empty() {
            b.local.push(Local::Written(epoch));
        } else {
            conn.writing = 0;
        }
    }

    /// Drops whatever belongs to `epoch` (socket, dial or resolution); dropping closes it.
    fn close_epoch(&mut self, epoch: Epoch, reason: DisconnectReason) {
        if self.conn.as_ref().is_some_and(|c| c.epoch == epoch) {
            self.conn = None;
            // A partial frame of a closed connection is worthless.
            self.read_filled = 0;
            self.release_read_buf();
            tracing::debug!(%epoch, %reason, "socket closed");
        }
        if self.pending.as_ref().is_some_and(|(e, _)| *e == epoch) {
            self.pending = None;
        }
        busy(&mut self.busy).local.push(Local::Closed(epoch));
    }

    fn notify(&mut self, n: Notification) {
        let n = match n {
            Notification::Outcome {
                id,
                outcome,
                payload,
            } => {
                let Some(b) = self.busy.as_mut() else {
                    return;
                };
                if let Some((slot, batch)) = b.receipts.remove(&id) {
                    let r = match (outcome, batch) {
                        (Outcome::Delivered, _) => Ok(()),
                        (o, false) => Err(Undelivered::new(o, payload.unwrap_or_default())),
                        (o, true) => {
                            // The core hands back the records the driver gave it.
                            let b =
                                Batch::from_vec(payload.unwrap_or_default()).unwrap_or_default();
                            Err(Undelivered::batch(o, b))
                        }
                    };
                    b.settled.push((slot, r));
                }
                return;
            }
            n => n,
        };
        let detail = match &n {
            Notification::AttemptFailed { epoch, .. }
            | Notification::Disconnected { epoch, .. } => {
                match self.busy.as_ref().and_then(|b| b.last_error.as_ref()) {
                    Some((e, text)) if e == epoch => Some(text.clone()),
                    _ => None,
                }
            }
            _ => None,
        };
        log(&n, detail.as_deref());
        let at = self.rt.now().saturating_duration_since(self.origin);
        self.shared.event(SessionEvent {
            at,
            notification: n,
            detail,
            missed: 0,
        });
        self.told = true;
    }

    fn poll_command(&mut self, cx: &mut Context<'_>) -> Poll<Wake<R>> {
        if !self.handles {
            return Poll::Pending;
        }
        if let Some(c) = self.busy.as_mut().and_then(|b| b.cmds.pop_front()) {
            return Poll::Ready(Wake::Command(Some(c)));
        }
        let took = match &mut self.busy {
            Some(b) => self.shared.mailbox().take(&mut b.cmds, cx),
            None => {
                // An idle session allocates its busy part only once a command is there.
                let mut cmds = VecDeque::new();
                let took = self.shared.mailbox().take(&mut cmds, cx);
                if matches!(took, Took::Some) {
                    busy(&mut self.busy).cmds = cmds;
                }
                took
            }
        };
        match took {
            Took::Some => Poll::Ready(Wake::Command(busy(&mut self.busy).cmds.pop_front())),
            Took::HandlesGone => Poll::Ready(Wake::Command(None)),
            Took::Nothing => Poll::Pending,
        }
    }

    fn poll_wake(
        &mut self,
        timer: Pin<&mut Option<R::Sleep>>,
        cx: &mut Context<'_>,
    ) -> Poll<Wake<R>> {
        // Alternate whether user commands or the socket go first, so that neither a sender
        // that never pauses nor a peer that never stops talking can starve the other.
        self.commands_first = !self.commands_first;
        if self.commands_first {
            if let Poll::Ready(w) = self.poll_command(cx) {
                return Poll::Ready(w);
            }
        }
        if let Poll::Ready(w) = self.poll_io(timer, cx) {
            return Poll::Ready(w);
        }
        if !self.commands_first {
            if let Poll::Ready(w) = self.poll_command(cx) {
                return Poll::Ready(w);
            }
        }
        Poll::Pending
    }

    fn poll_io(
        &mut self,
        mut timer: Pin<&mut Option<R::Sleep>>,
        cx: &mut Context<'_>,
    ) -> Poll<Wake<R>> {
        if let Some(conn) = &mut self.conn {
            if conn.writing != NOT_WRITING {
                let pos = &mut conn.writing;
                let out = self.busy.as_ref().map_or(&[][..], |b| &b.out);
                if let Poll::Ready(r) = poll_write_all(&mut conn.writer, out, pos, cx) {
                    conn.writing = NOT_WRITING;
                    return Poll::Ready(Wake::Written(conn.epoch, r));
                }
            }
            if let Some(reader) = &mut conn.reader {
                if self.read_buf.is_empty() {
                    self.read_buf = pool::take().into_boxed_slice();
                }
                if self.read_filled >= self.read_buf.len() {
                    // Empty (a new buffer) or filled by a partial frame.
                    self.read_buf =
                        grow_read_buf(std::mem::take(&mut self.read_buf), self.codec.max_frame());
                }
                if self.read_filled >= self.read_buf.len() {
                    // A codec that lets a frame outgrow its own maximum: never grow further.
                    let error = FrameError::TooLarge {
                        size: self.read_filled,
                        max: self.codec.max_frame(),
                    };
                    conn.reader = None;
                    return Poll::Ready(Wake::Overflow(conn.epoch, error));
                }
                let space = &mut self.read_buf[self.read_filled..];
                if let Poll::Ready(r) = Pin::new(reader).poll_read(cx, space) {
                    return Poll::Ready(Wake::Read(conn.epoch, r));
                }
                self.release_read_buf();
            }
        }
        if let Some((_, fut)) = &mut self.pending {
            if let Poll::Ready(w) = fut.as_mut().poll(cx) {
                self.pending = None;
                return Poll::Ready(w);
            }
        }
        if let Some(sleep) = timer.as_mut().as_pin_mut() {
            if sleep.poll(cx).is_ready() {
                timer.set(None);
                self.timer_at = UNARMED;
                return Poll::Ready(Wake::Timer);
            }
        }
        Poll::Pending
    }

    /// Gives the read buffer back to the pool unless it holds a partial frame.
    fn release_read_buf(&mut self) {
        // Only an idle session gives it back: a busy one would hand it over and take one
        // back on every wakeup, and a task that moves between executor threads (smol) would
        // find the slot of its new thread empty and allocate.
        if self.busy.is_none() && self.read_filled == 0 && !self.read_buf.is_empty() {
            pool::put(std::mem::take(&mut self.read_buf).into_vec());
        }
    }

    fn on_wake(&mut self, now: Instant, wake: Wake<R>) {
        self.on_wake_inner(now, wake);
        self.release_read_buf();
    }

    fn on_wake_inner(&mut self, now: Instant, wake: Wake<R>) {
        match wake {
            Wake::Command(Some(c)) => {
                busy(&mut self.busy).last_command = now.as_nanos();
                self.command(now, c);
                for _ in 1..COMMAND_BATCH {
                    match self.busy.as_mut().and_then(|b| b.cmds.pop_front()) {
                        Some(c) => self.command(now, c),
                        None => break,
                    }
                }
            }
            Wake::Command(None) => self.all_handles_dropped(now),
            Wake::Timer => {
                if let Some(t) = tap(&mut self.custom) {
                    t.event(now, &Event::Timer);
                }
                self.session.handle(now, Event::Timer);
            }
            Wake::Resolved(epoch, Ok(addrs)) => {
                tracing::debug!(%epoch, ?addrs, "resolved");
                let event = Event::Resolved {
                    epoch,
                    addrs: &addrs,
                };
                feed(&mut self.session, &mut self.custom, now, event);
            }
            Wake::Resolved(epoch, Err(e)) => {
                let error = classify_resolve(&e);
                self.failure(
                    now,
                    epoch,
                    e.to_string(),
                    Event::ResolveFailed { epoch, error },
                );
            }
            Wake::Dialed(epoch, Ok((reader, writer))) => {
                self.read_filled = 0;
                let handshake = self.codec.handshake_replies();
                self.conn = Some(Conn {
                    epoch,
                    reader: Some(reader),
                    writer,
                    writing: NOT_WRITING,
                    handshake,
                });
                if handshake == 0 {
                    feed(
                        &mut self.session,
                        &mut self.custom,
                        now,
                        Event::DialOk { epoch },
                    );
                } else {
                    tracing::debug!(%epoch, replies = handshake, "reading the handshake replies");
                    // The detail of a connect timeout that strikes before the replies came.
                    let why = format!(
                        "no handshake reply ({handshake} expected) within the connect timeout"
                    );
                    busy(&mut self.busy).last_error = Some((epoch, why));
                }
            }
            Wake::Dialed(epoch, Err(e)) => {
                let error = classify(&e);
                self.failure(
                    now,
                    epoch,
                    e.to_string(),
                    Event::DialFailed { epoch, error },
                );
            }
            Wake::Written(epoch, Ok(())) => {
                feed(
                    &mut self.session,
                    &mut self.custom,
                    now,
                    Event::Written { epoch },
                );
            }
            Wake::Read(epoch, Err(e)) if self.handshaking(epoch) => {
                self.handshake_failed(now, epoch, classify(&e), e.to_string());
            }
            Wake::Read(epoch, Ok(0)) if self.handshaking(epoch) => {
                let detail = "the peer closed the connection during the handshake".into();
                self.handshake_failed(now, epoch, NetError::Reset, detail);
            }
            Wake::Overflow(epoch, error) if self.handshaking(epoch) => {
                self.read_filled = 0;
                let detail = format!("handshake reply: {error}");
                self.handshake_failed(now, epoch, NetError::Other, detail);
            }
            Wake::Written(epoch, Err(e)) | Wake::Read(epoch, Err(e)) => {
                if let Some(c) = &mut self.conn {
                    c.reader = None;
                }
                let error = classify(&e);
                self.failure(now, epoch, e.to_string(), Event::IoError { epoch, error });
            }
            Wake::Read(epoch, Ok(0)) => {
                if let Some(c) = &mut self.conn {
                    c.reader = None;
                }
                feed(
                    &mut self.session,
                    &mut self.custom,
                    now,
                    Event::Eof { epoch },
                );
            }
            Wake::Read(epoch, Ok(n)) => self.on_read(now, epoch, n),
            Wake::Overflow(epoch, error) => {
                self.read_filled = 0;
                let event = Event::ProtocolError { epoch, error };
                feed(&mut self.session, &mut self.custom, now, event);
            }
        }
    }

    /// Whether `epoch` is the socket whose handshake replies are still being read.
    fn handshaking(&self, epoch: Epoch) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.epoch == epoch && c.handshake > 0)
    }

    /// The handshake failed: the attempt fails with `error` (the socket is closed here: the
    /// core never saw it connected).
    fn handshake_failed(&mut self, now: Instant, epoch: Epoch, error: NetError, detail: String) {
        tracing::warn!(%epoch, %error, %detail, "handshake failed");
        self.conn = None;
        self.read_filled = 0;
        self.failure(now, epoch, detail, Event::DialFailed { epoch, error });
    }

    /// Feeds a failure of `epoch` to the core, keeping the OS (or peer) text behind it for
    /// the event that reports it.
    fn failure(&mut self, now: Instant, epoch: Epoch, detail: String, event: Event<'_>) {
        busy(&mut self.busy).last_error = Some((epoch, detail));
        feed(&mut self.session, &mut self.custom, now, event);
    }

    /// Decodes every complete frame in the read buffer, then keeps the partial rest.
    fn on_read(&mut self, now: Instant, epoch: Epoch, mut n: usize) {
        let before = self.read_filled;
        self.read_filled += n;
        // The read took all the room there was: more is probably waiting.
        let filled = self.read_filled >= self.read_buf.len();
        let mut start = 0;
        if self.handshaking(epoch) {
            // The handshake replies come first; the core hears of the connection once the
            // last one is read and accepted.
            let mut rejected = None;
            while start < self.read_filled {
                let Some(c) = self.conn.as_mut().filter(|c| c.handshake > 0) else {
                    break;
                };
                match self.codec.decode(&self.read_buf[start..self.read_filled]) {
                    Ok(Some((frame, used))) => {
                        match frame {
                            Frame::Data(reply) => match self.codec.handshake_reply(reply) {
                                Ok(()) => c.handshake -= 1,
                                Err(e) => {
                                    // The peer's words, for the event; a line can be long.
                                    let text =
                                        String::from_utf8_lossy(&reply[..reply.len().min(200)]);
                                    rejected = Some((e, format!("handshake refused: {text}")));
                                    break;
                                }
                            },
                            // The answer to a PING in the handshake.
                            Frame::Pong => c.handshake -= 1,
                            // Not answered: the core does not know this connection yet.
                            Frame::Ping => {}
                        }
                        // Clamped: a codec claiming more than it was given must not panic.
                        start = (start + used.max(1)).min(self.read_filled);
                    }
                    Ok(None) => break,
                    Err(error) => {
                        rejected = Some((NetError::Other, format!("handshake reply: {error}")));
                        break;
                    }
                }
            }
            if let Some((error, detail)) = rejected {
                self.handshake_failed(now, epoch, error, detail);
                return;
            }
            if self.handshaking(epoch) {
                self.keep_partial(start, filled);
                return;
            }
            tracing::debug!(%epoch, "handshake complete");
            if let Some(b) = &mut self.busy {
                b.last_error = b.last_error.take().filter(|(e, _)| *e != epoch);
            }
            feed(
                &mut self.session,
                &mut self.custom,
                now,
                Event::DialOk { epoch },
            );
            // The handshake's bytes are not the connection's traffic.
            n -= start.saturating_sub(before).min(n);
        }
        let (session, custom) = (&mut self.session, &mut self.custom);
        feed(session, custom, now, Event::BytesRead { epoch, len: n });
        let per_reply_acks = session.config().acks == AckMode::InOrder;
        let mut failed = false;
        while start < self.read_filled {
            match self.codec.decode(&self.read_buf[start..self.read_filled]) {
                Ok(Some((frame, used))) => {
                    match frame {
                        Frame::Data(d) => {
                            self.shared.inbound(d.to_vec());
                            if per_reply_acks {
                                feed(session, custom, now, Event::Acked { epoch, count: 1 });
                            }
                        }
                        Frame::Ping => feed(session, custom, now, Event::PeerPing { epoch }),
                        Frame::Pong => feed(session, custom, now, Event::Pong { epoch }),
                    }
                    // A codec claiming zero bytes would loop forever: treat it as consumed.
                    start += used.max(1);
                    if session.connection() != Some(epoch) {
                        // That frame ended the connection (a lying ack, say): the rest of
                        // the buffer belongs to a dead socket.
                        failed = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%epoch, %error, "inbound framing error");
                    feed(session, custom, now, Event::ProtocolError { epoch, error });
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            self.read_filled = 0;
            if let Some(c) = &mut self.conn {
                c.reader = None;
            }
        } else {
            self.keep_partial(start, filled);
        }
    }

    /// Moves the undecoded rest (from `start`) to the front of the read buffer, growing it if
    /// the read `filled` it.
    fn keep_partial(&mut self, start: usize, filled: bool) {
        let end = self.read_filled.min(self.read_buf.len());
        self.read_buf.copy_within(start.min(end)..end, 0);
        self.read_filled = end - start.min(end);
        if filled {
            self.read_buf =
                grow_read_buf(std::mem::take(&mut self.read_buf), self.codec.max_frame());
        }
    }

    fn command(&mut self, now: Instant, c: Command) {
        match c {
            Command::Send {
                payload,
                delivery,
                slot,
            } => {
                if let Err(fe) = self.codec.check(&payload) {
                    let outcome = Outcome::Rejected(RejectReason::Unencodable(fe));
                    let mut u = Undelivered::new(outcome, payload);
                    u.frame_error = Some(fe);
                    busy(&mut self.busy).settled.push((slot, Err(u)));
                    return;
                }
                if let Some(t) = tap(&mut self.custom) {
                    t.enqueue(now, payload.len(), None, delivery);
                }
                match self.session.enqueue(now, payload, delivery) {
                    Ok(id) => {
                        busy(&mut self.busy).receipts.insert(id, (slot, false));
                    }
                    Err(r) => {
                        let u = Undelivered::new(Outcome::Rejected(r.reason), r.payload);
                        busy(&mut self.busy).settled.push((slot, Err(u)));
                    }
                }
            }
            Command::SendBatch {
                batch,
                delivery,
                slot,
            } => {
                let codec = &self.codec;
                if let Some(fe) = batch.iter().find_map(|m| codec.check(m).err()) {
                    let outcome = Outcome::Rejected(RejectReason::Unencodable(fe));
                    let mut u = Undelivered::batch(outcome, batch);
                    u.frame_error = Some(fe);
                    busy(&mut self.busy).settled.push((slot, Err(u)));
                    return;
                }
                if let Some(t) = tap(&mut self.custom) {
                    let shape = Some((batch.len(), batch.largest()));
                    t.enqueue(now, batch.byte_len(), shape, delivery);
                }
                match self.session.enqueue_batch(now, batch, delivery) {
                    Ok(id) => {
                        busy(&mut self.busy).receipts.insert(id, (slot, true));
                    }
                    Err(r) => {
                        let b = Batch::from_vec(r.payload).unwrap_or_default();
                        let u = Undelivered::batch(Outcome::Rejected(r.reason), b);
                        busy(&mut self.busy).settled.push((slot, Err(u)));
                    }
                }
            }
            Command::Close { mode, done } => {
                busy(&mut self.busy).close_waiters.push(done);
                self.close(now, mode);
            }
            Command::Reconnect => {
                if let Some(t) = tap(&mut self.custom) {
                    t.reconnect(now);
                }
                self.session.reconnect_now(now);
            }
        }
    }

    fn close(&mut self, now: Instant, mode: CloseMode) {
        if let Some(t) = tap(&mut self.custom) {
            t.close(now, mode);
        }
        self.session.close(now, mode);
    }

    fn all_handles_dropped(&mut self, now: Instant) {
        self.handles = false;
        tracing::debug!("every handle dropped: closing");
        let drain = self
            .custom
            .as_ref()
            .map_or(DEFAULT_DROP_DRAIN, |c| c.drop_drain);
        self.close(now, CloseMode::Graceful { drain });
    }

    /// The session is closed: settle whatever is left and end every stream.
    fn finish(&mut self) {
        self.conn = None;
        self.pending = None;
        // Commands taken but not handled: their messages come back rejected.
        let closed = Outcome::Rejected(RejectReason::Closed);
        let b = busy(&mut self.busy);
        for c in std::mem::take(&mut b.cmds) {
            match c {
                Command::Send { payload, slot, .. } => {
                    b.settled
                        .push((slot, Err(Undelivered::new(closed, payload))));
                }
                Command::SendBatch { batch, slot, .. } => {
                    b.settled
                        .push((slot, Err(Undelivered::batch(closed, batch))));
                }
                Command::Close { done, .. } => b.close_waiters.push(done),
                Command::Reconnect => {}
            }
        }
        for (_, (slot, batch)) in b.receipts.drain() {
            // The core settles every message before it closes; this is a safety net.
            let outcome = Outcome::Abandoned(redial_core::AbandonReason::Closed);
            let u = if batch {
                Undelivered::batch(outcome, Batch::new())
            } else {
                Undelivered::new(outcome, Vec::new())
            };
            b.settled.push((slot, Err(u)));
        }
        self.publish();
        // From now on the mailbox refuses everything; what is still in it is rejected.
        let mut waiters = self
            .busy
            .take()
            .map(|b| b.close_waiters)
            .unwrap_or_default();
        waiters.extend(self.shared.mailbox().shut());
        // The streams end now, not when the task is dropped (a task polled by reference can
        // outlive its session).
        self.shared.end();
        for w in waiters {
            let _ = w.send(());
        }
        tracing::debug!("session task ended");
    }
}

impl<R: Runtime> Drop for Driver<R> {
    /// A task dropped before its session ended (its runtime shut down, say) still gives every
    /// message its real outcome: the session is closed at once (queued messages abandoned,
    /// written ones in doubt, each receipt with its payload), then settled as a normal end.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let now = self.now();
        self.session.close(now, CloseMode::Immediate);
        self.rounds(now);
        self.finish();
    }
}

pin_project_lite::pin_project! {
    /// The session's task: the [`Driver`] and its one timer, kept inline (pinned) rather
    /// than boxed, since a connected session always has one armed.
    pub(crate) struct Task<R: Runtime> {
        #[pin]
        timer: Option<R::Sleep>,
        driver: Driver<R>,
    }
}

impl<R: Runtime> Task<R> {
    pub(crate) fn new(driver: Driver<R>) -> Self {
        Task {
            timer: None,
            driver,
        }
    }
}

impl<R: Runtime> Future for Task<R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        this.driver.poll_run(this.timer, cx)
    }
}

/// The read buffer of the idle sessions of a thread. A session takes it for a read; while it
/// is busy it keeps it, and once idle (and holding no partial frame) it gives it back after
/// a read that was not ready: an idle session owns no read buffer, and a thread's idle
/// sessions, polled one at a time, share one warm buffer. A single slot, so taking and giving
/// back cost a few moves. (Giving it back on every wakeup of a busy session cost a third of
/// smol's batch throughput: its tasks move between executor threads, whose slots are then
/// empty.)
mod pool {
    use std::cell::Cell;

    use super::POOL_KEEP;

    thread_local! {
        static SLOT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }

    /// The thread's buffer, or an empty one (grown by the caller).
    pub(super) fn take() -> Vec<u8> {
        SLOT.try_with(Cell::take).unwrap_or_default()
    }

    /// Gives `buf` back, unless the slot is taken or `buf` is large (then it is freed).
    pub(super) fn put(buf: Vec<u8>) {
        if buf.len() <= POOL_KEEP {
            let _ = SLOT.try_with(|s| {
                let held = s.replace(buf);
                if held.capacity() != 0 {
                    // Keep the one already there; `buf` is freed.
                    drop(s.replace(held));
                }
            });
        }
    }
}

/// Grows the read buffer: to [`READ_START`] when empty, else doubling by at most
/// [`READ_CHUNK`], never beyond the maximum frame plus a chunk (plus slack for a header).
fn grow_read_buf(buf: Box<[u8]>, max_frame: usize) -> Box<[u8]> {
    let bound = max_frame.saturating_add(64 + READ_CHUNK);
    let len = buf.len();
    let want = (len + len.clamp(READ_START, READ_CHUNK)).min(bound);
    if want <= len {
        return buf;
    }
    let mut v = buf.into_vec();
    // Exact, so the boxed slice needs no shrinking.
    v.reserve_exact(want - len);
    v.resize(want, 0);
    v.into_boxed_slice()
}

/// Writes `buf[*pos..]` and flushes; `*pos` survives `Pending`.
fn poll_write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &[u8],
    pos: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while *pos < buf.len() {
        match Pin::new(&mut *w).poll_write(cx, &buf[*pos..]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => *pos += n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    Pin::new(w).poll_flush(cx)
}

/// The `tracing` line for a notification.
fn log(n: &Notification, detail: Option<&str>) {
    match n {
        Notification::StateChanged { from, to } => {
            tracing::info!(?from, ?to, "state changed");
        }
        Notification::AttemptStarted {
            epoch,
            attempt,
            addr,
        } => tracing::info!(%epoch, attempt, %addr, "dialing"),
        Notification::AttemptFailed {
            epoch,
            attempt,
            addr,
            error,
            next_delay,
        } => tracing::warn!(
            %epoch,
            attempt,
            addr = ?addr,
            %error,
            detail = detail.unwrap_or(""),
            next_delay = ?next_delay,
            "attempt failed"
        ),
        Notification::Connected {
            epoch,
            addr,
            attempt,
        } => tracing::info!(%epoch, %addr, attempt, "connected"),
        Notification::Disconnected {
            epoch,
            reason: reason @ DisconnectReason::HeartbeatTimeout { .. },
            next_delay,
            ..
        } => tracing::warn!(%epoch, %reason, next_delay = ?next_delay, "heartbeat timeout"),
        Notification::Disconnected {
            epoch,
            reason,
            uptime,
            next_delay,
        } => tracing::info!(
            %epoch,
            %reason,
            detail = detail.unwrap_or(""),
            uptime = ?uptime,
            next_delay = ?next_delay,
            "disconnected"
        ),
        Notification::Rtt { sample, smoothed } => {
            tracing::trace!(?sample, ?smoothed, "rtt");
        }
        Notification::GaveUp {
            failures,
            elapsed,
            last_error,
        } => tracing::error!(failures, ?elapsed, %last_error, "gave up"),
        other => tracing::debug!(notification = ?other, "notification"),
    }
}
