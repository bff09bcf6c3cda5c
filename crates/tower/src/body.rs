//! Request bodies that can be sent again.
//!
//! A retry needs a second copy of the request, taken before the first is sent. Bodies that
//! are already in memory can be copied ([`ReplayBody`]); a streaming body cannot, and a
//! request with one is sent once (a failure is then
//! [`crate::RetryErrorKind::NotReplayable`]). [`Replayable`] holds either, so one client type
//! serves both.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Empty, Full};

/// A body that can make a copy of itself before it is sent, or says it cannot.
pub trait ReplayBody: Sized {
    /// A fresh copy of the whole body, or `None` for a body that can only be read once.
    fn replay(&self) -> Option<Self>;
}

impl<D: Clone> ReplayBody for Full<D> {
    fn replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for Empty<D> {
    fn replay(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

macro_rules! clone_bodies {
    ($($t:ty),*) => {$(
        impl ReplayBody for $t {
            fn replay(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}
clone_bodies!(Bytes, String, Vec<u8>, ());

pin_project_lite::pin_project! {
    /// A body that is either buffered (replayable) or streaming (sent once).
    #[derive(Debug)]
    pub struct Replayable<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    #[derive(Debug)]
    enum Inner<B> {
        // `None` once sent.
        Buffered { data: Option<Bytes> },
        Streaming { #[pin] body: B },
    }
}

impl<B> Replayable<B> {
    /// A buffered body: replayed as often as needed.
    pub fn buffered(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Replayable {
            inner: Inner::Buffered {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// A streaming body: read once, never replayed.
    pub fn streaming(body: B) -> Self {
        Replayable {
            inner: Inner::Streaming { body },
        }
    }

    /// Whether it can be replayed.
    pub fn is_buffered(&self) -> bool {
        matches!(self.inner, Inner::Buffered { .. })
    }
}

impl<B> ReplayBody for Replayable<B> {
    fn replay(&self) -> Option<Self> {
        match &self.inner {
            Inner::Buffered { data } => Some(Replayable {
                inner: Inner::Buffered { data: data.clone() },
            }),
            Inner::Streaming { .. } => None,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for Replayable<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().inner.project() {
            InnerProj::Buffered { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            InnerProj::Streaming { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Buffered { data } => data.is_none(),
            Inner::Streaming { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Buffered { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Inner::Streaming { body } => body.size_hint(),
        }
    }
}
