//! Where the registry is and how to talk to it: [`EtcdConfig`], also parsed from an
//! `etcd://[user:password@]host:port[,host:port...]/prefix` URL.

use std::fmt;
use std::time::Duration;

use redial_core::Backoff;

use crate::secret::Secret;

/// How to reach etcd and which key prefix holds the service's endpoints.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// etcd's client URLs (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// The key prefix: every key under `prefix/` whose value is an `ip:port` is an endpoint.
    pub prefix: String,
    /// A user and password, if etcd has authentication enabled.
    pub credentials: Option<(String, Secret)>,
    /// The backoff between attempts to reach etcd (redial's own). Default: 100 ms, ×2,
    /// capped at 5 s, full jitter.
    pub backoff: Backoff,
    /// Bounds each connect and request to etcd. Default 2 s.
    pub timeout: Duration,
    /// Seed of the backoff's jitter.
    pub seed: u64,
}

/// A malformed `etcd://` URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// It does not start with `etcd://`.
    #[error("not an etcd:// URL")]
    Scheme,
    /// No `host:port` before the prefix.
    #[error("no etcd host:port in the URL")]
    NoHost,
    /// No key prefix after the hosts.
    #[error("no key prefix in the URL (etcd://host:port/prefix)")]
    NoPrefix,
}

impl EtcdConfig {
    /// etcd at `endpoints`, endpoints under `prefix`, no credentials.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>, prefix: &str) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: normalize(prefix),
            credentials: None,
            backoff: Backoff::new().with_cap(Duration::from_secs(5)),
            timeout: Duration::from_secs(2),
            seed: 0,
        }
    }

    /// Parses `etcd://[user:password@]host:port[,host:port...]/prefix`.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let rest = url.strip_prefix("etcd://").ok_or(UrlError::Scheme)?;
        let (authority, path) = rest.split_once('/').ok_or(UrlError::NoPrefix)?;
        if path.trim_matches('/').is_empty() {
            return Err(UrlError::NoPrefix);
        }
        let (creds, hosts) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let hosts: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if hosts.is_empty() {
            return Err(UrlError::NoHost);
        }
        let mut cfg = EtcdConfig::new(hosts, path);
        if let Some(c) = creds {
            let (user, password) = c.split_once(':').unwrap_or((c, ""));
            cfg = cfg.with_credentials(user, Secret::new(password));
        }
        Ok(cfg)
    }

    /// Sets a user and password.
    pub fn with_credentials(mut self, user: &str, password: Secret) -> Self {
        self.credentials = Some((user.to_owned(), password));
        self
    }

    /// Sets the backoff between attempts to reach etcd.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the connect and request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the jitter seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The key of `addr` under the prefix.
    pub fn key_of(&self, addr: &str) -> String {
        format!("{}/{addr}", self.prefix)
    }

    /// What every endpoint key starts with.
    pub fn watched_prefix(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// The client's options. Never log them: etcd-client's `Debug` of `ConnectOptions` shows
    /// the password.
    pub(crate) fn options(&self) -> etcd_client::ConnectOptions {
        let mut o = etcd_client::ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            .with_timeout(self.timeout)
            // A silent etcd is found by HTTP/2 keep-alive, not by waiting on the watch.
            .with_keep_alive(Duration::from_secs(2), self.timeout)
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &self.credentials {
            o = o.with_user(user.clone(), password.expose().to_owned());
        }
        o
    }
}

/// `services/redis/` and `/services/redis` both become `/services/redis`.
fn normalize(prefix: &str) -> String {
    format!("/{}", prefix.trim_matches('/'))
}

impl fmt::Display for EtcdConfig {
    /// The URL form, credentials hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("etcd://")?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}:***@")?;
        }
        let hosts: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.trim_start_matches("http://"))
            .collect();
        write!(f, "{}{}", hosts.join(","), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let c = EtcdConfig::from_url("etcd://10.0.0.1:2379,10.0.0.2:2379/services/redis/").unwrap();
        assert_eq!(
            c.endpoints,
            ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(c.prefix, "/services/redis");
        assert_eq!(c.key_of("10.0.0.9:6379"), "/services/redis/10.0.0.9:6379");
        assert_eq!(c.watched_prefix(), "/services/redis/");
        assert_eq!(
            c.to_string(),
            "etcd://10.0.0.1:2379,10.0.0.2:2379/services/redis"
        );
        assert_eq!(
            EtcdConfig::from_url("http://x:1/p").unwrap_err(),
            UrlError::Scheme
        );
        assert_eq!(
            EtcdConfig::from_url("etcd://x:1").unwrap_err(),
            UrlError::NoPrefix
        );
        assert_eq!(
            EtcdConfig::from_url("etcd://x:1/").unwrap_err(),
            UrlError::NoPrefix
        );
        assert_eq!(
            EtcdConfig::from_url("etcd:///p").unwrap_err(),
            UrlError::NoHost
        );
    }

    #[test]
    fn credentials_never_show() {
        let c = EtcdConfig::from_url("etcd://ops:hunter2@127.0.0.1:2379/svc").unwrap();
        let (user, password) = c.credentials.clone().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("ops", "hunter2"));
        for shown in [
            format!("{c}"),
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{password}"),
            format!("{password:?}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(c.to_string(), "etcd://ops:***@127.0.0.1:2379/svc");
        let e = EtcdConfig::from_url("etcd://ops:hunter2@/svc").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"));
    }
}
