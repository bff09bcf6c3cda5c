//! A retry budget shared by many sessions: a token bucket fed by successes and by a minimum
//! rate, drained by retries (in the spirit of gRPC's retry throttling and tower's
//! `TpsBudget`).
//!
//! Each session's backoff alone bounds what *one* session sends; a fleet of 10,000 sessions
//! against a down server still sends 10,000 × what one backoff schedule allows. The budget is
//! the fleet-wide brake: a retry (an attempt after a failure) costs one token, a connection
//! that comes up deposits [`BudgetPolicy::per_success`], and time refills
//! [`BudgetPolicy::min_per_sec`] tokens a second, up to [`BudgetPolicy::capacity`]. When the
//! bucket is empty a retry is refused, and the session waits another backoff delay (or the
//! budget's advice, if longer) without counting a failure: so a throttled session does not
//! give up sooner, and first attempts (after a connection was lost) are never refused.
//!
//! It is pure like the rest of the core: time is an argument, and the jitter of its advice
//! comes from a generator seeded by [`BudgetPolicy::seed`]. One host owns it (behind a lock in
//! the driver, as a plain value in the simulator) and asks it before each retry.
//!
//! ```
//! use core::time::Duration;
//! use redial_core::budget::{BudgetPolicy, RetryBudget};
//! use redial_core::Instant;
//!
//! let policy = BudgetPolicy::new().with_capacity(2).with_min_per_sec(1);
//! let mut budget = RetryBudget::new(policy, Instant::ZERO).unwrap();
//! assert!(budget.withdraw(Instant::ZERO).is_ok());
//! assert!(budget.withdraw(Instant::ZERO).is_ok());
//! let denied = budget.withdraw(Instant::ZERO).unwrap_err();
//! assert!(denied.retry_in >= Duration::from_secs(1)); // the next token is a second away
//! assert!(budget.withdraw(Instant::from_millis(1_000)).is_ok());
//! ```

use core::time::Duration;

use crate::error::ConfigError;
use crate::rng::{uniform, SplitMix64};
use crate::time::{duration_nanos, Instant};

/// One token, in the bucket's unit (a billionth of a token, so a rate in tokens per second
/// times nanoseconds elapsed is exact).
const TOKEN: u128 = 1_000_000_000;

/// How a [`RetryBudget`] fills and drains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetPolicy {
    /// Most tokens the bucket holds: the burst of retries allowed after a quiet time. It
    /// starts full. Default 100.
    pub capacity: u32,
    /// Tokens deposited by each connection that comes up, in thousandths (1000: one retry
    /// earned per success). Default 1000.
    pub per_success: u32,
    /// Tokens added per second whatever happens: the least retry rate the fleet keeps, so a
    /// fleet whose every attempt fails still probes. Default 10.
    pub min_per_sec: u32,
    /// A refused retry is advised to wait for the next token, plus up to this much jitter
    /// (so refused sessions do not come back together). Default 1 s.
    pub jitter: Duration,
    /// Seed of the advice's jitter.
    pub seed: u64,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy::new()
    }
}

impl BudgetPolicy {
    /// 100 tokens, one per success, 10 per second, 1 s of jitter, seed 0.
    pub const fn new() -> Self {
        BudgetPolicy {
            capacity: 100,
            per_success: 1000,
            min_per_sec: 10,
            jitter: Duration::from_secs(1),
            seed: 0,
        }
    }

    /// Sets the capacity.
    pub const fn with_capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the deposit per success, in thousandths of a token.
    pub const fn with_per_success(mut self, milli_tokens: u32) -> Self {
        self.per_success = milli_tokens;
        self
    }

    /// Sets the minimum rate, in tokens per second.
    pub const fn with_min_per_sec(mut self, rate: u32) -> Self {
        self.min_per_sec = rate;
        self
    }

    /// Sets the jitter of a refusal's advice.
    pub const fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the seed.
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the policy makes sense: a bucket that can hold a token, and some way to refill
    /// it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::ZeroQueueBound("budget capacity"));
        }
        if self.min_per_sec == 0 && self.per_success == 0 {
            return Err(ConfigError::ZeroQueueBound("budget refill"));
        }
        Ok(())
    }
}

/// A refused retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied {
    /// How long the budget advises waiting: until its next token, plus jitter.
    pub retry_in: Duration,
}

/// What a budget has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetStats {
    /// Retries allowed.
    pub allowed: u64,
    /// Retries refused.
    pub denied: u64,
    /// Successes deposited.
    pub deposits: u64,
}

/// The shared token bucket. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct RetryBudget {
    policy: BudgetPolicy,
    /// Tokens, in billionths.
    level: u128,
    /// The instant the level was last brought up to date (clamped: never goes back).
    last: Instant,
    rng: SplitMix64,
    stats: BudgetStats,
}

impl RetryBudget {
    /// A full bucket at `now`.
    pub fn new(policy: BudgetPolicy, now: Instant) -> Result<Self, ConfigError> {
        policy.validate()?;
        Ok(RetryBudget {
            level: u128::from(policy.capacity) * TOKEN,
            last: now,
            rng: SplitMix64::new(policy.seed),
            stats: BudgetStats::default(),
            policy,
        })
    }

    /// The policy.
    pub fn policy(&self) -> &BudgetPolicy {
        &self.policy
    }

    /// Tokens available at the last update (whole and fractional).
    pub fn tokens(&self) -> f64 {
        self.level as f64 / TOKEN as f64
    }

