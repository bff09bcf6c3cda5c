//! TLS flags for `redial pipe`: `--tls`, `--ca FILE`, `--cert FILE --key FILE`,
//! `--server-name NAME`, `--insecure-skip-verify`, and the connector they describe.
//!
//! Any of `--ca`, `--cert`, `--server-name` or `--insecure-skip-verify` implies `--tls`.
//! Without a flag the connector is plain TCP, exactly as before. Files are checked before the
//! session starts (a missing file or bad PEM is a [`TlsArgsError`]), then watched: replace the
//! CA file or the client certificate and key, and the next reconnect uses them.
//!
//! # Wiring (for the integrator)
//!
//! This module is self-contained; `crates/cli/Cargo.toml` already enables `redial-tokio`'s
//! `tls` feature. In `main.rs` add `mod tls_args;`. In `pipe.rs`:
//!
//! 1. in `PipeArgs`, add the flags (flattened, so they appear in `redial pipe --help`):
//!    ```text
//!    #[command(flatten)]
//!    tls: crate::tls_args::TlsArgs,
//!    ```
//! 2. in `async fn pipe`, where the builder is made, set the connector (one line changes):
//!    ```text
//!    let handshake = match args.preset {
//!        // nats-server sends INFO in plaintext, then expects TLS.
//!        Preset::Nats => {
//!            crate::tls_args::Handshake::AfterGreeting(crate::tls_args::Greeting::default())
//!        }
//!        _ => crate::tls_args::Handshake::Immediate,
//!    };
//!    let connector = args
//!        .tls
//!        .connector(handshake)
//!        .map_err(|e| UsageError(e.to_string()))?;
//!    let mut builder = redial_tokio::builder(target)
//!        .connector(connector)
//!        .config(cfg)
//!        .protocol(protocol);
//!    ```
//!    Nothing else changes: [`PipeConnector`] is one type for plain and TLS, so the rest of
//!    `pipe` (recording, events, handles) is untouched. A certificate failure then shows in
//!    the events as a final `AttemptFailed` with `permission denied` and the reason, e.g.
//!    `tls certificate verification failed for localhost: invalid peer certificate:
//!    UnknownIssuer (the server's certificate is not signed by a CA we trust)`.
//! 3. optionally, in the pipe's help text: "`--tls` for TLS (rustls); see docs/TLS.md".
//!
//! `crates/cli/tests/tls_args.rs` compiles and tests this file on its own until then.

use std::fmt;
use std::path::{Path, PathBuf};

use futures::future::Either;
use redial_tokio::tls::{ClientIdentity, TlsConnector, TlsError, TlsOptions, TlsSettings};
use redial_tokio::{BoxFuture, ConnectError, Connector, Dial, TcpConnector};

pub use redial_tokio::tls::{Greeting, Handshake};

/// `--tls`, `--ca`, `--cert`, `--key`, `--server-name`, `--insecure-skip-verify`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TlsArgs {
    /// Connect with TLS (rustls), verifying the server against webpki roots (or --ca).
    #[arg(long)]
    pub tls: bool,
    /// Trust the CA certificates of this PEM file instead of webpki roots (implies --tls).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Present this client certificate chain (PEM) for mutual TLS (implies --tls; needs --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Verify and send (SNI) this server name instead of the target's host name: needed when
    /// the target is an IP address (implies --tls).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Accept any server certificate. Dangerous: for test servers only (implies --tls).
    #[arg(long)]
    pub insecure_skip_verify: bool,
}

/// Why the TLS flags do not make a connector.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsArgsError {
    /// A file named by a flag does not exist or is not a file.
    MissingFile {
        /// The flag (`--ca`, `--cert`, `--key`).
        flag: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// The files exist but do not hold what they should (bad PEM, a key that does not match
    /// its certificate), or the server name is invalid.
    Tls(TlsError),
}

impl fmt::Display for TlsArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsArgsError::MissingFile { flag, path } => {
                write!(f, "{flag} {}: no such file", path.display())
            }
            TlsArgsError::Tls(e) => write!(f, "tls: {e}"),
        }
    }
}

