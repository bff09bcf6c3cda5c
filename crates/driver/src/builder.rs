//! Building and spawning a session.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redial_core::{AckMode, Codec, Config, ConfigError, Framed, LineCodec, Protocol, Session};

use crate::budget::SharedBudget;
use crate::commands::Commands;
use crate::connect::Connector;
use crate::dial::Dialer;
use crate::follow::Follow;
use crate::handle::{Events, Handle, Inbound};
use crate::notify::Notify;
use crate::runtime::{Runtime, Spawn, SpawnLocal};
use crate::shared::{Inbox, Outbox, Shared};
use crate::socket::SocketOptions;
use crate::tap::Tapped;
use crate::target::Target;
use crate::task::{Run, SessionTask};

/// The default of [`Builder::drop_drain`].
pub const DEFAULT_DROP_DRAIN: Duration = Duration::from_secs(1);

/// The default of [`Builder::event_capacity`].
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// What the user's side of a session is: a handle, the inbound stream, the event stream.
pub type Ends = (Handle, Inbound, Events);

/// Configures a session: runtime `R`, connector `C`, protocol `P`. Nothing is spawned and
/// nothing connects until [`Builder::spawn`], [`Builder::spawn_local`] or
/// [`Builder::build`].
pub struct Builder<R: Runtime, C: Connector, P: Protocol = Framed<LineCodec>> {
    runtime: R,
    connector: C,
    target: Target,
    config: Arc<Config>,
    protocol: P,
    socket: SocketOptions,
    drop_drain: Duration,
    event_capacity: usize,
    metrics: crate::metrics::Labels,
    budget: Option<SharedBudget>,
    departure: redial_core::spread::Departure,
    #[cfg(feature = "record")]
    record: Option<crate::trace::Pending<P>>,
}

/// Sessions built in this process so far: mixed into each one's spread seed, so sessions
/// built from one config still order a service's endpoints each their own way.
static BUILT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl<R: Runtime, C: Connector, P: Protocol> fmt::Debug for Builder<R, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("target", &self.target)
            .field("config", &self.config)
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime, C: Connector> Builder<R, C> {
    /// A session on `runtime`, dialing through `connector`, to `target` (`"host:port"`, a
    /// `SocketAddr`, `"unix:/path"`, endpoints, or [`Target::discover`]), with the default
    /// config, a plain [`LineCodec`] and default socket options.
    pub fn new(runtime: R, connector: C, target: impl Into<Target>) -> Self {
        Builder {
            runtime,
            connector,
            target: target.into(),
            config: Arc::new(Config::default()),
            protocol: Framed::new(LineCodec::plain()),
            socket: SocketOptions::default(),
            drop_drain: DEFAULT_DROP_DRAIN,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            metrics: crate::metrics::Labels::default(),
            budget: None,
            departure: redial_core::spread::Departure::new(),
            #[cfg(feature = "record")]
            record: None,
        }
    }
}

impl<R: Runtime, C: Connector, P: Protocol> Builder<R, C, P> {
    /// Sets the core configuration (backoff, give-up, heartbeat, queue and inbound bounds,
    /// timeouts, seed). Pass an `Arc<Config>` to share one copy between many sessions.
    pub fn config(mut self, config: impl Into<Arc<Config>>) -> Self {
        self.config = config.into();
        self
    }

    /// Bounds what was read but not yet taken from the [`crate::Inbound`], [`crate::Subscription`]s
    /// and reply receipts: at `messages` or `bytes`, the session stops reading its socket, so
    /// TCP pushes back on the peer; it reads again once the consumer has taken back to half of
    /// either bound. While we are the ones not reading, the peer's silence is not held against
    /// it (the events say `ReadPaused`). A peer's own PING waits too, in the bytes not read:
    /// answering it would mean reading past the data the bound holds back, which is what the
    /// bound prevents. So a peer with a heartbeat of its own may drop a consumer stalled past
    /// its timeout; the session then reconnects as after any drop. Shorthand for
    /// `Config::with_inbound` (call it after [`Builder::config`]).
    pub fn inbound_capacity(mut self, messages: usize, bytes: usize) -> Self {
        let mut cfg = (*self.config).clone();
        cfg.inbound = redial_core::InboundLimits {
            max_messages: messages,
            max_bytes: bytes,
        };
        self.config = Arc::new(cfg);
        self
    }

