//! A retry budget: a limit on retries shared by many requests, so a failing dependency is
//! not hit by a retry storm.
//!
//! redial has no shared retry budget yet (the design lists one for the core). Until it does,
//! [`RetryBudget`] is the hook point, and [`TokenBucket`] a simple implementation: every
//! original request deposits a fraction of a token, every retry withdraws a whole one, and
//! an empty bucket means no retry. When the core grows its budget, it implements this trait.

use std::fmt;
use std::sync::Mutex;

/// Decides whether one more retry may happen, across every request that shares it.
pub trait RetryBudget: Send + Sync + 'static {
    /// An original request (not a retry) starts.
    fn deposit(&self);
    /// A retry wants to go: `true` if the budget allows it (and it is then charged for).
    fn withdraw(&self) -> bool;
}

/// A token bucket of retries: starts full with `capacity` tokens; each original request adds
/// `per_request` (a fraction: 0.1 allows one retry per ten requests in steady state), never
/// above `capacity`; each retry takes one.
pub struct TokenBucket {
    capacity: f64,
    per_request: f64,
    tokens: Mutex<f64>,
}

impl fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("capacity", &self.capacity)
            .field("per_request", &self.per_request)
            .field("tokens", &self.tokens())
            .finish()
    }
}

/// A token bucket given nonsense (negative, not finite).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("token bucket {0} must be a finite number >= 0")]
pub struct BadBucket(pub &'static str);

impl TokenBucket {
    /// A bucket holding at most `capacity` retries, refilled by `per_request` per request.
    pub fn new(capacity: f64, per_request: f64) -> Result<Self, BadBucket> {
        if !(capacity.is_finite() && capacity >= 0.0) {
            return Err(BadBucket("capacity"));
        }
        if !(per_request.is_finite() && per_request >= 0.0) {
            return Err(BadBucket("per_request"));
        }
        Ok(TokenBucket {
            capacity,
            per_request,
            tokens: Mutex::new(capacity),
        })
    }

    /// Tokens left.
    pub fn tokens(&self) -> f64 {
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RetryBudget for TokenBucket {
    fn deposit(&self) {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        *t = (*t + self.per_request).min(self.capacity);
    }

    fn withdraw(&self) -> bool {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if *t >= 1.0 {
            *t -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties_and_refills() {
        let b = TokenBucket::new(2.0, 0.5).unwrap();
        assert!(b.withdraw() && b.withdraw());
        assert!(!b.withdraw());
        b.deposit();
        assert!(!b.withdraw());
        b.deposit();
        assert!(b.withdraw());
        for _ in 0..100 {
            b.deposit();
        }
        assert_eq!(b.tokens(), 2.0);
        assert_eq!(
            TokenBucket::new(f64::NAN, 0.1).err(),
            Some(BadBucket("capacity"))
        );
        assert_eq!(
            TokenBucket::new(1.0, -1.0).err(),
            Some(BadBucket("per_request"))
        );
    }
}
