//! # redial-etcd
//!
//! Endpoints from etcd for redial sessions, on any adapter.
//!
//! - [`EtcdDiscover`]: the endpoints under a key prefix, read once and then watched (resuming
//!   from its revision after a reconnect), pushed to every session: a session whose endpoint
//!   leaves the set moves off it gracefully (see `redial_driver::Builder::departure`), and new
//!   endpoints join each session's own rotation. While etcd is unreachable the last known set
//!   stays in use.
//! - [`Registration`]: a server registers its address under a lease kept alive in the
//!   background; if the server dies, its key expires after the TTL.
//!
//! The etcd client (etcd-client, on tonic) runs on a thread of its own, with its own
//! connection to etcd retried with redial's backoff: the user only sees endpoints and
//! [`RegistryEvent`]s. Building it needs `protoc` (Debian: `protobuf-compiler` and
//! `libprotobuf-dev`), as etcd-client compiles etcd's protos.
//!
//! ```no_run
//! # async fn fleet() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use redial_etcd::{EtcdConfig, EtcdDiscover, Registration};
//! use redial_tokio::{BudgetPolicy, Departure, SharedBudget, Target};
//!
//! let etcd = EtcdConfig::from_url("etcd://127.0.0.1:2379/services/redis")?;
//! // On each server: registered under /services/redis/ADDR, kept alive every TTL/3.
//! let me = Registration::start(etcd.clone(), "10.0.0.7:6379", Duration::from_secs(5))?;
//! me.registered().await;
//!
//! // On each client process: one watch shared by every session, and one retry budget.
//! let registry = EtcdDiscover::start(etcd)?;
//! let budget = SharedBudget::new(BudgetPolicy::new().with_capacity(100).with_min_per_sec(10))?;
//! let departure = Departure::new()
//!     .with_spread(Duration::from_secs(2)) // moves start within 2 s of the server leaving
//!     .with_drain(Duration::from_secs(5)); // in-flight messages get 5 s to be confirmed
//! let sessions: Vec<_> = (0..1000)
//!     .map(|_| {
//!         redial_tokio::builder(Target::discover(registry.clone()))
//!             .retry_budget(budget.clone())
//!             .departure(departure)
//!             .spawn()
//!     })
//!     .collect::<Result<_, _>>()?;
//! # let _ = (sessions, me);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod discover;
mod event;
mod hub;
mod register;
mod secret;
mod worker;

pub use config::{EtcdConfig, UrlError};
pub use discover::EtcdDiscover;
pub use event::RegistryEvent;
pub use register::Registration;
pub use secret::Secret;