    /// Sets the protocol: `Resp::new()`, `Nats::new()`, `Framed::new(codec)`, or your own.
    pub fn protocol<Q: Protocol>(self, protocol: Q) -> Builder<R, C, Q> {
        Builder {
            runtime: self.runtime,
            connector: self.connector,
            target: self.target,
            config: self.config,
            protocol,
            socket: self.socket,
            drop_drain: self.drop_drain,
            event_capacity: self.event_capacity,
            metrics: self.metrics,
            budget: self.budget,
            departure: self.departure,
            // The recording was set up for the old protocol's type: it cannot describe this
            // one. `record` must come after `protocol` (documented there).
            #[cfg(feature = "record")]
            record: crate::trace::Pending::dropped(self.record),
        }
    }

    /// Sets a framing-only codec as the protocol ([`Framed`]; see [`Builder::acks`]).
    pub fn codec<X: Codec>(self, codec: X) -> Builder<R, C, Framed<X>> {
        self.protocol(Framed::new(codec))
    }

    /// Sets the connector (TLS, a Unix-aware dialer, your own).
    pub fn connector<D: Connector>(self, connector: D) -> Builder<R, D, P> {
        Builder {
            runtime: self.runtime,
            connector,
            target: self.target,
            config: self.config,
            protocol: self.protocol,
            socket: self.socket,
            drop_drain: self.drop_drain,
            event_capacity: self.event_capacity,
            metrics: self.metrics,
            budget: self.budget,
            departure: self.departure,
            #[cfg(feature = "record")]
            record: self.record,
        }
    }

    /// The connector, to adjust it in place.
    pub fn connector_mut(&mut self) -> &mut C {
        &mut self.connector
    }

    /// Sets the socket options (nodelay, keepalive, `TCP_USER_TIMEOUT`).
    pub fn socket_options(mut self, options: SocketOptions) -> Self {
        self.socket = options;
        self
    }

    /// How long the graceful close started by dropping every [`Handle`] may drain.
    /// Default 1 s.
    pub fn drop_drain(mut self, drain: Duration) -> Self {
        self.drop_drain = drain;
        self
    }

