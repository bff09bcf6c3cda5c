//! # redial-tower
//!
//! redial in the tower ecosystem:
//!
//! | piece | what |
//! |---|---|
//! | [`RetryLayer`] ([`RetryPolicy`]) | retries a tower `Service`'s network failures, only when that is safe |
//! | [`SessionService`] | a redial session as a `Service<SessionRequest>` over [`Handle::request`](redial_driver::Handle::request); `poll_ready` is the backpressure |
//! | [`HandleSink`] | a session's handle as a `futures` `Sink` of messages |
//! | [`CollectBodyLayer`] | buffers streaming request bodies (bounded) so they can be retried (tonic) |
//! | [`TokioCodec`] (feature `tokio-util`, on by default) | any tokio-util `Decoder + Encoder` as a redial [`Codec`](redial_core::Codec) |
//!
//! ## Retrying only what is safe
//!
//! The seed's advice for request/response clients: wrap the round trip, and retry only
//! network errors, never a request that may have been executed. [`RetryLayer`] does exactly
//! that, with redial's pieces: its [`Backoff`] (jitter, cap), its give-up ([`GiveUp`]: a count
//! and a time budget), its error classes ([`NetError`], found by walking the error's `source()`
//! chain to an `io::Error`: [`classify_error`]), and the at-most-once / idempotent
//! distinction of its delivery ledger:
//!
//! | the failure | the request | what happens |
//! |---|---|---|
//! | not a network error, or a permanent one | any | returned ([`RetryErrorKind::NotRetryable`]) |
//! | never sent (refused, resolution failed) | any, if its body can be replayed | retried |
//! | may have been sent (reset, broken pipe, timeout) | GET, HEAD, OPTIONS, PUT, DELETE, TRACE, [`Idempotent`], an `Idempotency-Key` | retried |
//! | may have been sent | anything else (a POST) | **never retried**: [`RetryErrorKind::InDoubt`] |
//! | a 503 / 429 | idempotent or keyed | returned, unless opted in ([`StatusRetry`]), then retried after `Retry-After` |
//! | a retry is due, the body is streaming | any | [`RetryErrorKind::NotReplayable`] |
//!
//! Every retry is a `tracing` event (`attempt`, `target`, `error`, `delay_ms`); requests are
//! named by method and target only: headers, user info and query strings never appear in
//! events or errors. A shared [`RetryBudget`] ([`TokenBucket`]) caps retries across requests.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use redial_tower::{RetryErrorKind, RetryPolicy, StatusRetry};
//! use tower::{Layer, ServiceExt};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
//!     .build_http::<Full<Bytes>>();
//! let layer = RetryPolicy::new()
//!     .with_max_attempts(4)
//!     .with_status_retry(StatusRetry::unavailable()) // opt in to 503/429, honouring Retry-After
//!     .layer()?;
//! let svc = layer.layer(client);
//!
//! let order = http::Request::post("http://127.0.0.1:8080/orders")
//!     .body(Full::new(Bytes::from_static(b"{}")))?;
//! match svc.oneshot(order).await {
//!     Ok(response) => println!("{}", response.status()),
//!     Err(e) if e.kind() == RetryErrorKind::InDoubt => {
//!         // Written, then the connection died: the server may have applied it. Ask it.
//!         println!("{e}");
//!     }
//!     Err(e) => println!("failed: {e}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## A session as a `Service`
//!
//! ```no_run
//! use redial_tokio::AckMode;
//! use redial_tower::{SessionRequest, SessionService, TokioCodec};
//! use tokio_util::codec::LinesCodec;
//! use tower::{Service, ServiceExt};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (handle, _inbound, _events) = redial_tokio::builder("127.0.0.1:7000")
//!     .codec(TokioCodec::<LinesCodec, String>::new(LinesCodec::new()).with_heartbeat(b"PING", b"PONG"))
//!     .acks(AckMode::InOrder) // one reply line per request line
//!     .spawn()?;
//! let mut svc = SessionService::new(handle).with_limit(64);
//! // `ready()` waits while 64 requests are unanswered: tower's backpressure.
//! let reply = svc.ready().await?.call(SessionRequest::at_most_once(&b"GET k"[..])).await?;
//! println!("{}", String::from_utf8_lossy(&reply.body));
//! # Ok(())
//! # }
//! ```
//!
//! ## A handle as a `Sink`
//!
//! ```no_run
//! use futures::SinkExt;
//! use redial_tower::HandleSink;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (handle, _inbound, _events) = redial_tokio::builder("127.0.0.1:7000").spawn()?;
//! let mut sink = HandleSink::new(handle).with_max_pending(128);
//! sink.send(b"hello".to_vec()).await?; // resolves once delivered
//! let mut lines = futures::stream::iter(["a", "b", "c"].map(|l| Ok(l.as_bytes().to_vec())));
//! sink.send_all(&mut lines).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## tokio-util codecs
//!
//! Your existing codec frames the session; the heartbeat is configured beside it. Decoding is
//! checked split at every byte (see the module tests).
//!
//! ```
//! use redial_core::{Codec, Frame};
//! use redial_tower::TokioCodec;
//! use tokio_util::codec::LengthDelimitedCodec;
//!
//! let mut codec = TokioCodec::<LengthDelimitedCodec>::new(LengthDelimitedCodec::new())
//!     .with_heartbeat(b"\x00ping", b"\x00pong");
//! let mut wire = Vec::new();
//! codec.encode(Frame::Data(b"hello"), &mut wire).unwrap();
//! assert_eq!(wire, b"\x00\x00\x00\x05hello");
//! assert_eq!(codec.decode(&wire[..6]).unwrap(), None); // not yet
//! assert_eq!(codec.decode(&wire).unwrap(), Some((Frame::Data(b"hello"), 9)));
//! ```
//!
//! See `docs/TOWER.md` for hyper, reqwest and tonic, and the comparison with `tower::retry`
//! and `reqwest-retry`.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `tokio` | yes | `TokioTimer`: the retry layer's sleeps and clock on tokio |
//! | `tokio-util` | yes | `TokioCodec`: any tokio-util `Decoder + Encoder` as a redial codec |
//! | `hyper` | yes | the classifier knows hyper-util's connect errors and hyper's incomplete messages |
//! | `h2` | yes | the classifier finds the `io::Error` inside an `h2::Error` and treats `REFUSED_STREAM` as never processed |
//! | `reqwest` | no | the retry layer over `reqwest::Client` (`RetryRequest` for `reqwest::Request`) |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod body;
mod budget;
mod classify;
#[cfg(feature = "tokio-util")]
mod codec;
mod collect;
mod error;
mod policy;
mod request;
#[cfg(feature = "reqwest")]
mod reqwest;
mod response;
mod retry;
mod session;
mod sink;
mod timer;

pub use body::{ReplayBody, Replayable};
pub use budget::{BadBucket, RetryBudget, TokenBucket};
pub use classify::{classify_error, find_io_error, Classifier, Failure, Sent};
#[cfg(feature = "tokio-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-util")))]
pub use codec::{FromPayload, TokioCodec, DEFAULT_MAX_FRAME};
pub use collect::{CollectBody, CollectBodyLayer, CollectError};
pub use error::{BoxError, GiveUpReason, RetryError, RetryErrorKind};
pub use policy::{PolicyError, RetryPolicy, StatusRetry};
pub use request::{
    idempotent_method, Described, Idempotent, RetryRequest, Safety, IDEMPOTENCY_KEY,
};
pub use response::{parse_retry_after, RetryResponse};
pub use retry::{ResponseFuture, Retry, RetryLayer};
pub use session::{SessionError, SessionFuture, SessionRequest, SessionService, DEFAULT_LIMIT};
pub use sink::{HandleSink, DEFAULT_MAX_PENDING};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use timer::TokioTimer;
pub use timer::{Sleep, Timer};

/// redial's backoff, give-up and error classes, as the policy uses them.
pub use redial_core::{Backoff, GiveUp, GiveUpWhen, Jitter, NetError};
