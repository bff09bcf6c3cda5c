//! [`RetryLayer`] and its service, [`Retry`]: the attempt loop.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use redial_core::{NetError, SplitMix64};
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::{Chain, Sent};
use crate::error::{BoxError, GiveUpReason, RetryError, RetryErrorKind};
use crate::policy::Shared;
use crate::request::{Described, RetryRequest};
use crate::response::RetryResponse;

/// A tower [`Layer`] that retries what is safe to retry; made by
/// [`crate::RetryPolicy::layer`].
#[derive(Clone)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.shared.policy)
            .finish()
    }
}

impl RetryLayer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RetryLayer { shared }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A service that retries network failures of `S` when that is safe (see the crate docs).
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl<S> Retry<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The future of [`Retry`]'s responses.
pub type ResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, RetryError>> + Send + 'static>>;

impl<S, Req> Service<Req> for Retry<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    S::Response: RetryResponse + Send,
    Req: RetryRequest + Send + 'static,
{
    type Response = S::Response;
    type Error = RetryError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RetryError>> {
        self.inner.poll_ready(cx).map_err(|e| {
            RetryError::new(
                RetryErrorKind::NotReady,
                Described::default(),
                0,
                None,
                e.into(),
            )
        })
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The ready service goes with this request; `self` keeps a fresh clone (tower's rule:
        // `call` uses the instance `poll_ready` prepared).
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(attempts(ready, request, Arc::clone(&self.shared)))
    }
}

/// Why an attempt failed, and what it leaves to return if we stop.
enum Failed<T> {
    /// A network error.
    Net { error: BoxError, class: NetError },
    /// A status the policy retries; the response is returned if we stop.
    Status {
        response: T,
        code: u16,
        retry_after: Option<Duration>,
    },
}

async fn attempts<S, Req>(
    mut svc: S,
    request: Req,
    shared: Arc<Shared>,
) -> Result<S::Response, RetryError>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: RetryResponse,
    Req: RetryRequest,
{
    let policy = &shared.policy;
    let timer = &shared.timer;
    let start = timer.now();
    let safety = request.safety();
    let described = request.describe();
    let n = shared.requests.fetch_add(1, Ordering::Relaxed);
    let mut rng = SplitMix64::new(policy.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if let Some(b) = &policy.budget {
        b.deposit();
    }
    let fail = |kind, attempt, class, source| {
        RetryError::new(kind, described.clone(), attempt, class, source)
    };

    let mut spare = request.try_replay();
    let mut current = request;
    let mut attempt: u32 = 1;
    let mut previous = Duration::ZERO;
    loop {
        if attempt > 1 {
            if let Err(e) = std::future::poll_fn(|cx| svc.poll_ready(cx)).await {
                return Err(fail(RetryErrorKind::NotReady, attempt - 1, None, e.into()));
            }
        }
        let failed = match svc.call(current).await {
            Ok(response) => {
                let code = response.status_code();
                match (&policy.status, code) {
                    (Some(sr), Some(code))
                        if sr.statuses.contains(&code) && safety.may_repeat() =>
                    {
                        let retry_after = response.retry_after();
                        if retry_after.is_some_and(|ra| ra > sr.max_retry_after) {
                            tracing::debug!(attempt, target = %described, status = code, "not retried: Retry-After beyond the policy's maximum");
                            return Ok(response);
                        }
                        Failed::Status {
                            response,
                            code,
                            retry_after,
                        }
                    }
                    _ => return Ok(response),
                }
            }
            Err(e) => {
                let error: BoxError = crate::classify::scrub(e.into());
                let Some(failure) = (policy.classifier)(&*error) else {
                    return Err(fail(RetryErrorKind::NotRetryable, attempt, None, error));
                };
                if failure.sent == Sent::Maybe && !safety.may_repeat() {
                    tracing::warn!(attempt, target = %described, error = %Chain(&*error), class = %failure.class, "in doubt, not retried: the request may have been executed");
                    return Err(fail(
                        RetryErrorKind::InDoubt,
                        attempt,
                        Some(failure.class),
                        error,
                    ));
                }
                Failed::Net {
                    error,
                    class: failure.class,
                }
            }
        };

        let stop = |why: GiveUpReason,
                    failed: Failed<S::Response>|
         -> Result<S::Response, RetryError> {
            match failed {
                Failed::Status { response, code, .. } => {
                    tracing::debug!(attempt, target = %described, status = code, reason = %why, "gave up retrying");
                    Ok(response)
                }
                Failed::Net { error, class } => {
                    tracing::warn!(attempt, target = %described, error = %Chain(&*error), reason = %why, "gave up retrying");
                    Err(fail(
                        RetryErrorKind::GaveUp(why),
                        attempt,
                        Some(class),
                        error,
                    ))
                }
            }
        };
        let elapsed = timer.now().saturating_duration_since(start);
        if policy.give_up.reached(attempt, elapsed) {
            let why = match policy.give_up.max_elapsed {
                Some(max) if elapsed >= max => GiveUpReason::TimeBudget,
                _ => GiveUpReason::Attempts,
            };
            return stop(why, failed);
        }
        let mut delay = policy.backoff.delay(attempt, previous, &mut rng);
        previous = delay;
        if let Failed::Status {
            retry_after: Some(ra),
            ..
        } = &failed
        {
            delay = delay.max(*ra);
        }
        if let Some(max) = policy.give_up.max_elapsed {
            if elapsed.saturating_add(delay) > max {
                return stop(GiveUpReason::TimeBudget, failed);
            }
        }
        let Some(next) = spare.take() else {
            return match failed {
                Failed::Status { response, .. } => Ok(response),
                Failed::Net { error, class } => {
                    tracing::warn!(attempt, target = %described, error = %Chain(&*error), "not retried: the body cannot be replayed");
                    Err(fail(
                        RetryErrorKind::NotReplayable,
                        attempt,
                        Some(class),
                        error,
                    ))
                }
            };
        };
        if let Some(b) = &policy.budget {
            if !b.withdraw() {
                return stop(GiveUpReason::Budget, failed);
            }
        }
        match &failed {
            Failed::Net { error, class } => tracing::warn!(
                attempt,
                target = %described,
                error = %Chain(&**error),
                class = %class,
                delay_ms = delay.as_millis() as u64,
                "retrying"
            ),
            Failed::Status {
                code, retry_after, ..
            } => tracing::warn!(
                attempt,
                target = %described,
                status = code,
                retry_after_ms = retry_after.map(|d| d.as_millis() as u64),
                delay_ms = delay.as_millis() as u64,
                "retrying"
            ),
        }
        drop(failed);
        timer.sleep(delay).await;
        spare = next.try_replay();
        current = next;
        attempt += 1;
    }
}
