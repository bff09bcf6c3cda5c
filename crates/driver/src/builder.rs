//! Building and spawning a session.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::BoxFuture;
use redial_core::{AckMode, Codec, Config, ConfigError, LineCodec, Session};

use crate::driver::{Driver, Parts};
use crate::handle::{Events, Handle, Inbound, Shared};
use crate::mailbox::Mailbox;
use crate::runtime::Runtime;
use crate::socket::SocketOptions;
use crate::tap::Tap;
use crate::target::Target;

/// Creates the TCP socket for a dial instead of [`Runtime::connect`]: for example on a
/// thread inside another network namespace. The driver applies the socket options to the
/// returned stream and registers it with the runtime.
pub type Connector =
    Arc<dyn Fn(SocketAddr) -> BoxFuture<'static, io::Result<std::net::TcpStream>> + Send + Sync>;

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
            drop_drain: Duration::from_secs(1),
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
    pub fn build(mut self) -> Result<(Handle, Inbound, Events, SessionTask), ConfigError> {
        if let Target::Addrs(a) = &self.target {
            if a.is_empty() {
                return Err(ConfigError::NoAddresses);
            }
        }
        if let Some(acks) = self.acks {
            self.config.acks = acks;
        }
        let origin = self.runtime.now();
        let session = Session::new(self.config.clone(), redial_core::Instant::ZERO)?;
        if let Some(tap) = &mut self.tap {
            tap.start(&self.config);
        }
        let mailbox = Mailbox::new();
        let (in_tx, in_rx) = mpsc::unbounded();
        let (ev_tx, ev_rx) = mpsc::unbounded();
        let shared = Shared::new();
        let driver = Driver::new(Parts {
            rt: self.runtime,
            origin,
            session,
            target: self.target,
            codec: self.codec,
            socket: self.socket,
            connector: self.connector,
            drop_drain: self.drop_drain,
            mailbox: Arc::clone(&mailbox),
            inbound: in_tx,
            events: ev_tx,
            shared: Arc::clone(&shared),
            tap: self.tap,
        });
        let handle = Handle { mailbox, shared };
        let task = SessionTask(Box::pin(Box::new(driver).run()));
        Ok((handle, Inbound { rx: in_rx }, Events { rx: ev_rx }, task))
    }

    /// Validates the configuration and spawns the session task on the runtime. A bad
    /// configuration is an error here, before anything runs.
    pub fn spawn(self) -> Result<(Handle, Inbound, Events), ConfigError> {
        let rt = self.runtime.clone();
        let (h, i, e, task) = self.build()?;
        rt.spawn(task);
        Ok((h, i, e))
    }
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
