//! A redial session as a tower [`Service`]: requests go through [`Handle::request`], and
//! `poll_ready` is the backpressure.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use redial_core::Delivery;
use redial_driver::{Handle, Receipt, Reply, Undelivered};
use tower_service::Service;

use crate::request::{Described, RetryRequest, Safety};

/// Why a session request (or a [`crate::HandleSink`] message) did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session settled it without delivering it: in doubt, abandoned or rejected, with the
    /// message handed back.
    #[error(transparent)]
    Undelivered(#[from] Undelivered),
    /// The session has ended: nothing more can be sent.
    #[error("session closed")]
    Closed,
}

/// A request with its delivery class.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// The message, as the session's protocol frames it.
    pub payload: Vec<u8>,
    /// Whether the session may replay it on a new connection when it is unconfirmed.
    pub delivery: Delivery,
}

impl SessionRequest {
    /// Sent at most once: in doubt if its connection dies before the reply.
    pub fn at_most_once(payload: impl Into<Vec<u8>>) -> Self {
        SessionRequest {
            payload: payload.into(),
            delivery: Delivery::AtMostOnce,
        }
    }

    /// Safe to apply twice: replayed on the next connection if unconfirmed.
    pub fn idempotent(payload: impl Into<Vec<u8>>) -> Self {
        SessionRequest {
            payload: payload.into(),
            delivery: Delivery::Idempotent,
        }
    }
}

impl From<Vec<u8>> for SessionRequest {
    fn from(payload: Vec<u8>) -> Self {
        SessionRequest::at_most_once(payload)
    }
}

impl std::fmt::Debug for SessionRequest {
    // Never the payload: it can hold a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRequest")
            .field("len", &self.payload.len())
            .field("delivery", &self.delivery)
            .finish()
    }
}

impl RetryRequest for SessionRequest {
    fn safety(&self) -> Safety {
        match self.delivery {
            Delivery::Idempotent => Safety::Idempotent,
            Delivery::AtMostOnce => Safety::AtMostOnce,
        }
    }
    fn try_replay(&self) -> Option<Self> {
        Some(self.clone())
    }
    fn describe(&self) -> Described {
        Described {
            method: None,
            target: format!("session request of {} bytes", self.payload.len()),
        }
    }
}

/// The service's own count of requests it has in the session, and who waits for room.
#[derive(Debug)]
struct Permits {
    state: Mutex<PermitState>,
}

#[derive(Debug)]
struct PermitState {
    in_use: usize,
    limit: usize,
    waiters: Vec<Waker>,
}

impl Permits {
    fn lock(&self) -> std::sync::MutexGuard<'_, PermitState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn poll_acquire(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.in_use < s.limit {
            s.in_use += 1;
            Poll::Ready(())
        } else {
            if !s.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                s.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        }
    }

    fn release(&self) {
        let waiters = {
            let mut s = self.lock();
            s.in_use = s.in_use.saturating_sub(1);
            std::mem::take(&mut s.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }
}

/// One unit of room, given back when its request settles (or its future is dropped).
#[derive(Debug)]
struct Permit(Arc<Permits>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A [`Service`] over a session's [`Handle::request`]: a [`SessionRequest`] (a payload and its
/// [`Delivery`]; `Vec<u8>` converts into an at-most-once one) in, the peer's [`Reply`] out.
///
/// `poll_ready` is ready while fewer than `limit` requests of this service (and its clones,
/// which share the count) are unsettled; otherwise it waits until one settles. So tower's
/// backpressure (`ConcurrencyLimit`, `Buffer`, load shedding) applies before the session
/// queue would reject. The limit should not exceed the session's `QueueLimits::max_messages`
/// (1024 by default, the default here too). What it cannot see: messages other clones of the
/// [`Handle`] send — the driver exposes no queue depth to wait on (see
/// docs/TOWER.md) — so a shared queue can still reject, as [`SessionError::Undelivered`].
#[derive(Debug)]
pub struct SessionService {
    handle: Handle,
    permits: Arc<Permits>,
    /// Acquired by `poll_ready`, spent by `call`.
    reserved: Option<Permit>,
}

impl Clone for SessionService {
    fn clone(&self) -> Self {
        SessionService {
            handle: self.handle.clone(),
            permits: Arc::clone(&self.permits),
            reserved: None,
        }
    }
}

/// The default of [`SessionService::with_limit`]: the session queue's default bound.
pub const DEFAULT_LIMIT: usize = 1024;

impl SessionService {
    /// A service over `handle`, with room for [`DEFAULT_LIMIT`] unsettled requests.
    pub fn new(handle: Handle) -> Self {
        SessionService {
            handle,
            permits: Arc::new(Permits {
                state: Mutex::new(PermitState {
                    in_use: 0,
                    limit: DEFAULT_LIMIT,
                    waiters: Vec::new(),
                }),
            }),
            reserved: None,
        }
    }

    /// Sets how many requests may be unsettled at once (at least 1; shared with clones).
    pub fn with_limit(self, limit: usize) -> Self {
        self.permits.lock().limit = limit.max(1);
        self
    }

    /// Requests unsettled now (this service and its clones).
    pub fn in_flight(&self) -> usize {
        self.permits.lock().in_use
    }

    /// The handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        if self.handle.is_closed() {
            return Poll::Ready(Err(SessionError::Closed));
        }
        if self.reserved.is_none() {
            std::task::ready!(self.permits.poll_acquire(cx));
            self.reserved = Some(Permit(Arc::clone(&self.permits)));
        }
        Poll::Ready(Ok(()))
    }

    fn send(&mut self, request: SessionRequest) -> SessionFuture {
        // tower's contract is poll_ready first; a caller who skipped it still gets a permit
        // counted, never a panic.
        let permit = self.reserved.take().unwrap_or_else(|| {
            self.permits.lock().in_use += 1;
            Permit(Arc::clone(&self.permits))
        });
        SessionFuture {
            receipt: self.handle.request(request.payload, request.delivery),
            permit: Some(permit),
        }
    }
}

/// The future of a [`SessionService`] response: the request's receipt.
#[must_use = "futures do nothing unless polled (the request is sent anyway)"]
#[derive(Debug)]
pub struct SessionFuture {
    receipt: Receipt<Reply>,
    /// Given back as soon as the request settles.
    permit: Option<Permit>,
}

impl Future for SessionFuture {
    type Output = Result<Reply, SessionError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let settled = std::task::ready!(Pin::new(&mut self.receipt).poll(cx));
        self.permit = None;
        Poll::Ready(settled.map_err(SessionError::Undelivered))
    }
}

impl Service<SessionRequest> for SessionService {
    type Response = Reply;
    type Error = SessionError;
    type Future = SessionFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        self.poll_room(cx)
    }

    fn call(&mut self, request: SessionRequest) -> SessionFuture {
        self.send(request)
    }
}
