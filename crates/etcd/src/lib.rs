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
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use redial_etcd::{EtcdConfig, EtcdDiscover, Registration};
//!
//! let config = EtcdConfig::from_url("etcd://127.0.0.1:2379/services/redis").unwrap();
//! // On each server:
//! let registration = Registration::start(config.clone(), "127.0.0.1:6379", Duration::from_secs(5))?;
//! registration.registered().await;
//! // On each client: a target for any adapter.
//! let etcd = EtcdDiscover::start(config)?;
//! let target = redial_driver::Target::discover(etcd);
//! # let _ = target; Ok(()) }
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