    /// The counters.
    pub fn stats(&self) -> BudgetStats {
        self.stats
    }

    /// Asks for one retry at `now`: allowed (a token is taken) or refused, with advice on how
    /// long to wait.
    pub fn withdraw(&mut self, now: Instant) -> Result<(), Denied> {
        self.refill(now);
        if self.level >= TOKEN {
            self.level -= TOKEN;
            self.stats.allowed += 1;
            return Ok(());
        }
        self.stats.denied += 1;
        let missing = TOKEN - self.level;
        let rate = u128::from(self.policy.min_per_sec);
        // Without a minimum rate only a success refills: advise the jitter window alone.
        let refill_ns = match rate {
            0 => 0,
            r => u64::try_from(missing.div_ceil(r)).unwrap_or(u64::MAX),
        };
        let jitter = uniform(&mut self.rng, 0, duration_nanos(self.policy.jitter));
        Err(Denied {
            retry_in: Duration::from_nanos(refill_ns.saturating_add(jitter)),
        })
    }

    /// A connection came up at `now`: deposits [`BudgetPolicy::per_success`].
    pub fn deposit(&mut self, now: Instant) {
        self.refill(now);
        self.stats.deposits += 1;
        let add = u128::from(self.policy.per_success) * (TOKEN / 1000);
        self.level = (self.level + add).min(self.cap());
    }

    fn cap(&self) -> u128 {
        u128::from(self.policy.capacity) * TOKEN
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.last {
            return; // A clock that goes back is clamped, never trusted.
        }
        let elapsed = u128::from(now.as_nanos() - self.last.as_nanos());
        self.last = now;
        // tokens/s × ns = billionths of a token: exact.
        let add = elapsed * u128::from(self.policy.min_per_sec);
        self.level = (self.level + add).min(self.cap());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(capacity: u32, rate: u32) -> RetryBudget {
        let p = BudgetPolicy::new()
            .with_capacity(capacity)
            .with_min_per_sec(rate)
            .with_jitter(Duration::ZERO);
        RetryBudget::new(p, Instant::ZERO).unwrap()
    }

    #[test]
    fn starts_full_then_refuses() {
        let mut b = budget(3, 1);
        for _ in 0..3 {
            assert!(b.withdraw(Instant::ZERO).is_ok());
        }
        let d = b.withdraw(Instant::ZERO).unwrap_err();
        assert_eq!(d.retry_in, Duration::from_secs(1));
        assert_eq!(
            b.stats(),
            BudgetStats {
                allowed: 3,
                denied: 1,
                deposits: 0
            }
        );
    }

    #[test]
    fn the_minimum_rate_refills_exactly() {
        let mut b = budget(1, 4);
        assert!(b.withdraw(Instant::ZERO).is_ok());
        // A quarter of a second brings exactly one token at 4 a second.
        assert!(b.withdraw(Instant::from_millis(249)).is_err());
        let d = b.withdraw(Instant::from_millis(249)).unwrap_err();
        assert_eq!(d.retry_in, Duration::from_millis(1));
        assert!(b.withdraw(Instant::from_millis(250)).is_ok());
        // Never above capacity, however long it was quiet.
        b.refill(Instant::from_millis(100_000));
        assert_eq!(b.tokens(), 1.0);
    }

    #[test]
    fn successes_feed_it() {
        let mut b = RetryBudget::new(
            BudgetPolicy::new()
                .with_capacity(10)
                .with_min_per_sec(0)
                .with_per_success(500),
            Instant::ZERO,
        )
        .unwrap();
        for _ in 0..10 {
            assert!(b.withdraw(Instant::ZERO).is_ok());
        }
        assert!(b.withdraw(Instant::ZERO).is_err());
        b.deposit(Instant::ZERO);
        assert!(
            b.withdraw(Instant::ZERO).is_err(),
            "half a token is not one"
        );
        b.deposit(Instant::ZERO);
        assert!(b.withdraw(Instant::ZERO).is_ok());
    }

    #[test]
    fn a_clock_going_back_adds_nothing() {
        let mut b = budget(1, 1000);
        assert!(b.withdraw(Instant::from_millis(10)).is_ok());
        assert!(b.withdraw(Instant::from_millis(5)).is_err());
        assert!(b.withdraw(Instant::from_millis(11)).is_ok());
    }

    #[test]
    fn advice_is_jittered_and_seeded() {
        let p = BudgetPolicy::new()
            .with_capacity(1)
            .with_min_per_sec(1)
            .with_jitter(Duration::from_secs(2))
            .with_seed(9);
        let advice = |p: BudgetPolicy| {
            let mut b = RetryBudget::new(p, Instant::ZERO).unwrap();
            let _ = b.withdraw(Instant::ZERO);
            (0..50)
                .map(|_| b.withdraw(Instant::ZERO).unwrap_err().retry_in)
                .collect::<alloc::vec::Vec<_>>()
        };
        let a = advice(p);
        assert_eq!(a, advice(p), "same seed, same advice");
        assert_ne!(a, advice(p.with_seed(10)));
        assert!(a
            .iter()
            .all(|d| (Duration::from_secs(1)..=Duration::from_secs(3)).contains(d)));
        assert!(a.iter().any(|d| *d != a[0]));
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert!(BudgetPolicy::new().with_capacity(0).validate().is_err());
        assert!(BudgetPolicy::new()
            .with_min_per_sec(0)
            .with_per_success(0)
            .validate()
            .is_err());
    }
}