impl std::error::Error for TlsArgsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsArgsError::Tls(e) => Some(e),
            TlsArgsError::MissingFile { .. } => None,
        }
    }
}

impl From<TlsError> for TlsArgsError {
    fn from(e: TlsError) -> Self {
        TlsArgsError::Tls(e)
    }
}

impl TlsArgs {
    /// Whether TLS is on (`--tls`, or a flag that implies it).
    pub fn enabled(&self) -> bool {
        self.tls
            || self.ca.is_some()
            || self.cert.is_some()
            || self.server_name.is_some()
            || self.insecure_skip_verify
    }

    /// The TLS settings these flags describe, or `None` without TLS. Prints a warning on
    /// stderr for `--insecure-skip-verify`.
    ///
    /// # Errors
    /// A missing file, bad PEM, a key that does not fit, an invalid server name.
    pub fn settings(&self, handshake: Handshake) -> Result<Option<TlsSettings>, TlsArgsError> {
        if !self.enabled() {
            return Ok(None);
        }
        let mut options = match &self.ca {
            Some(ca) => TlsOptions::ca_file(existing("--ca", ca)?),
            None => TlsOptions::webpki(),
        };
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            options = options.with_identity(ClientIdentity::from_files(
                existing("--cert", cert)?,
                existing("--key", key)?,
            ));
        }
        if self.insecure_skip_verify {
            eprintln!(
                "warning: --insecure-skip-verify: the server's certificate is NOT verified; \
                 anyone on the path can read and change this conversation"
            );
            options = options.with_insecure_skip_verify(true);
        }
        let mut settings = TlsSettings::from_options(options)?.with_handshake(handshake);
        if let Some(name) = &self.server_name {
            settings = settings.with_server_name(name)?;
        }
        Ok(Some(settings))
    }

    /// The tokio TLS connector these flags describe (over TCP), or `None` without TLS.
    ///
    /// # Errors
    /// As [`TlsArgs::settings`].
    pub fn tls_connector(
        &self,
        handshake: Handshake,
    ) -> Result<Option<TlsConnector>, TlsArgsError> {
        Ok(self.settings(handshake)?.map(TlsConnector::new))
    }

    /// The connector for the pipe: TLS when asked for, plain TCP otherwise.
    ///
    /// # Errors
    /// As [`TlsArgs::settings`].
    pub fn connector(&self, handshake: Handshake) -> Result<PipeConnector, TlsArgsError> {
        Ok(match self.tls_connector(handshake)? {
            Some(tls) => PipeConnector::Tls(tls),
            None => PipeConnector::Plain(TcpConnector::default()),
        })
    }
}

fn existing<'a>(flag: &'static str, path: &'a Path) -> Result<&'a Path, TlsArgsError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(TlsArgsError::MissingFile {
            flag,
            path: path.to_owned(),
        })
    }
}

/// Plain TCP or TLS, as one connector type, so the pipe builds one kind of session either way.
#[derive(Clone, Debug)]
pub enum PipeConnector {
    /// TCP (or Unix sockets).
    Plain(TcpConnector),
    /// TLS over TCP.
    Tls(TlsConnector),
}

/// The stream of a [`PipeConnector`]: TCP (or a Unix socket), or TLS. `Either` forwards
/// reads and writes, vectored ones included, to whichever it holds.
pub type PipeStream = Either<redial_tokio::Stream, Box<redial_tokio::tls::TlsStream>>;

impl Connector for PipeConnector {
    type Stream = PipeStream;
    type Future = BoxFuture<'static, Result<PipeStream, ConnectError>>;

    fn connect(&self, dial: &Dial) -> Self::Future {
        match self {
            PipeConnector::Plain(c) => {
                let f = c.connect(dial);
                Box::pin(async move { f.await.map(Either::Left) })
            }
            PipeConnector::Tls(c) => {
                let f = c.connect(dial);
                Box::pin(async move { f.await.map(|s| Either::Right(Box::new(s))) })
            }
        }
    }
}
