//! The retry policy: backoff, give-up, budget, status opt-in, classifier and timer.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use redial_core::{Backoff, ConfigError, GiveUp, GiveUpWhen};

use crate::budget::RetryBudget;
use crate::classify::{classify_error, Classifier};
use crate::retry::RetryLayer;
use crate::timer::Timer;

/// Application statuses to retry (opt-in) and how long a `Retry-After` may ask to wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRetry {
    /// Statuses retried (for requests safe to repeat only). Typical: 503 and 429.
    pub statuses: Vec<u16>,
    /// A `Retry-After` longer than this gives up (the response is returned) instead of
    /// waiting. Default 30 s.
    pub max_retry_after: Duration,
}

impl StatusRetry {
    /// Retries 503 and 429, honouring `Retry-After` up to 30 s.
    pub fn unavailable() -> Self {
        StatusRetry::new([503, 429])
    }

    /// Retries these statuses, honouring `Retry-After` up to 30 s.
    pub fn new(statuses: impl IntoIterator<Item = u16>) -> Self {
        StatusRetry {
            statuses: statuses.into_iter().collect(),
            max_retry_after: Duration::from_secs(30),
        }
    }

    /// Sets the longest `Retry-After` honoured.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }
}

/// A policy that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The backoff is invalid.
    #[error("invalid backoff: {0}")]
    Backoff(#[from] ConfigError),
    /// The give-up limits allow no attempt, or never stop.
    #[error("give-up limits {0}")]
    GiveUp(&'static str),
    /// No [`Timer`] was given and the `tokio` feature is off.
    #[error("no timer: enable the `tokio` feature or call `with_timer`")]
    NoTimer,
}

/// How the retry layer retries. Build with [`RetryPolicy::new`] and the `with_*` methods, then
/// [`RetryPolicy::layer`].
///
/// Defaults: redial's backoff (100 ms ×2, capped at 30 s, full jitter); give up after 3
/// failed attempts or 10 s, whichever comes first; no shared budget; statuses not retried;
/// [`classify_error`]; [`crate::TokioTimer`] with the `tokio` feature.
#[derive(Clone)]
pub struct RetryPolicy {
    pub(crate) backoff: Backoff,
    pub(crate) give_up: GiveUp,
    pub(crate) budget: Option<Arc<dyn RetryBudget>>,
    pub(crate) status: Option<StatusRetry>,
    pub(crate) classifier: Classifier,
    pub(crate) timer: Option<Arc<dyn Timer>>,
    pub(crate) seed: u64,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("backoff", &self.backoff)
            .field("give_up", &self.give_up)
            .field("budget", &self.budget.is_some())
            .field("status", &self.status)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::new()
    }
}

impl RetryPolicy {
    /// The defaults (see the type's docs).
    pub fn new() -> Self {
        RetryPolicy {
            backoff: Backoff::new(),
            give_up: GiveUp {
                max_failures: Some(3),
                max_elapsed: Some(Duration::from_secs(10)),
                when: GiveUpWhen::Either,
            },
            budget: None,
            status: None,
            classifier: classify_error,
            #[cfg(feature = "tokio")]
            timer: Some(Arc::new(crate::timer::TokioTimer)),
            #[cfg(not(feature = "tokio"))]
            timer: None,
            seed: 0x7e7a_1e55_c0ff_ee00,
        }
    }

    /// Sets the delays between attempts (redial's [`Backoff`]: jitter and cap included).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets when to give up: `max_failures` failed attempts (so at most that many attempts)
    /// and/or `max_elapsed` since the first attempt started, combined by `when`.
    pub fn with_give_up(mut self, give_up: GiveUp) -> Self {
        self.give_up = give_up;
        self
    }

    /// Shorthand: give up after `attempts` failed attempts, keeping the time limit.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.give_up.max_failures = Some(attempts);
        self
    }

    /// Shares a retry budget between every request of this policy (and any other holder).
    pub fn with_budget(mut self, budget: Arc<dyn RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Opts in to retrying application statuses (503, 429), honouring `Retry-After`.
    pub fn with_status_retry(mut self, status: StatusRetry) -> Self {
        self.status = Some(status);
        self
    }

    /// Replaces the error classifier.
    pub fn with_classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Sets the clock and the sleeps.
    pub fn with_timer(mut self, timer: Arc<dyn Timer>) -> Self {
        self.timer = Some(timer);
        self
    }

    /// Sets the jitter seed (each request draws from its own generator, derived from it).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the policy makes sense.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.backoff.validate()?;
        if self.give_up.max_failures == Some(0) {
            return Err(PolicyError::GiveUp("allow no attempt (max_failures is 0)"));
        }
        if self.give_up.max_failures.is_none() && self.give_up.max_elapsed.is_none() {
            return Err(PolicyError::GiveUp(
                "never stop (no count and no time limit)",
            ));
        }
        if self.timer.is_none() {
            return Err(PolicyError::NoTimer);
        }
        Ok(())
    }

    /// Validates the policy and makes the layer.
    pub fn layer(self) -> Result<RetryLayer, PolicyError> {
        self.validate()?;
        let timer = self.timer.clone().ok_or(PolicyError::NoTimer)?;
        Ok(RetryLayer::new(Arc::new(Shared {
            policy: self,
            timer,
            requests: AtomicU64::new(0),
        })))
    }
}

/// A validated policy, shared by every service the layer makes.
pub(crate) struct Shared {
    pub(crate) policy: RetryPolicy,
    pub(crate) timer: Arc<dyn Timer>,
    /// Requests started: each draws jitter from `seed` mixed with its number.
    pub(crate) requests: AtomicU64,
}
