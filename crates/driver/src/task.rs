//! The run loop: one task per session, owning the core, the socket and every write.
//!
//! Each turn: exchange with the user's side (hand out receipts, data and events; take
//! commands and the credit of what the user took), apply that to the core, drain the core's
//! actions until it waits, then wait for whatever comes first: the timer, the resolution or
//! dial in flight, the socket (read or write), or the user.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant};

use redial_core::{Action, CloseMode, Input, Instant, NetError, Protocol, Received, State};

use crate::budget::SharedBudget;
use crate::commands::Commands;
use crate::connect::Connector;
use crate::dial::{Dialed, Dialer};
use crate::follow::Follow;
use crate::io::{Conn, Read, STACK_READ};
use crate::notify::Notify;
use crate::received::Message;
use crate::runtime::Runtime;
use crate::shared::{Inbox, Outbox, Shared, INBOUND};
use crate::tap::Tapped;
use crate::timer::Timer;

/// Turns of the loop in one poll before the task yields to its executor (so a session that is
/// never idle does not starve its neighbours on the same thread).
const TURNS_PER_POLL: usize = 64;

/// Everything the loop owns besides its timer.
pub(crate) struct Run<R: Runtime, C: Connector, P: Protocol> {
    pub(crate) rt: R,
    pub(crate) origin: StdInstant,
    pub(crate) session: Tapped<P>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) dialer: Dialer<R, C>,
    pub(crate) conn: Option<Conn<C::Stream>>,
    pub(crate) commands: Commands,
    pub(crate) notify: Notify,
    pub(crate) meter: crate::metrics::Meter,
    pub(crate) outbox: Outbox,
    pub(crate) inbox: Inbox,
    /// How long the graceful close started by dropping every handle may drain.
    pub(crate) drop_drain: Duration,
    pub(crate) handles_gone: bool,
    /// The state at the end of the last round, handed out with that round's events (the
    /// stats go out as they are at each exchange: never behind what the events said).
    pub(crate) state: State,
    pub(crate) done: bool,
    /// The fleet's retry budget, if the session shares one.
    pub(crate) budget: Option<SharedBudget>,
    /// The watched endpoint set and the move off a departed endpoint.
    pub(crate) follow: Follow,
}

pin_project_lite::pin_project! {
    /// A session's task: the whole run loop as one future. [`crate::Builder::spawn`] spawns
    /// it; [`crate::Builder::build`] hands it to you, to spawn (locally or not) or await on a
    /// thread of your choice. It is `Send` when its runtime's timer, its connector and its
    /// protocol are.
    #[must_use = "the session does nothing unless its task is polled"]
    pub struct SessionTask<R: Runtime, C: Connector, P: Protocol> {
        #[pin]
        timer: Timer<R>,
        run: Run<R, C, P>,
    }
}

impl<R: Runtime, C: Connector, P: Protocol> std::fmt::Debug for SessionTask<R, C, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionTask")
    }
}

impl<R: Runtime, C: Connector, P: Protocol> SessionTask<R, C, P> {
    pub(crate) fn new(run: Run<R, C, P>) -> Self {
        SessionTask {
            timer: Timer::new(),
            run,
        }
    }
}

