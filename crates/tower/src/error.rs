//! What the retry layer returns when a request did not succeed.

use std::error::Error;
use std::fmt;

use redial_core::NetError;

use crate::request::Described;

/// The error type tower services pass around.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Why the retry layer stopped retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// The policy's attempt limit was reached.
    Attempts,
    /// The next wait would pass the policy's time budget.
    TimeBudget,
    /// The shared [`crate::RetryBudget`] refused another retry.
    Budget,
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUpReason::Attempts => "attempt limit reached",
            GiveUpReason::TimeBudget => "time budget spent",
            GiveUpReason::Budget => "retry budget exhausted",
        })
    }
}

/// What kind of failure a [`RetryError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryErrorKind {
    /// Not retried: not a network error (no `io::Error` in its chain), or a permanent one
    /// (invalid address, permission denied). The inner service's error is the source.
    NotRetryable,
    /// The request may have been executed (its connection died after it was written) and is
    /// not safe to repeat: it was not retried. The peer may or may not have applied it.
    InDoubt,
    /// Retried, and still failing when the policy gave up.
    GaveUp(GiveUpReason),
    /// A retry was due, but the request's body cannot be replayed (a streaming body).
    NotReplayable,
    /// The inner service was not ready (its `poll_ready` failed).
    NotReady,
}

/// A request that did not succeed, with how it ended. Its [`Display`](fmt::Display) and
/// [`Debug`] name the request by method and target only (never its headers, body, user info or
/// query); the inner service's error is its [`source`](Error::source).
pub struct RetryError {
    kind: RetryErrorKind,
    request: Described,
    attempts: u32,
    class: Option<NetError>,
    source: BoxError,
}

impl RetryError {
    pub(crate) fn new(
        kind: RetryErrorKind,
        request: Described,
        attempts: u32,
        class: Option<NetError>,
        source: BoxError,
    ) -> Self {
        RetryError {
            kind,
            request,
            attempts,
            class,
            source,
        }
    }

    /// How it ended.
    pub fn kind(&self) -> RetryErrorKind {
        self.kind
    }

    /// Whether the request may have been executed without our knowing
    /// ([`RetryErrorKind::InDoubt`]).
    pub fn is_in_doubt(&self) -> bool {
        self.kind == RetryErrorKind::InDoubt
    }

    /// Attempts made (1: the request was sent once, never retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The redial class of the last network error, if it was one.
    pub fn class(&self) -> Option<NetError> {
        self.class
    }

    /// The request, as named in logs.
    pub fn request(&self) -> &Described {
        &self.request
    }

    /// The inner service's last error.
    pub fn inner(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.source
    }

    /// The inner service's last error, owned.
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.request;
        let n = self.attempts;
        let class = self.class.map(|c| c.to_string());
        let class = class.as_deref().unwrap_or("not a network error");
        match self.kind {
            RetryErrorKind::NotRetryable => write!(f, "{r} failed, not retried ({class})"),
            RetryErrorKind::InDoubt => write!(
                f,
                "{r} in doubt: its connection failed after it may have been written ({class}); not retried"
            ),
            RetryErrorKind::GaveUp(why) => write!(f, "{r} failed after {n} attempts, {why} ({class})"),
            RetryErrorKind::NotReplayable => write!(
                f,
                "{r} failed ({class}) and its body cannot be replayed: buffer it to make it retryable"
            ),
            RetryErrorKind::NotReady => write!(f, "the service was not ready for {r}"),
        }
    }
}

impl fmt::Debug for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryError")
            .field("kind", &self.kind)
            .field("request", &self.request.to_string())
            .field("attempts", &self.attempts)
            .field("class", &self.class)
            .field("source", &self.source)
            .finish()
    }
}

impl Error for RetryError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}
