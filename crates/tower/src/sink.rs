//! A session's [`Handle`] as a `futures` [`Sink`] of messages.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::stream::FuturesUnordered;
use redial_core::Delivery;
use redial_driver::{Handle, Receipt};

use crate::session::SessionError;

/// The default of [`HandleSink::with_max_pending`].
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// A [`Sink`] of messages over [`Handle::send`].
///
/// `start_send` enqueues at once (order is kept); `poll_ready` waits while `max_pending`
/// messages are unsettled; `poll_flush` completes when every message sent so far is
/// delivered, or fails with the first that was not ([`SessionError::Undelivered`], the message
/// handed back; the others are still tracked by the next flush). `poll_close` is a flush: the
/// session belongs to its handles, and stays up.
#[derive(Debug)]
pub struct HandleSink {
    handle: Handle,
    delivery: Delivery,
    max_pending: usize,
    pending: FuturesUnordered<Receipt>,
}

impl HandleSink {
    /// A sink over `handle`, at most once, with room for [`DEFAULT_MAX_PENDING`] unsettled
    /// messages.
    pub fn new(handle: Handle) -> Self {
        HandleSink {
            handle,
            delivery: Delivery::AtMostOnce,
            max_pending: DEFAULT_MAX_PENDING,
            pending: FuturesUnordered::new(),
        }
    }

    /// Sets the delivery class of every message.
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Sets how many messages may be unsettled before `poll_ready` waits (at least 1).
    pub fn with_max_pending(mut self, max: usize) -> Self {
        self.max_pending = max.max(1);
        self
    }

    /// Messages sent and not yet settled.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Settles what has settled; `Ready(None)` when nothing is pending.
    fn poll_settled(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<(), SessionError>>> {
        loop {
            match Pin::new(&mut self.pending).poll_next(cx) {
                Poll::Ready(Some(Ok(()))) => continue,
                Poll::Ready(Some(Err(u))) => return Poll::Ready(Some(Err(u.into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Sink<Vec<u8>> for HandleSink {
    type Error = SessionError;

    fn poll_ready(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SessionError>> {
        if self.handle.is_closed() {
            return Poll::Ready(Err(SessionError::Closed));
        }
        while self.pending.len() >= self.max_pending {
            match self.poll_settled(cx) {
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(_) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Vec<u8>) -> Result<(), SessionError> {
        let receipt = self.handle.send(item, self.delivery);
        self.pending.push(receipt);
        Ok(())
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SessionError>> {
        match self.poll_settled(cx) {
            Poll::Ready(Some(Err(e))) => Poll::Ready(Err(e)),
            Poll::Ready(_) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        self.poll_flush(cx)
    }
}
