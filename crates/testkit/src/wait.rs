//! Bounded condition waits: tests synchronise on observable state, never on fixed sleeps.
//!
//! These block the calling thread. In an async test on a current-thread runtime that also
//! drives the code under test, blocking here starves that code: call them from a
//! `spawn_blocking` / `unblock` task, or poll with the runtime's own timer instead.

use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(2);

/// Polls `cond` about every 2 ms until it returns `true`.
///
/// # Panics
/// When `cond` is still `false` after `timeout`; the message names `what`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, what, || cond().then_some(()));
}

/// Polls `f` about every 2 ms until it returns `Some`, and returns that value.
///
/// # Panics
/// When `f` still returns `None` after `timeout`; the message names `what`.
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_value_once_ready() {
        let mut n = 0;
        let v = wait_for(Duration::from_secs(1), "counter", || {
            n += 1;
            (n == 3).then_some(n * 10)
        });
        assert_eq!(v, 30);
    }

    #[test]
    #[should_panic(expected = "timed out after 20ms waiting for never")]
    fn panics_naming_the_condition() {
        wait_until(Duration::from_millis(20), "never", || false);
    }
}
