//! A [`RetryBudget`] shared by many sessions: one lock, one clock origin.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant as StdInstant;

use redial_core::budget::{BudgetPolicy, BudgetStats, Denied, RetryBudget};
use redial_core::{ConfigError, Instant};

/// The retry budget of a fleet: clone it into every session's [`crate::Builder::retry_budget`].
/// A retry (an attempt after a failure) takes a token or waits another backoff delay; a
/// connection that comes up deposits. First attempts are never refused. See
/// [`redial_core::budget`].
#[derive(Clone)]
pub struct SharedBudget {
    inner: Arc<Mutex<RetryBudget>>,
    origin: StdInstant,
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.lock();
        f.debug_struct("SharedBudget")
            .field("policy", b.policy())
            .field("tokens", &b.tokens())
            .field("stats", &b.stats())
            .finish()
    }
}

impl SharedBudget {
    /// A full budget with `policy`, its clock starting now.
    pub fn new(policy: BudgetPolicy) -> Result<Self, ConfigError> {
        Ok(SharedBudget {
            inner: Arc::new(Mutex::new(RetryBudget::new(policy, Instant::ZERO)?)),
            origin: StdInstant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RetryBudget> {
        // The budget is plain data: a panic elsewhere cannot leave it half updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn at(&self, now: StdInstant) -> Instant {
        let d = now.saturating_duration_since(self.origin);
        Instant::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Asks for a retry at `now`.
    pub fn withdraw(&self, now: StdInstant) -> Result<(), Denied> {
        let at = self.at(now);
        self.lock().withdraw(at)
    }

    /// A connection came up at `now`.
    pub fn deposit(&self, now: StdInstant) {
        let at = self.at(now);
        self.lock().deposit(at);
    }

    /// What the budget has allowed, refused and been given so far.
    pub fn stats(&self) -> BudgetStats {
        self.lock().stats()
    }

    /// Tokens left at the last update.
    pub fn tokens(&self) -> f64 {
        self.lock().tokens()
    }
}
