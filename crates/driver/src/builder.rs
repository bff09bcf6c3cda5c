//! Building and spawning a session.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use redial_core::{AckMode, Codec, Config, ConfigError, LineCodec, Session};

use crate::driver::{Driver, Parts, Task};
use crate::handle::{Events, Handle, Inbound, Publisher, Shared};
use crate::runtime::Runtime;
use crate::socket::SocketOptions;
use crate::tap::Tap;
use crate::target::Target;

/// Creates the TCP socket for a dial instead of [`Runtime::connect`]: for example on a
/// thread inside another network namespace. The driver applies the socket options to the
/// returned stream and registers it with the runtime.
pub type Connector =
    Arc<dyn Fn(SocketAddr) -> BoxFuture<'static, io::Result<std::net::TcpStream>> + Send + Sync>;

/// The default of [`Builder::drop_drain`].
pub(crate) const DEFAULT_DROP_DRAIN: Duration = Duration::from_secs(1);

/// The default of [`Builder::event_capacity`].
pub(crate) const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Configures a session. Nothing is spawned and nothing connects until [`Builder::spawn`]
/// (or [`Builder::build`]).
pub struct Builder<R: Runtime> {
    runtime: R,
    target: Target,
    config: Config,
    acks: Option<AckMode>,
    codec: Box<dyn Codec + Send>,
    socket: SocketOptions,
    connector: Option<Connector>,
    drop_drain: Duration,
    event_capacity: usize,
    tap: Option<Box<dyn Tap>>,
}

impl<R: Runtime> fmt::Debug for Builder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("target", &self.target)
            .field("config", &self.config)
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Builder<R> {
    /// A session on `runtime` connecting to `target` (`"host:port"`, a `SocketAddr`, a
    /// `Vec<SocketAddr>`, or [`Target::discover`]), with the default config, a plain
    /// [`LineCodec`] and default socket options.
    pub fn new(runtime: R, target: impl Into<Target>) -> Self {
        Builder {
            runtime,
            target: target.into(),
            config: Config::default(),
            acks: None,
            codec: Box::new(LineCodec::plain()),
            socket: SocketOptions::default(),
            connector: None,
            drop_drain: DEFAULT_DROP_DRAIN,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            tap: None,
        }
    }

    /// Sets the core configuration (backoff, give-up, heartbeat, queue, timeouts, seed).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the framing. Default: [`LineCodec::plain`].
    pub fn codec(mut self, codec: impl Codec + Send + 'static) -> Self {
        self.codec = Box::new(codec);
        self
    }

    /// Sets how messages are confirmed, overriding the config's `acks`. With
    /// [`AckMode::InOrder`] every inbound data frame confirms the oldest written message
    /// (one reply per request).
    pub fn acks(mut self, acks: AckMode) -> Self {
        self.acks = Some(acks);
        self
    }

    /// Sets the socket options (nodelay, keepalive, `TCP_USER_TIMEOUT`).
    pub fn socket_options(mut self, options: SocketOptions) -> Self {
        self.socket = options;
        self
    }

    /// Creates sockets with `connector` instead of the runtime's `connect`.
    pub fn connector(
        mut self,
        connector: impl Fn(SocketAddr) -> BoxFuture<'static, io::Result<std::net::TcpStream>>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// How long the graceful close started by dropping every [`Handle`] may drain.
    /// Default 1 s.
    pub fn drop_drain(mut self, drain: Duration) -> Self {
        self.drop_drain = drain;
        self
    }

    /// How many undelivered [`crate::SessionEvent`]s the [`Events`] stream keeps (at least
    /// 1; default 1024). A reader that falls further behind loses
    /// the oldest ones, and the next event it reads counts them in
    /// [`crate::SessionEvent::missed`].
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Records every input of the core as JSON lines to `out` (see [`crate::trace`]),
    /// flushed at the end of every round. Off unless called; needs the `record` feature.
    #[cfg(feature = "record")]
    pub fn record(mut self, out: impl std::io::Write + Send + 'static) -> Self {
        // Buffered, and flushed once per round: one write per wakeup, not per line.
        let out = std::io::BufWriter::new(out);
        self.tap = Some(Box::new(crate::trace::Recorder::new(Box::new(out))));
        self
    }

    /// Validates the configuration and builds the session without spawning it: the
    /// returned [`SessionTask`] must be polled (spawned, or awaited on a thread of your
    /// choice) for anything to happen.
    pub fn build(self) -> Result<(Handle, Inbound, Events, SessionTask), ConfigError> {
        let (h, i, e, driver) = self.assemble()?;
        Ok((h, i, e, SessionTask(Box::pin(Task::new(driver)))))
    }

    /// The user's ends and the session's driver, not yet spawned.
    fn assemble(mut self) -> Result<(Handle, Inbound, Events, Driver<R>), ConfigError> {
        if let Target::Addrs(a) = &self.target {
            if a.is_empty() {
                return Err(ConfigError::NoAddresses);
            }
        }
        if let Some(acks) = self.acks {
            self.config.acks = acks;
        }
        let origin = self.runtime.now();
        let session = Session::new(share(&self.config), redial_core::Instant::ZERO)?;
        if let Some(tap) = &mut self.tap {
            tap.start(&self.config);
        }
        let shared = Shared::new(self.event_capacity);
        let driver = Driver::new(Parts {
            rt: self.runtime,
            origin,
            session,
            target: self.target,
            codec: self.codec,
            socket: self.socket,
            connector: self.connector,
            drop_drain: self.drop_drain,
            shared: Publisher(Arc::clone(&shared)),
            tap: self.tap,
        });
        let streams = (
            Inbound {
                shared: Arc::clone(&shared),
            },
            Events {
                shared: Arc::clone(&shared),
            },
        );
        let handle = Handle { shared };
        Ok((handle, streams.0, streams.1, driver))
    }

    /// Validates the configuration and spawns the session task on the runtime. A bad
    /// configuration is an error here, before anything runs.
    pub fn spawn(self) -> Result<(Handle, Inbound, Events), ConfigError> {
        let rt = self.runtime.clone();
        let (h, i, e, driver) = self.assemble()?;
        // The driver and its timer are the task's future: stored inline in the runtime's
        // task, not behind a `SessionTask` box.
        rt.spawn(Task::new(driver));
        Ok((h, i, e))
    }
}

/// The configuration as an `Arc`, shared with the previous session when equal: many
/// sessions built from one configuration keep one copy of it (a `Config` is immutable once
/// a session holds it).
fn share(config: &Config) -> Arc<Config> {
    static LAST: Mutex<Option<Weak<Config>>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(c) = last.as_ref().and_then(Weak::upgrade) {
        if *c == *config {
            return c;
        }
    }
    let c = Arc::new(config.clone());
    *last = Some(Arc::downgrade(&c));
    c
}

/// The size of a session's task future on runtime `R` (the driver and its timer, stored
/// inline in the runtime's task): for memory reports. Not a stable API.
#[doc(hidden)]
pub fn session_task_size<R: Runtime>() -> usize {
    std::mem::size_of::<Task<R>>()
}

/// The session's task: the whole run loop as one future. Spawn it or await it.
#[must_use = "the session does nothing unless its task is polled"]
pub struct SessionTask(Pin<Box<dyn Future<Output = ()> + Send>>);

impl fmt::Debug for SessionTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionTask")
    }
}

impl Future for SessionTask {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}