    /// How many undelivered [`crate::SessionEvent`]s the [`Events`] stream keeps (at least 1;
    /// default 1024). A reader that falls further behind loses the oldest ones, and the next
    /// event it reads counts them in [`crate::SessionEvent::missed`].
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// The `session` label of this session's metrics (default `"default"`); see
    /// [`crate::metrics`] for the names. Give each session its own name, from a fixed set: the
    /// label's values should stay few.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics_name(mut self, name: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.metrics.session = Some(match name.into() {
            std::borrow::Cow::Borrowed(s) => metrics::SharedString::const_str(s),
            std::borrow::Cow::Owned(s) => metrics::SharedString::from_owned(s),
        });
        self
    }

    /// Shares `budget` with the other sessions given it: a retry (an attempt after a
    /// failure) takes one of its tokens, or waits another backoff delay (at least the
    /// budget's advice) without counting a failure; a connection that comes up deposits.
    /// First attempts are never refused.
    pub fn retry_budget(mut self, budget: SharedBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// How the session leaves an endpoint that left a watched set ([`crate::Discover::watch`]):
    /// within what spread it starts moving, and how long what is in flight may drain.
    /// Default: 2 s and 5 s.
    pub fn departure(mut self, departure: redial_core::spread::Departure) -> Self {
        self.departure = departure;
        self
    }

    /// Validates the configuration and builds the session without spawning it: the returned
    /// task must be polled (spawned, locally or not, or awaited) for anything to happen.
    #[allow(clippy::type_complexity)] // The ends and the task, as `spawn` hands them out.
    pub fn build(self) -> Result<(Handle, Inbound, Events, SessionTask<R, C, P>), ConfigError> {
        if let Target::Endpoints(e) = &self.target {
            if e.is_empty() {
                return Err(ConfigError::NoAddresses);
            }
        }
        let origin = self.runtime.now();
        let n = BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed =
            redial_core::SplitMix64::new(self.config.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let seed = rand_seed(seed);
        let follow = Follow::new(&self.target, self.departure, seed);
        #[allow(unused_mut)] // Mutated only when recording.
        let mut session = Tapped::new(Session::new(
            self.config,
            self.protocol,
            redial_core::Instant::ZERO,
        )?);
        #[cfg(feature = "record")]
        if let Some(pending) = self.record {
            session.record(pending.into_recorder(session.protocol()));
        }
        let meter = crate::metrics::Meter::new(&self.metrics);
        let shared = Arc::new(Shared::new(self.event_capacity, meter.missed_events()));
        let run = Run {
            rt: self.runtime,
            origin,
            session,
            shared: Arc::clone(&shared),
            dialer: Dialer::new(self.target, self.connector, self.socket, seed),
            conn: None,
            commands: Commands::default(),
            notify: Notify::default(),
            meter,
            outbox: Outbox::default(),
            inbox: Inbox::default(),
            drop_drain: self.drop_drain,
            handles_gone: false,
            state: redial_core::State::Disconnected,
            done: false,
            budget: self.budget,
            follow,
        };
        let ends = (
            Handle {
                shared: Arc::clone(&shared),
            },
            Inbound {
                shared: Arc::clone(&shared),
            },
            Events { shared },
        );
        Ok((ends.0, ends.1, ends.2, SessionTask::new(run)))
    }

    /// Validates the configuration and spawns the session's task on the runtime. A bad
    /// configuration is an error here, before anything runs.
    pub fn spawn(self) -> Result<Ends, ConfigError>
    where
        R: Spawn,
        P: 'static,
        SessionTask<R, C, P>: Send,
    {
        let rt = self.runtime.clone();
        let (h, i, e, task) = self.build()?;
        rt.spawn(task);
        Ok((h, i, e))
    }

    /// Like [`Builder::spawn`], on a runtime that runs tasks on the current thread: nothing
    /// needs to be `Send`.
    pub fn spawn_local(self) -> Result<Ends, ConfigError>
    where
        R: SpawnLocal,
        P: 'static,
    {
        let rt = self.runtime.clone();
        let (h, i, e, task) = self.build()?;
        rt.spawn_local(task);
        Ok((h, i, e))
    }
}

#[cfg(feature = "record")]
#[cfg_attr(docsrs, doc(cfg(feature = "record")))]
impl<R: Runtime, C: Connector, P: crate::trace::Recordable> Builder<R, C, P> {
    /// Records every call the session makes into its core, as JSON lines on `out` (the bytes
    /// read, the messages enqueued, the protocol and its non-secret settings, every action),
    /// so [`crate::trace::replay`] can run a fresh core on them offline and prove it takes
    /// the very same decisions. Written through as the session runs and flushed at the end of
    /// every round; at most [`crate::trace::DEFAULT_MAX_BYTES`] (see
    /// [`Builder::record_limited`]). The protocol's credentials are never written (the
    /// messages you send are, in full). Call it after
    /// [`Builder::protocol`]: setting another protocol afterwards drops the recording.
    pub fn record(self, out: impl std::io::Write + Send + 'static) -> Self {
        self.record_limited(out, crate::trace::DEFAULT_MAX_BYTES)
    }

    /// Like [`Builder::record`], writing at most `max_bytes` (capped at
    /// [`crate::trace::MAX_TRACE_BYTES`]): when the next line would pass it, a `truncated`
    /// line ends the trace, and a replay stops there.
    pub fn record_limited(
        mut self,
        out: impl std::io::Write + Send + 'static,
        max_bytes: u64,
    ) -> Self {
        self.record = Some(crate::trace::Pending::new(Box::new(out), max_bytes));
        self
    }
}

impl<R: Runtime, C: Connector, X: Codec> Builder<R, C, Framed<X>> {
    /// Sets whether the peer confirms messages (framed codecs only; a protocol with a grammar
    /// knows on its own): with [`AckMode::InOrder`] every inbound data frame confirms the
    /// oldest written message (one reply per request).
    pub fn acks(mut self, acks: AckMode) -> Self {
        self.protocol = self.protocol.with_acks(acks);
        self
    }
}

/// The size of a session's task on runtime `R` with connector `C` and protocol `P`: for
/// memory reports. Not a stable API.
#[doc(hidden)]
pub fn session_task_size<R: Runtime, C: Connector, P: Protocol>() -> usize {
    std::mem::size_of::<SessionTask<R, C, P>>()
}

fn rand_seed(mut g: redial_core::SplitMix64) -> u64 {
    redial_core::rand_core::RngCore::next_u64(&mut g)
}
