//! tonic: a `tonic::client::Grpc` over a `tonic::transport::Channel`, with the retry layer
//! between them (and `CollectBodyLayer` outside it, so tonic's streaming bodies can be
//! replayed). The gRPC server is hand-written on hyper's HTTP/2 server (no protobuf, no
//! code generation: messages are raw bytes), behind the fault proxy, on 127.0.0.1.
//!
//! gRPC sends every call as a POST: a call is retried when it was never sent (refused), or
//! when the caller marks it idempotent (`Idempotent` in the request's extensions); a call
//! whose connection died after it was written is in doubt.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use redial_tower::{CollectBodyLayer, RetryError, RetryErrorKind, RetryPolicy};
use support::{Fault, Hook, Proxy, TestTimer};
use tokio::net::TcpListener;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;
use tower::ServiceBuilder;

const BOUND: Duration = Duration::from_secs(10);

/// Raw bytes as gRPC messages.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The server: counts each message it executes; with `kill_first`, after executing the first
/// call it has the proxy reset the client before answering.
#[derive(Default)]
struct Orders {
    executed: Mutex<HashMap<Bytes, u32>>,
    kill_first: std::sync::atomic::AtomicBool,
}

async fn grpc_server(
    orders: Arc<Orders>,
    proxy_kill: Arc<Mutex<Option<Arc<Proxy>>>>,
) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (orders, proxy_kill) = (Arc::clone(&orders), Arc::clone(&proxy_kill));
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (orders, proxy_kill) = (Arc::clone(&orders), Arc::clone(&proxy_kill));
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let msg = body.slice(5.min(body.len())..);
                        *orders
                            .executed
                            .lock()
                            .unwrap()
                            .entry(msg.clone())
                            .or_default() += 1;
                        if orders
                            .kill_first
                            .swap(false, std::sync::atomic::Ordering::SeqCst)
                        {
                            let proxy = proxy_kill.lock().unwrap().clone();
                            if let Some(p) = proxy {
                                p.kill.notify_one();
                                p.killed.notified().await;
                            }
                        }
                        let mut frame = vec![0u8];
                        frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
                        frame.extend_from_slice(&msg);
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        let frames = futures::stream::iter([
                            Ok::<_, Infallible>(Frame::data(Bytes::from(frame))),
                            Ok(Frame::trailers(trailers)),
                        ]);
                        let mut resp = Response::new(StreamBody::new(frames));
                        resp.headers_mut()
                            .insert("content-type", "application/grpc".parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

struct Rig {
    orders: Arc<Orders>,
    proxy: Arc<Proxy>,
    timer: Arc<TestTimer>,
    attempts: Arc<AtomicU32>,
}

async fn rig() -> Rig {
    let orders = Arc::new(Orders::default());
    let slot = Arc::new(Mutex::new(None));
    let addr = grpc_server(Arc::clone(&orders), Arc::clone(&slot)).await;
    let proxy = Arc::new(Proxy::start(addr).await);
    *slot.lock().unwrap() = Some(Arc::clone(&proxy));
    Rig {
        orders,
        proxy,
        timer: TestTimer::new(),
        attempts: Arc::default(),
    }
}

impl Rig {
    /// One unary call through CollectBody → Retry → Hook → Channel.
    async fn call(
        &self,
        msg: &'static str,
        idempotent: bool,
        resume_at: Option<u32>,
    ) -> Result<Bytes, Status> {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", self.proxy.addr))
            .unwrap()
            .connect_lazy();
        let proxy = Arc::clone(&self.proxy);
        let hook = Hook::new(channel, Arc::clone(&self.attempts), move |n| {
            if Some(n) == resume_at {
                proxy.resume();
            }
        });
        let policy = RetryPolicy::new()
            .with_timer(Arc::clone(&self.timer) as _)
            .with_max_attempts(4);
        let svc = ServiceBuilder::new()
            .layer(CollectBodyLayer::new(64 << 10))
            .layer(policy.layer().unwrap())
            .map_request(|r: Request<Full<Bytes>>| r.map(tonic::body::Body::new))
            .service(hook);
        let mut grpc = tonic::client::Grpc::new(svc);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut req = tonic::Request::new(Bytes::from_static(msg.as_bytes()));
        if idempotent {
            req.extensions_mut().insert(redial_tower::Idempotent);
        }
        let path = http::uri::PathAndQuery::from_static("/test.Orders/Create");
        tokio::time::timeout(BOUND, grpc.unary(req, path, Raw))
            .await
            .expect("bounded")
            .map(|r| r.into_inner())
    }

    fn executed(&self, msg: &'static str) -> u32 {
        self.orders
            .executed
            .lock()
            .unwrap()
            .get(msg.as_bytes())
            .copied()
            .unwrap_or(0)
    }
    fn attempts(&self) -> u32 {
        self.attempts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The retry layer's error, found in the Status tonic made of it.
fn retry_error(status: &Status) -> Option<&RetryError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<RetryError>() {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

#[tokio::test]
async fn a_refused_grpc_call_is_retried() {
    let r = rig().await;
    r.proxy.refuse().await;
    let reply = r
        .call("order-1", false, Some(3))
        .await
        .expect("never sent, so retried");
    assert_eq!(reply, "order-1");
    assert_eq!(r.attempts(), 3);
    assert_eq!(r.executed("order-1"), 1);
}

#[tokio::test]
async fn a_grpc_call_reset_after_it_was_executed_is_in_doubt() {
    let r = rig().await;
    r.proxy.script([Fault::ResetOnSignal]);
    r.orders
        .kill_first
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let status = r
        .call("order-2", false, None)
        .await
        .expect_err("its connection died");
    let err = retry_error(&status).unwrap_or_else(|| panic!("no RetryError in {status:?}"));
    assert_eq!(err.kind(), RetryErrorKind::InDoubt, "{err}");
    assert_eq!(err.class(), Some(redial_tower::NetError::Reset));
    assert_eq!(r.attempts(), 1, "not sent again");
    assert_eq!(r.executed("order-2"), 1);
}

#[tokio::test]
async fn an_idempotent_grpc_call_reset_after_it_was_executed_is_retried() {
    let r = rig().await;
    r.proxy.script([Fault::ResetOnSignal]);
    r.orders
        .kill_first
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let reply = r
        .call("order-3", true, None)
        .await
        .expect("idempotent: retried");
    assert_eq!(reply, "order-3");
    assert_eq!(r.attempts(), 2);
    assert_eq!(
        r.executed("order-3"),
        2,
        "the caller said applying it twice is fine"
    );
}