impl<R: Runtime, C: Connector, P: Protocol> Future for SessionTask<R, C, P> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let (run, mut timer) = (this.run, this.timer);
        if run.done {
            return Poll::Ready(());
        }
        let mut progressed = true;
        for _ in 0..TURNS_PER_POLL {
            run.shared.exchange(
                &mut run.outbox,
                &mut run.inbox,
                (run.state, run.session.stats()),
                Some(cx),
            );
            let took = !run.inbox.commands.is_empty()
                || run.inbox.taken != (0, 0)
                || (run.inbox.handles_gone && !run.handles_gone);
            if !progressed && !took {
                if run.session.queue_len() == 0 {
                    // Parked with nothing held: an idle session keeps no spare action queue
                    // (320 B after its connect, measured).
                    run.session.shrink_to_fit();
                }
                return Poll::Pending;
            }
            let now = run.now();
            run.apply_inbox(now);
            run.rounds(now);
            timer.as_mut().arm(&run.rt, run.origin, run.next_deadline());
            if run.session.state() == State::Closed {
                timer.as_mut().stop();
                run.finish();
                return Poll::Ready(());
            }
            progressed = run.poll_io(cx) | timer.as_mut().poll_fired(cx);
        }
        // Still busy: let the executor run others, and come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<R: Runtime, C: Connector, P: Protocol> Run<R, C, P> {
    fn now(&self) -> Instant {
        Instant::from_std(self.origin, self.rt.now())
    }

    /// The earliest of the core's deadline and a scheduled move.
    fn next_deadline(&self) -> Option<Instant> {
        match (self.session.next_deadline(), self.follow.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The budget's advice when it refuses this attempt (first attempts are never refused).
    fn budget_refusal(&self) -> Option<Duration> {
        let budget = self.budget.as_ref()?;
        if self.session.failures() == 0 {
            return None;
        }
        budget.withdraw(self.rt.now()).err().map(|d| d.retry_in)
    }

    /// What the budget and the watch learn from a notification.
    fn observe(&mut self, now: Instant, n: &redial_core::Notification) {
        match n {
            redial_core::Notification::Connected { addr, .. } => {
                if let Some(b) = &self.budget {
                    b.deposit(self.rt.now());
                }
                let endpoint = self.dialer.endpoint(*addr).cloned();
                self.follow.connected(endpoint, now);
            }
            redial_core::Notification::Disconnected { .. } => self.follow.disconnected(),
            _ => {}
        }
    }

    fn input(&mut self, now: Instant, input: Input<'_>) {
        if self.session.handle_input(now, input) == redial_core::Handled::Stale {
            tracing::debug!(?input, "stale input ignored");
        }
    }

    /// The user's commands and credit, applied to the core.
    fn apply_inbox(&mut self, now: Instant) {
        let (n, bytes) = std::mem::take(&mut self.inbox.taken);
        if n > 0 {
            self.session.inbound_taken(now, n, bytes);
        }
        while let Some(cmd) = self.inbox.commands.pop_front() {
            self.commands
                .apply(&mut self.session, now, cmd, &mut self.outbox);
        }
        if self.inbox.handles_gone && !self.handles_gone {
            self.handles_gone = true;
            tracing::debug!("every handle dropped: closing");
            let drain = self.drop_drain;
            self.session.close(now, CloseMode::Graceful { drain });
        }
    }

    /// Drains the core's actions and performs them.
    fn rounds(&mut self, now: Instant) {
        loop {
            match self.session.poll(now) {
                Action::Wait { .. } => break,
                Action::Resolve { epoch } => match self.budget_refusal() {
                    Some(retry_in) => {
                        tracing::info!(%epoch, ?retry_in, "retry budget refused the attempt");
                        self.session.defer_attempt(now, epoch, retry_in);
                    }
                    None => self.dialer.start_resolve(&self.rt, epoch),
                },
                Action::Dial { epoch, addr, .. } => {
                    if let Err(e) = self.dialer.start_dial(epoch, addr) {
                        self.notify.set_detail(epoch, e.error.to_string());
                        self.input(
                            now,
                            Input::DialFailed {
                                epoch,
                                error: e.class,
                            },
                        );
                    }
                }
                Action::Transmit { epoch } => match &mut self.conn {
                    Some(c) if c.epoch == epoch => {
                        if self.session.encode_transmit(&mut c.tx) > 0 {
                            c.start_write();
                        }
                    }
                    _ => self.input(
                        now,
                        Input::IoError {
                            epoch,
                            error: NetError::Aborted,
                        },
                    ),
                },
                Action::Close { epoch, reason } => {
                    if self.conn.as_ref().is_some_and(|c| c.epoch == epoch) {
                        // Dropping the stream closes the socket.
                        self.conn = None;
                        tracing::debug!(%epoch, %reason, "socket closed");
                    }
                    self.dialer.abort(epoch);
                    self.input(now, Input::Closed { epoch });
                }
                Action::Notify(n) => {
                    self.observe(now, &n);
                    let at = self.rt.now().saturating_duration_since(self.origin);
                    self.meter.notification(&n, at);
                    let dialer = &self.dialer;
                    self.notify.notification(
                        n,
                        at,
                        |a| dialer.endpoint(a).cloned(),
                        &mut self.commands,
                        &mut self.outbox,
                    );
                }
                other => tracing::warn!(action = ?other, "unknown action ignored"),
            }
        }
        self.state = self.session.state();
        self.meter.round(&self.session);
    }

    /// Polls the socket, the dial and the resolution once each; returns whether anything
    /// happened.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        if let Some(c) = &mut self.conn {
            if c.writing() {
                if let Poll::Ready(r) = c.poll_write(cx) {
                    let (epoch, now) = (c.epoch, self.now());
                    progressed = true;
                    match r {
                        Ok(()) => self.input(now, Input::Written { epoch }),
                        Err(e) => self.io_failed(now, epoch, &e),
                    }
                }
            }
        }
        progressed |= self.poll_read(cx);
        let now = self.now();
        progressed |= self.follow.poll(cx, now);
        if self.follow.due(now) {
            let drain = self.follow.departure.drain;
            progressed |= self.session.move_off(now, drain);
        }
        if let Poll::Ready(d) = self.dialer.poll(cx) {
            progressed = true;
            let now = self.now();
            match d {
                Dialed::Resolved(epoch, Ok(())) => {
                    let addrs = self.dialer.addrs().to_vec();
                    tracing::debug!(%epoch, ?addrs, "resolved");
                    self.input(
                        now,
                        Input::Resolved {
                            epoch,
                            addrs: &addrs,
                        },
                    );
                }
                Dialed::Resolved(epoch, Err(e)) => {
                    let error = NetError::from_resolve_io(&e);
                    self.notify.set_detail(epoch, e.to_string());
                    self.input(now, Input::ResolveFailed { epoch, error });
                }
                Dialed::Connected(epoch, Ok(stream)) => {
                    self.conn = Some(Conn::new(epoch, stream));
                    self.input(now, Input::DialOk { epoch });
                }
                Dialed::Connected(epoch, Err(e)) => {
                    self.notify.set_detail(epoch, e.error.to_string());
                    self.input(
                        now,
                        Input::DialFailed {
                            epoch,
                            error: e.class,
                        },
                    );
                }
            }
        }
        progressed
    }

    fn io_failed(&mut self, now: Instant, epoch: redial_core::Epoch, e: &std::io::Error) {
        self.notify.set_detail(epoch, e.to_string());
        let error = NetError::from_io(e);
        self.input(now, Input::IoError { epoch, error });
    }

    /// Reads (unless the session does not want to) and hands the bytes to the core.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        let now = self.now();
        let max = self.session.protocol().max_frame();
        let wants = self.session.wants_read();
        let Some(c) = &mut self.conn else {
            return false;
        };
        if c.read_done || !wants {
            return false;
        }
        let epoch = c.epoch;
        if c.stalled {
            // Reading resumed: the bytes kept back go first.
            c.stalled = false;
            self.feed(now, None, 0);
            return true;
        }
        let mut stack = [0u8; STACK_READ];
        match c.poll_read(cx, &mut stack, max) {
            Poll::Pending => false,
            Poll::Ready(Read::Bytes { n, in_stack }) => {
                self.feed(now, in_stack.then(|| &stack[..n]), n);
                true
            }
            Poll::Ready(Read::Eof) => {
                self.input(now, Input::Eof { epoch });
                true
            }
            Poll::Ready(Read::Failed(e)) => {
                self.io_failed(now, epoch, &e);
                true
            }
        }
    }

    /// Hands bytes to the core: `stack` (a fresh read), or the kept bytes.
    fn feed(&mut self, now: Instant, stack: Option<&[u8]>, fresh: usize) {
        let Some(c) = &mut self.conn else {
            return;
        };
        let epoch = c.epoch;
        let (commands, outbox) = (&mut self.commands, &mut self.outbox);
        let mut sink = |r: Received<'_>| match r {
            Received::Reply { id, body, refused } => commands.reply(id, body, refused),
            Received::Message { sub, body, meta } => {
                let size = r.len();
                let stream = match sub {
                    None => Some(INBOUND),
                    Some(s) => commands.stream(s),
                };
                match stream {
                    Some(stream) => {
                        let msg = Message {
                            body: body.to_vec(),
                            topic: meta.topic.to_vec(),
                            pattern: meta.pattern.to_vec(),
                            reply_to: meta.reply_to.to_vec(),
                            headers: meta.headers.to_vec(),
                        };
                        outbox.received.push((stream, msg, size));
                    }
                    None => {
                        commands.unclaimed.0 += 1;
                        commands.unclaimed.1 += size;
                    }
                }
            }
            _ => {}
        };
        match stack {
            Some(bytes) => {
                let used = self
                    .session
                    .handle_read(now, epoch, bytes, fresh, &mut sink);
                c.keep(&bytes[used.min(bytes.len())..]);
            }
            None => {
                let used = self
                    .session
                    .handle_read(now, epoch, c.kept(), fresh, &mut sink);
                c.consume(used);
            }
        }
        if !c.kept().is_empty() && !self.session.wants_read() {
            c.stalled = true;
        }
        let (n, bytes) = std::mem::take(&mut self.commands.unclaimed);
        if n > 0 {
            // Replies and messages nobody waits for are credit again at once.
            self.session.inbound_taken(now, n, bytes);
        }
    }

    /// The session has ended: settle what is left, end every stream, release close waiters.
    fn finish(&mut self) {
        self.done = true;
        self.conn = None;
        self.commands.abandon_rest(&mut self.outbox);
        // Commands that come with these last exchanges are refused (the session is over)
        // and their refusals handed out by the next one, until one brings none: a command
        // dropped here would leave its receipt waiting forever. Those pushed after that are
        // refused by `end`.
        let now = self.now();
        loop {
            self.shared.exchange(
                &mut self.outbox,
                &mut self.inbox,
                (self.session.state(), self.session.stats()),
                None,
            );
            if self.inbox.commands.is_empty() {
                break;
            }
            while let Some(cmd) = self.inbox.commands.pop_front() {
                self.commands
                    .apply(&mut self.session, now, cmd, &mut self.outbox);
            }
        }
        let mut waiters = std::mem::take(&mut self.commands.close_waiters);
        waiters.extend(self.shared.end());
        for w in waiters {
            let _ = w.send(());
        }
        tracing::debug!("session task ended");
    }
}

impl<R: Runtime, C: Connector, P: Protocol> Drop for Run<R, C, P> {
    /// A task dropped before its session ended (its runtime shut down, say) still gives every
    /// message its real outcome: the session is closed at once (queued messages abandoned,
    /// written ones in doubt, each receipt with its payload), then settled as a normal end.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let now = self.now();
        self.session.close(now, CloseMode::Immediate);
        self.rounds(now);
        self.finish();
    }
}
