//! # redial-driver
//!
//! The runtime-neutral async driver of [`redial_core`]: the run loop, written once, that every
//! adapter (`redial-tokio`, `redial-smol`, `redial-monoio`, yours) shares. An adapter
//! implements [`Runtime`] (a clock, one timer, DNS), [`Spawn`] or [`SpawnLocal`], and a
//! [`Connector`] (TCP on its reactor), and re-exports this API.
//!
//! One task per session owns the core, the socket and every write. Each turn it exchanges
//! with the user's side once (commands in; receipts, data and events out), drains the core
//! until [`Action::Wait`](redial_core::Action::Wait), performs the actions, then waits for
//! whatever comes first: the one timer, the resolution or dial in flight, the socket, or the
//! user. The core decides what every byte read means; the driver only moves bytes.
//!
//! | room | what |
//! |---|---|
//! | `task.rs` | the loop |
//! | `timer.rs` | the one timer and when to re-arm it |
//! | `io.rs` | the connection: reads (an idle session owns no buffer), the write in progress |
//! | `dial.rs` | resolution and dialing, per attempt |
//! | `follow.rs` | a watched endpoint set: moving off an endpoint that left |
//! | `budget.rs` | [`SharedBudget`]: the retry budget a fleet of sessions shares |
//! | `commands.rs` | user commands into the core; the receipts and streams they are owed |
//! | `notify.rs` | notifications into receipts, events and `tracing` |
//! | `metrics.rs` | the same notifications and each round's counters as metrics (feature `metrics`) |
//! | `shared.rs` | the one mutex between the task and the user's ends |
//! | `handle.rs` | what the user holds: [`Handle`], [`Receipt`], [`Subscription`], [`Inbound`], [`Events`] |
//! | `builder.rs` | [`Builder`] |
//! | `runtime.rs`, `connect.rs`, `target.rs`, `socket.rs` | what an adapter implements, and what a session connects to |
//!
//! ## Using it
//!
//! Users normally go through an adapter, which fixes the runtime and the connector:
//! `redial_tokio::builder("127.0.0.1:6379")` is `Builder::new(Tokio, TcpConnector, ..)`.
//!
//! ```no_run
//! use futures::StreamExt;
//! use redial_driver::{Builder, Connector, Delivery, Spawn};
//! use redial_driver::core::proto::resp::{cmd, Resp};
//!
//! async fn hello<R: Spawn + Send, C: Connector + Send>(rt: R, connector: C)
//! where
//!     C::Future: Send,
//!     C::Stream: Send,
//!     R::Sleep: Send,
//!     R::Resolve: Send,
//! {
//!     let (handle, _inbound, _events) = Builder::new(rt, connector, "127.0.0.1:6379")
//!         .protocol(Resp::new())
//!         .spawn()
//!         .expect("valid config");
//!     let reply = handle.request(cmd(["INCR", "visits"]), Delivery::AtMostOnce).await;
//!     println!("{:?}", reply.map(|r| r.body));
//! }
//! ```
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `resp` | yes | RESP2/RESP3, from redial-core |
//! | `nats` | yes | the NATS client protocol, from redial-core |
//! | `record` | no | record every input of the core as JSON lines, and replay such traces (`trace`) |
//! | `metrics` | no | counters, gauges and histograms through the `metrics` facade ([`metrics`] lists the names; `Builder::metrics_name` labels a session) |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod budget;
mod builder;
mod commands;
mod connect;
mod dial;
mod error;
mod follow;
mod handle;
mod io;
pub mod metrics;
mod notify;
mod received;
mod runtime;
mod shared;
mod socket;
mod tap;
mod target;
mod task;
mod timer;
#[cfg(feature = "record")]
#[cfg_attr(docsrs, doc(cfg(feature = "record")))]
pub mod trace;

pub use budget::SharedBudget;
#[doc(hidden)]
pub use builder::session_task_size;
pub use builder::{Builder, Ends, DEFAULT_DROP_DRAIN, DEFAULT_EVENT_CAPACITY};
pub use connect::{
    finish_connect, new_socket, start_connect, ConnectError, Connector, Dial, SocketFactory,
};
pub use error::{classify, classify_resolve};
pub use handle::{Delivered, Events, Handle, Inbound, Receipt, Subscription};
pub use received::{Message, Reply, SessionEvent, Undelivered};
pub use runtime::{Runtime, Spawn, SpawnLocal};
pub use socket::{Keepalive, SocketOptions};
pub use target::{Discover, Endpoint, EndpointAddr, Target};
pub use task::SessionTask;

pub use futures::future::BoxFuture;
/// The sans-IO core, for what is not re-exported.
pub use redial_core as core;
pub use redial_core::budget::BudgetPolicy;
pub use redial_core::spread::Departure;
pub use redial_core::{
    AbandonReason, AckMode, Backoff, Batch, CloseMode, Codec, Config, ConfigError, Delivery,
    DisconnectReason, Frame, FrameError, Framed, GiveUp, GiveUpWhen, Heartbeat, InboundLimits,
    Jitter, LengthCodec, LineCodec, NetError, Notification, Outcome, Overflow, Protocol,
    QueueLimits, RejectReason, State, Stats,
};
/// socket2, for socket options on streams an adapter or a connector makes.
pub use socket2;
