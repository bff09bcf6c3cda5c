//! [`CollectBodyLayer`]: buffers a streaming request body (up to a bound) so the request can be
//! retried. Put it outside the [`crate::RetryLayer`]; tonic's bodies need it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::BoxError;

/// A request body that could not be buffered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// The body is longer than the layer's bound: it is not buffered (nor sent).
    #[error("request body exceeds the buffering bound of {max} bytes")]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// Reading the body failed.
    #[error("reading the request body failed")]
    Read(#[source] BoxError),
}

/// Makes [`CollectBody`] services: every request body is read into memory (at most `max`
/// bytes) and passed on as a `Full<Bytes>`, which [`crate::RetryLayer`] can replay.
///
/// ```
/// use redial_tower::{CollectBodyLayer, RetryPolicy};
/// # fn build() -> Result<(), redial_tower::PolicyError> {
/// let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
///     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// // Any request body in (a stream, tonic's body), buffered up to 1 MiB, then retried if safe.
/// let svc = tower::ServiceBuilder::new()
///     .layer(CollectBodyLayer::new(1 << 20))
///     .layer(RetryPolicy::new().layer()?)
///     .service(client);
/// # let _ = svc;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CollectBodyLayer {
    max: usize,
}

impl CollectBodyLayer {
    /// Buffers bodies of up to `max` bytes; longer ones fail with [`CollectError::TooLarge`].
    pub const fn new(max: usize) -> Self {
        CollectBodyLayer { max }
    }
}

impl<S> Layer<S> for CollectBodyLayer {
    type Service = CollectBody<S>;
    fn layer(&self, inner: S) -> CollectBody<S> {
        CollectBody {
            inner,
            max: self.max,
        }
    }
}

/// See [`CollectBodyLayer`].
#[derive(Clone, Debug)]
pub struct CollectBody<S> {
    inner: S,
    max: usize,
}

impl<S, B> Service<Request<B>> for CollectBody<S>
where
    S: Service<Request<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let max = self.max;
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = match Limited::new(body, max).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(CollectError::TooLarge { max }.into())
                }
                Err(e) => return Err(CollectError::Read(e).into()),
            };
            ready
                .call(Request::from_parts(parts, Full::new(bytes)))
                .await
                .map_err(Into::into)
        })
    }
}
