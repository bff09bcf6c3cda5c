//! What can be wrong with TLS settings, found before or at an attempt.

use std::path::PathBuf;

/// An invalid TLS setting: a file that cannot be read, PEM without what it should hold, a
/// certificate rustls refuses, a server name that is none, or a provider's own failure.
///
/// No variant carries key material: a bad key is named by its file (or "the in-memory
/// key"), never shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file should hold ("CA file", "client certificate", "client key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// PEM that does not hold what it should.
    #[error("bad PEM in {what} {source_name}: {reason}")]
    Pem {
        /// What it should hold.
        what: &'static str,
        /// The file, or "(in memory)".
        source_name: String,
        /// What is wrong (never the contents).
        reason: String,
    },
    /// rustls refused a certificate, key or setting.
    #[error("{what}: {source}")]
    Rustls {
        /// Which step.
        what: &'static str,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The endpoint has no host name (an IP address or a Unix socket): TLS needs a server
    /// name to verify, set one with `TlsSettings::with_server_name`.
    #[error(
        "tls needs a server name to verify, but {endpoint} has no host name: \
         set one (TlsSettings::with_server_name, or --server-name)"
    )]
    NoServerName {
        /// The endpoint.
        endpoint: String,
    },
    /// A server name that is neither a DNS name nor an IP address.
    #[error("invalid tls server name {0:?}")]
    InvalidServerName(String),
    /// The config provider failed.
    #[error("tls config provider: {0}")]
    Provider(Box<dyn std::error::Error + Send + Sync>),
}

impl TlsError {
    /// A provider failure with this message.
    pub fn provider(message: impl Into<String>) -> Self {
        TlsError::Provider(message.into().into())
    }
}
