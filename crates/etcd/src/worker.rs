//! The background thread the etcd client runs on (a current-thread tokio runtime of its own,
//! so the sessions may run on any executor), and redial's backoff between its attempts.

use std::future::Future;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use futures::channel::oneshot;
use redial_core::{Backoff, SplitMix64};

/// The thread; dropping it stops the client (its connection to etcd closes).
pub(crate) struct Worker {
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Worker {
    /// Runs `task` on a new thread until it ends or the worker is dropped.
    pub(crate) fn spawn<F, T>(name: &str, task: T) -> io::Result<Worker>
    where
        T: FnOnce() -> F + Send + 'static,
        F: Future<Output = ()> + 'static,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        _ = task() => {}
                        _ = rx => {}
                    }
                });
            })?;
        Ok(Worker {
            stop: Mutex::new(Some(tx)),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let stop = self
            .stop
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = stop.take() {
            let _ = tx.send(());
        }
    }
}

/// redial's backoff, for the client's own attempts to reach etcd.
pub(crate) struct Retry {
    backoff: Backoff,
    rng: SplitMix64,
    pub(crate) failures: u32,
    last: Duration,
}

impl Retry {
    pub(crate) fn new(backoff: Backoff, seed: u64) -> Self {
        Retry {
            backoff,
            rng: SplitMix64::new(seed),
            failures: 0,
            last: Duration::ZERO,
        }
    }

    /// One more failure: the delay before the next attempt.
    pub(crate) fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.last = self.backoff.delay(self.failures, self.last, &mut self.rng);
        self.last
    }

    /// Reached etcd: the next failure starts the schedule again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
        self.last = Duration::ZERO;
    }
}
