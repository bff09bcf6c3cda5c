//! What a TLS connector needs for every attempt: the config provider, the server name, and
//! when the handshake starts.

use std::fmt;
use std::io;
use std::sync::Arc;

use redial_driver::{ConnectError, Endpoint, NetError};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use crate::error::TlsError;
use crate::greeting::Greeting;
use crate::options::TlsOptions;
use crate::provider::{self, ConfigProvider};

/// When the TLS handshake starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handshake {
    /// As soon as the connection is up (Redis, and most servers).
    #[default]
    Immediate,
    /// After a plaintext greeting line from the server, which the protocol then reads as its
    /// first line, as if it had come over TLS: NATS servers send `INFO {..."tls_required":true}`
    /// in plaintext and then expect the client to start TLS (servers from 2.10.4 can instead be
    /// told `handshake_first`, which is [`Handshake::Immediate`]).
    AfterGreeting(Greeting),
}

/// The TLS side of a connector: a [`ConfigProvider`] asked at every attempt, an optional
/// server name that overrides the endpoint's host name, and the [`Handshake`] mode.
///
/// Its `Debug` shows neither the config nor any key.
#[derive(Clone)]
pub struct TlsSettings {
    provider: ConfigProvider,
    server_name: Option<ServerName<'static>>,
    handshake: Handshake,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("provider", &format_args!("<fn>"))
            .field("server_name", &self.server_name)
            .field("handshake", &self.handshake)
            .finish()
    }
}

/// One attempt's handshake: the config and the name to send (SNI) and verify.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The rustls config, from the provider.
    pub config: Arc<ClientConfig>,
    /// The server name.
    pub server_name: ServerName<'static>,
}

impl TlsSettings {
    /// Settings that ask `provider` for the config at every attempt.
    pub fn new(provider: ConfigProvider) -> Self {
        TlsSettings {
            provider,
            server_name: None,
            handshake: Handshake::Immediate,
        }
    }

    /// Settings with one fixed config (yours: any roots, verifier, provider, ALPN).
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        TlsSettings::new(provider::fixed(config))
    }

    /// Settings that build `options` now and again whenever its files change
    /// ([`provider::reloading`](crate::reloading)).
    ///
    /// # Errors
    /// As [`TlsOptions::build`]: a missing file or bad PEM is found here.
    pub fn from_options(options: TlsOptions) -> Result<Self, TlsError> {
        Ok(TlsSettings::new(provider::reloading(options)?))
    }

    /// Sends and verifies `name` (a DNS name or an IP address) instead of the endpoint's host
    /// name: needed for targets given as IP addresses or Unix sockets.
    ///
    /// # Errors
    /// [`TlsError::InvalidServerName`] when `name` is neither.
    pub fn with_server_name(mut self, name: &str) -> Result<Self, TlsError> {
        self.server_name = Some(parse_server_name(name)?);
        Ok(self)
    }

    /// Sets when the handshake starts.
    pub fn with_handshake(mut self, handshake: Handshake) -> Self {
        self.handshake = handshake;
        self
    }

    /// When the handshake starts.
    pub fn handshake(&self) -> Handshake {
        self.handshake
    }

    /// The server name set by [`with_server_name`](Self::with_server_name), if any.
    pub fn server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }

    /// The config and server name for an attempt to `endpoint`: the explicit server name,
    /// else the endpoint's host name.
    ///
    /// # Errors
    /// No server name for an endpoint without a host name, or an invalid host name: a
    /// permanent [`NetError::InvalidAddress`]. The provider's failure: retryable
    /// ([`NetError::Other`]).
    pub fn attempt(&self, endpoint: &Endpoint) -> Result<Attempt, ConnectError> {
        let server_name = match (&self.server_name, &endpoint.host) {
            (Some(name), _) => name.clone(),
            (None, Some(host)) => parse_server_name(host).map_err(invalid)?,
            (None, None) => {
                return Err(invalid(TlsError::NoServerName {
                    endpoint: endpoint.to_string(),
                }))
            }
        };
        let config = (self.provider)()
            .map_err(|e| ConnectError::new(NetError::Other, io::Error::other(e)))?;
        Ok(Attempt {
            config,
            server_name,
        })
    }
}

fn invalid(e: TlsError) -> ConnectError {
    ConnectError::new(
        NetError::InvalidAddress,
        io::Error::new(io::ErrorKind::InvalidInput, e),
    )
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    // Brackets of a literal IPv6 host are not part of the name.
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::InvalidServerName(name.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TlsSettings {
        TlsSettings::from_options(TlsOptions::webpki()).expect("webpki builds")
    }

    #[test]
    fn server_name_from_host_or_override() {
        let ep = Endpoint::named("db.example", "10.0.0.1:6379".parse().unwrap());
        let a = settings().attempt(&ep).expect("named endpoint");
        assert_eq!(a.server_name, ServerName::try_from("db.example").unwrap());
        let a = settings()
            .with_server_name("other.example")
            .unwrap()
            .attempt(&ep)
            .unwrap();
        assert_eq!(
            a.server_name,
            ServerName::try_from("other.example").unwrap()
        );
        let ip = settings()
            .with_server_name("[::1]")
            .unwrap()
            .attempt(&Endpoint::ip("[::1]:1".parse().unwrap()))
            .unwrap();
        assert!(matches!(ip.server_name, ServerName::IpAddress(_)));
    }

    #[test]
    fn an_ip_target_needs_a_server_name_for_good() {
        let e = settings()
            .attempt(&Endpoint::ip("127.0.0.1:6379".parse().unwrap()))
            .expect_err("no host name");
        assert_eq!(e.class, NetError::InvalidAddress);
        assert!(!e.class.is_retryable());
        assert!(
            e.to_string().contains("127.0.0.1:6379 has no host name"),
            "{e}"
        );
        assert!(matches!(
            settings().with_server_name("not a name!"),
            Err(TlsError::InvalidServerName(_))
        ));
    }
}
