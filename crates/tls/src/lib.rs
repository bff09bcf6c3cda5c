//! # redial-tls
//!
//! The runtime-neutral half of redial's TLS connectors (rustls, ring provider): what to trust,
//! who we are, which server name to verify, and how a failed handshake is classified. The
//! handshake itself runs in the adapters, `redial_tokio::tls::TlsConnector` (tokio-rustls) and
//! `redial_smol::tls::TlsConnector` (futures-rustls), behind their `tls` feature; both wrap any
//! inner [`Connector`](redial_driver::Connector) (TCP, Unix, a socket factory, your own).
//!
//! Every attempt asks a [`ConfigProvider`] for the rustls [`ClientConfig`], so a rotated
//! certificate is picked up at the next reconnect with no restart. [`TlsOptions`] builds one
//! from webpki roots or a CA file, with an optional client certificate (mutual TLS), and
//! [`TlsSettings::from_options`] reloads it whenever one of its files changes.
//!
//! ```
//! use redial_tls::{TlsOptions, TlsSettings};
//!
//! // webpki roots, SNI and verification from the target's host name:
//! let tls = TlsSettings::from_options(TlsOptions::webpki()).expect("valid TLS options");
//! // an IP target names its server explicitly:
//! let tls = tls.with_server_name("db.internal").expect("a valid DNS name");
//! # let _ = tls;
//! ```
//!
//! | room | what |
//! |---|---|
//! | `options.rs` | [`TlsOptions`]: roots, client identity, building a [`ClientConfig`] |
//! | `provider.rs` | [`ConfigProvider`]: a config per attempt; reloading on file changes |
//! | `settings.rs` | [`TlsSettings`]: provider, server name, [`Handshake`]; one [`Attempt`] each dial |
//! | `classify.rs` | handshake errors into retryable and permanent [`NetError`](redial_driver::NetError) classes |
//! | `greeting.rs` | a plaintext greeting line before TLS (NATS's `INFO`) |
//! | `insecure.rs` | the verifier that accepts any certificate (`--insecure-skip-verify`) |
//! | `error.rs` | [`TlsError`] |
//!
//! Secrets: a client private key held in memory is never shown by any `Debug`, `Display` or
//! error of this crate; errors about a key file name the file, never its contents.
//!
//! ## Features
//!
//! This crate has no cargo features.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod classify;
mod error;
mod greeting;
mod insecure;
mod options;
mod provider;
mod settings;

pub use classify::{classify_handshake, is_certificate_error};
pub use error::TlsError;
pub use greeting::{read_greeting_line, Greeting, DEFAULT_MAX_GREETING};
pub use options::{ClientIdentity, Roots, TlsOptions};
pub use provider::{fixed, reloading, ConfigProvider};
pub use settings::{Attempt, Handshake, TlsSettings};

/// rustls, for building your own [`ClientConfig`].
pub use rustls;
pub use rustls::ClientConfig;
/// The certificate, key and server-name types of rustls.
pub use rustls_pki_types as pki_types;

/// The crypto provider every config of this crate is built with (ring).
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
