//! The retry layer's clock and sleeps, so it runs on any runtime and tests can see every wait
//! it asks for.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A boxed, sendable sleep.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A clock and a sleep. The retry layer measures its time budget with [`Timer::now`] and waits
/// out every backoff (and every `Retry-After`) with [`Timer::sleep`], nothing else.
pub trait Timer: Send + Sync + 'static {
    /// Now, on a monotonic clock.
    fn now(&self) -> Instant;
    /// A future that completes after `delay`.
    fn sleep(&self, delay: Duration) -> Sleep;
}

/// tokio's clock and `tokio::time::sleep` (so `tokio::time::pause()` applies).
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioTimer;

#[cfg(feature = "tokio")]
impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, delay: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(delay))
    }
}
