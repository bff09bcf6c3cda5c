//! # redial-driver
//!
//! The runtime-neutral async driver of [`redial_core`]: the run loop, written once, that
//! every adapter (`redial-tokio`, `redial-smol`, yours) shares. An adapter only implements
//! [`Runtime`] — a clock, one timer, TCP connect, DNS and spawn — and re-exports this API.
//!
//! One task per session owns the core, the sockets and every write. Each turn it polls the
//! core until [`Action::Wait`](redial_core::Action::Wait), performs the actions, then waits
//! for exactly one of: the one timer, the resolution or dial in flight, the read half, the
//! write in flight, or a user command — and feeds the result back tagged with its socket's
//! [`Epoch`](redial_core::Epoch).
//!
//! | piece | where |
//! |---|---|
//! | the runtime calls an adapter implements | [`Runtime`] |
//! | target, DNS, discovery | [`Target`], [`Discover`] |
//! | socket options (nodelay, keepalive, `TCP_USER_TIMEOUT`) | [`SocketOptions`] |
//! | building and spawning | [`Builder`] |
//! | what the user holds | [`Handle`], [`Receipt`], [`Inbound`], [`Events`] |
//! | `io::Error` → [`NetError`] | [`classify`] |
//! | record and replay (feature `record`) | `trace` |
//!
//! ## Using it
//!
//! Users normally go through an adapter, which fixes the runtime:
//! `redial_tokio::builder("127.0.0.1:6379")` is `Builder::new(redial_tokio::Tokio, ..)`.
//! Code generic over the runtime takes `R: Runtime` and calls [`Builder::new`].
//!
//! ```no_run
//! use futures::StreamExt;
//! use redial_driver::{Builder, Delivery, Runtime};
//!
//! async fn hello<R: Runtime>(rt: R) {
//!     let (handle, mut inbound, _events) = Builder::new(rt, "127.0.0.1:6379")
//!         .spawn()
//!         .expect("valid config");
//!     let receipt = handle.send(b"PING hello".to_vec(), Delivery::AtMostOnce);
//!     receipt.await.expect("delivered");
//!     println!("{:?}", inbound.next().await);
//! }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod builder;
mod driver;
mod error;
mod handle;
mod mailbox;
mod runtime;
mod socket;
mod tap;
mod target;
#[cfg(feature = "record")]
pub mod trace;

#[doc(hidden)]
pub use builder::session_task_size;
pub use builder::{Builder, Connector, SessionTask};
pub use error::{classify, classify_resolve};
pub use handle::{Events, Handle, Inbound, Receipt, SessionEvent, Undelivered};
pub use runtime::Runtime;
pub use socket::{Keepalive, SocketOptions};
pub use target::{Discover, Target};

pub use futures::future::BoxFuture;
/// The sans-IO core, for what is not re-exported.
pub use redial_core as core;
pub use redial_core::{
    AbandonReason, AckMode, Backoff, Batch, CloseMode, Codec, Config, ConfigError, Delivery,
    DisconnectReason, Frame, FrameError, GiveUp, GiveUpWhen, Heartbeat, Jitter, LengthCodec,
    LineCodec, NetError, Notification, Outcome, Overflow, QueueLimits, RejectReason, State, Stats,
};
