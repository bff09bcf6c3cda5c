//! The retry layer in front of a real hyper-util client, a fault proxy and a real hyper
//! server, all on 127.0.0.1. What the server executed is counted on the server.

mod support;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use redial_tower::{
    Backoff, GiveUpReason, Jitter, Replayable, RetryErrorKind, RetryPolicy, StatusRetry,
    TokenBucket,
};
use support::{client, Fault, Hook, Proxy, Server, TestTimer};
use tower::{Layer, ServiceExt};

/// Every test is bounded: a hang fails it in seconds.
const BOUND: Duration = Duration::from_secs(10);

fn request(method: Method, addr: std::net::SocketAddr, id: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(format!("http://{addr}/things?token=t0p"))
        .header("x-test-id", id)
}

fn get(addr: std::net::SocketAddr, id: &str) -> Request<Full<Bytes>> {
    request(Method::GET, addr, id)
        .body(Full::default())
        .unwrap()
}

fn post(addr: std::net::SocketAddr, id: &str, key: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = request(Method::POST, addr, id);
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    b.body(Full::new(Bytes::from_static(b"{\"order\":1}")))
        .unwrap()
}

/// A policy on the test timer: waits are recorded, not slept.
fn policy(timer: &Arc<TestTimer>) -> RetryPolicy {
    RetryPolicy::new()
        .with_timer(Arc::clone(timer) as _)
        .with_max_attempts(5)
}

struct Rig {
    server: Server,
    proxy: Arc<Proxy>,
    timer: Arc<TestTimer>,
    attempts: Arc<AtomicU32>,
}

async fn rig() -> Rig {
    let server = Server::start().await;
    let proxy = Arc::new(Proxy::start(server.addr).await);
    Rig {
        server,
        proxy,
        timer: TestTimer::new(),
        attempts: Arc::default(),
    }
}

impl Rig {
    /// The client behind `policy`, with the proxy reopened before attempt `resume_at`.
    fn service(
        &self,
        policy: RetryPolicy,
        resume_at: Option<u32>,
    ) -> redial_tower::Retry<Hook<support::Client>> {
        let proxy = Arc::clone(&self.proxy);
        let hook = Hook::new(client(), Arc::clone(&self.attempts), move |n| {
            if Some(n) == resume_at {
                proxy.resume();
            }
        });
        policy.layer().expect("valid policy").layer(hook)
    }
    fn attempts(&self) -> u32 {
        self.attempts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn refused_get_is_retried_then_succeeds() {
    let r = rig().await;
    r.proxy.refuse().await;
    let svc = r.service(policy(&r.timer), Some(3));
    let resp = tokio::time::timeout(BOUND, svc.oneshot(get(r.proxy.addr, "g1")))
        .await
        .unwrap()
        .expect("succeeds on the third attempt");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(r.attempts(), 3);
    assert_eq!(r.timer.sleeps().len(), 2, "one backoff wait per retry");
    for (n, d) in r.timer.sleeps().iter().enumerate() {
        assert!(
            *d <= Backoff::new().base(n as u32 + 1),
            "jittered within the backoff: {d:?}"
        );
    }
    assert_eq!(r.server.seen("g1").received, 1);
}

#[tokio::test]
async fn post_reset_after_it_was_written_is_in_doubt_and_not_retried() {
    let r = rig().await;
    r.proxy.script([Fault::ResetOnResponse]);
    let svc = r.service(policy(&r.timer), None);
    let err = tokio::time::timeout(BOUND, svc.oneshot(post(r.proxy.addr, "p1", None)))
        .await
        .unwrap()
        .expect_err("the connection died after the POST was written");
    assert_eq!(err.kind(), RetryErrorKind::InDoubt, "{err}");
    assert!(err.is_in_doubt());
    assert_eq!(err.attempts(), 1);
    assert_eq!(r.attempts(), 1, "never sent again");
    assert!(r.timer.sleeps().is_empty());
    let seen = r.server.seen("p1");
    assert_eq!(
        (seen.received, seen.executed),
        (1, 1),
        "executed exactly once"
    );
}

#[tokio::test]
async fn post_with_an_idempotency_key_is_retried() {
    let r = rig().await;
    r.proxy.script([Fault::ResetOnResponse]);
    let svc = r.service(policy(&r.timer), None);
    let resp = tokio::time::timeout(BOUND, svc.oneshot(post(r.proxy.addr, "p2", Some("key-p2"))))
        .await
        .unwrap()
        .expect("retried with its key");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(r.attempts(), 2);
    let seen = r.server.seen("p2");
    assert_eq!(seen.received, 2, "the server saw it twice");
    assert_eq!(seen.executed, 1, "and applied it once, by its key");
}

#[tokio::test]
async fn post_marked_idempotent_is_retried() {
    let r = rig().await;
    r.proxy.script([Fault::ResetOnResponse]);
    let svc = r.service(policy(&r.timer), None);
    let mut req = post(r.proxy.addr, "p3", None);
    req.extensions_mut().insert(redial_tower::Idempotent);
    let resp = tokio::time::timeout(BOUND, svc.oneshot(req))
        .await
        .unwrap()
        .expect("retried");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(r.server.seen("p3").received, 2);
}

#[tokio::test]
async fn post_refused_before_it_was_sent_is_retried() {
    let r = rig().await;
    r.proxy.refuse().await;
    let svc = r.service(policy(&r.timer), Some(2));
    let resp = tokio::time::timeout(BOUND, svc.oneshot(post(r.proxy.addr, "p4", None)))
        .await
        .unwrap()
        .expect("a refused connect never sent it");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        r.server.seen("p4"),
        support::Seen {
            received: 1,
            executed: 1
        }
    );
}

#[tokio::test]
async fn get_reset_mid_request_is_retried() {
    let r = rig().await;
    r.proxy.script([Fault::ResetAfter(10)]);
    let svc = r.service(policy(&r.timer), None);
    let resp = tokio::time::timeout(BOUND, svc.oneshot(get(r.proxy.addr, "g2")))
        .await
        .unwrap()
        .expect("idempotent: retried");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(r.attempts(), 2);
    assert_eq!(
        r.server.seen("g2").received,
        1,
        "the first copy never reached it whole"
    );
}

fn unavailable(
    addr: std::net::SocketAddr,
    id: &str,
    times: u32,
    retry_after: &str,
) -> Request<Full<Bytes>> {
    request(Method::GET, addr, id)
        .header("x-fail-times", times.to_string())
        .header("x-retry-after", retry_after)
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn status_503_is_not_retried_by_default() {
    let r = rig().await;
    let svc = r.service(policy(&r.timer), None);
    let resp = tokio::time::timeout(BOUND, svc.oneshot(unavailable(r.proxy.addr, "s1", 1, "7")))
        .await
        .unwrap()
        .expect("a response");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.attempts(), 1);
    assert!(r.timer.sleeps().is_empty());
}

#[tokio::test]
async fn status_503_is_retried_when_opted_in_honouring_retry_after() {
    let r = rig().await;
    let p = policy(&r.timer)
        .with_backoff(Backoff::new().with_initial(Duration::from_millis(50)))
        .with_status_retry(StatusRetry::unavailable());
    let svc = r.service(p, None);
    let resp = tokio::time::timeout(BOUND, svc.oneshot(unavailable(r.proxy.addr, "s2", 2, "3")))
        .await
        .unwrap()
        .expect("a response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(r.attempts(), 3);
    // The wait asked for is the server's Retry-After (above the 50 ms backoff), each time.
    assert_eq!(
        r.timer.sleeps(),
        [Duration::from_secs(3), Duration::from_secs(3)]
    );
}

#[tokio::test]
async fn status_retry_gives_up_when_retry_after_passes_the_time_budget() {
    let r = rig().await;
    let p = policy(&r.timer).with_status_retry(StatusRetry::unavailable());
    let svc = r.service(p, None);
    // 7 s + 7 s passes the default 10 s budget: the second 503 is returned.
    let resp = tokio::time::timeout(BOUND, svc.oneshot(unavailable(r.proxy.addr, "s3", 5, "7")))
        .await
        .unwrap()
        .expect("a response");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.timer.sleeps(), [Duration::from_secs(7)]);
    assert_eq!(r.attempts(), 2);
}

#[tokio::test]
async fn a_503_post_is_not_retried_even_when_opted_in() {
    let r = rig().await;
    let svc = r.service(
        policy(&r.timer).with_status_retry(StatusRetry::unavailable()),
        None,
    );
    let req = request(Method::POST, r.proxy.addr, "s4")
        .header("x-fail-times", "1")
        .body(Full::default())
        .unwrap();
    let resp = tokio::time::timeout(BOUND, svc.oneshot(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.attempts(), 1);
}

#[tokio::test]
async fn gives_up_after_n_attempts() {
    let r = rig().await;
    r.proxy.refuse().await;
    let svc = r.service(policy(&r.timer).with_max_attempts(3), None);
    let err = tokio::time::timeout(BOUND, svc.oneshot(get(r.proxy.addr, "n1")))
        .await
        .unwrap()
        .expect_err("nothing listens");
    assert_eq!(
        err.kind(),
        RetryErrorKind::GaveUp(GiveUpReason::Attempts),
        "{err}"
    );
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.class(), Some(redial_tower::NetError::Refused));
    assert_eq!(r.attempts(), 3);
    assert_eq!(r.timer.sleeps().len(), 2);
}

#[tokio::test]
async fn gives_up_when_the_time_budget_is_spent() {
    let r = rig().await;
    r.proxy.refuse().await;
    let p = policy(&r.timer)
        .with_backoff(
            Backoff::new()
                .with_initial(Duration::from_secs(1))
                .with_multiplier(1.0)
                .with_jitter(Jitter::None),
        )
        .with_give_up(redial_tower::GiveUp {
            max_failures: Some(100),
            max_elapsed: Some(Duration::from_millis(2500)),
            when: redial_tower::GiveUpWhen::Either,
        });
    let err = r
        .service(p, None)
        .oneshot(get(r.proxy.addr, "n2"))
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), RetryErrorKind::GaveUp(GiveUpReason::TimeBudget));
    // Two 1 s waits fit in 2.5 s, a third would not: it is not even started.
    assert_eq!(r.timer.sleeps(), [Duration::from_secs(1); 2]);
    assert_eq!(err.attempts(), 3);
}

#[tokio::test]
async fn the_budget_stops_retries_when_exhausted() {
    let r = rig().await;
    r.proxy.refuse().await;
    let bucket = Arc::new(TokenBucket::new(1.0, 0.0).unwrap());
    let p = policy(&r.timer).with_budget(Arc::clone(&bucket) as _);
    let svc = r.service(p, None);
    let err = svc
        .clone()
        .oneshot(get(r.proxy.addr, "b1"))
        .await
        .expect_err("refused");
    assert_eq!(
        err.kind(),
        RetryErrorKind::GaveUp(GiveUpReason::Budget),
        "{err}"
    );
    assert_eq!(err.attempts(), 2, "the one token paid for one retry");
    let err = svc
        .oneshot(get(r.proxy.addr, "b2"))
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), RetryErrorKind::GaveUp(GiveUpReason::Budget));
    assert_eq!(err.attempts(), 1, "an empty budget: not retried at all");
    assert_eq!(r.attempts(), 3);
}

#[tokio::test]
async fn a_streaming_body_is_not_replayed_and_says_so() {
    let server = Server::start().await;
    let proxy = Proxy::start(server.addr).await;
    proxy.refuse().await;
    let timer = TestTimer::new();
    let svc = policy(&timer)
        .layer()
        .unwrap()
        .layer(client::<Replayable<Full<Bytes>>>());
    let req = request(Method::PUT, proxy.addr, "r1")
        .body(Replayable::streaming(Full::new(Bytes::from_static(
            b"stream",
        ))))
        .unwrap();
    let err = svc.clone().oneshot(req).await.expect_err("refused");
    assert_eq!(err.kind(), RetryErrorKind::NotReplayable);
    assert!(err.to_string().contains("cannot be replayed"), "{err}");
    // The same request, buffered, is retried.
    let req = request(Method::PUT, proxy.addr, "r2")
        .body(Replayable::buffered(&b"buffered"[..]))
        .unwrap();
    let err = svc.oneshot(req).await.expect_err("still refused");
    assert_eq!(err.kind(), RetryErrorKind::GaveUp(GiveUpReason::Attempts));
}

#[tokio::test]
async fn errors_that_are_not_network_errors_are_not_retried() {
    let timer = TestTimer::new();
    let svc = policy(&timer)
        .layer()
        .unwrap()
        .layer(client::<Full<Bytes>>());
    // Not an absolute URI: the client refuses it; there is no io::Error in the chain.
    let req = Request::get("/relative").body(Full::default()).unwrap();
    let err = svc.oneshot(req).await.expect_err("bad input");
    assert_eq!(err.kind(), RetryErrorKind::NotRetryable, "{err}");
    assert_eq!(err.class(), None);
    assert!(timer.sleeps().is_empty());
}

#[test]
fn bad_policies_are_typed_errors() {
    use redial_tower::PolicyError;
    assert!(matches!(
        RetryPolicy::new().with_max_attempts(0).layer(),
        Err(PolicyError::GiveUp(_))
    ));
    assert!(matches!(
        RetryPolicy::new()
            .with_backoff(Backoff::new().with_initial(Duration::ZERO))
            .layer(),
        Err(PolicyError::Backoff(_))
    ));
    assert!(matches!(
        RetryPolicy::new()
            .with_give_up(redial_tower::GiveUp::NEVER)
            .layer(),
        Err(PolicyError::GiveUp(_))
    ));
}

#[tokio::test]
async fn secrets_never_reach_traces_or_errors() {
    let (logs, _guard) = support::capture();
    let r = rig().await;
    r.proxy.refuse().await;
    let svc = r.service(policy(&r.timer).with_max_attempts(2), None);
    let secret_get = request(Method::GET, r.proxy.addr, "x1")
        .uri(format!("http://{}/things?token=s3cret", r.proxy.addr))
        .header("authorization", "Bearer s3cret")
        .body(Full::default())
        .unwrap();
    let err = svc.clone().oneshot(secret_get).await.expect_err("refused");
    r.proxy.resume();
    r.proxy.script([Fault::ResetOnResponse]);
    let mut secret_post = post(r.proxy.addr, "x2", None);
    secret_post
        .headers_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    let doubt = svc.oneshot(secret_post).await.expect_err("in doubt");
    let text = logs.text();
    assert!(
        text.contains("retrying")
            && text.contains("attempt=1")
            && text.contains("target=GET http://127.0.0.1")
            && text.contains("error=client error (Connect)"),
        "the retry was traced: {text}"
    );
    assert!(text.contains("in doubt"), "{text}");
    for shown in [
        text,
        err.to_string(),
        format!("{err:?}"),
        doubt.to_string(),
        format!("{doubt:?}"),
    ] {
        assert!(!shown.contains("s3cret"), "a secret leaked: {shown}");
        assert!(!shown.contains("t0p"), "a query leaked: {shown}");
    }
}

#[tokio::test]
async fn collect_body_buffers_within_its_bound_and_refuses_beyond_it() {
    use redial_tower::{CollectBodyLayer, CollectError};
    let r = rig().await;
    r.proxy.script([Fault::ResetOnResponse]);
    let svc = tower::ServiceBuilder::new()
        .layer(CollectBodyLayer::new(16))
        .service(r.service(policy(&r.timer), None));
    // A streaming body, buffered by the layer: the PUT is retried after its reset.
    let req = request(Method::PUT, r.proxy.addr, "c1")
        .body(Replayable::streaming(Full::new(Bytes::from_static(
            b"0123456789",
        ))))
        .unwrap();
    let resp = tokio::time::timeout(BOUND, svc.clone().oneshot(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(r.server.seen("c1").received, 2);
    // Over the bound: a typed error, nothing sent.
    let req = request(Method::PUT, r.proxy.addr, "c2")
        .body(Full::new(Bytes::from_static(b"0123456789abcdefXYZ")))
        .unwrap();
    let err = svc.oneshot(req).await.expect_err("too large");
    assert!(
        matches!(
            err.downcast_ref::<CollectError>(),
            Some(CollectError::TooLarge { max: 16 })
        ),
        "{err}"
    );
    assert_eq!(r.server.seen("c2").received, 0);
}

/// reqwest prints the URL in its errors, query string included: the retry layer's events and
/// errors must not carry it (a token in a query is a credential).
#[tokio::test]
async fn a_reqwest_url_secret_never_reaches_traces_or_errors() {
    let (logs, _guard) = support::capture();
    let r = rig().await;
    r.proxy.refuse().await;
    let layer = policy(&r.timer).with_max_attempts(2).layer().unwrap();
    let inner = reqwest::Client::builder().no_proxy().build().unwrap();
    let svc = layer.layer(inner.clone());
    let url = format!("http://{}/things?token=s3cret", r.proxy.addr);
    let req = inner.get(&url).build().unwrap();
    let err = tokio::time::timeout(BOUND, svc.oneshot(req))
        .await
        .expect("bounded")
        .expect_err("refused");
    let text = logs.text();
    assert!(text.contains("retrying"), "the retry was traced: {text}");
    for shown in [text, err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("s3cret"), "a secret leaked: {shown}");
    }
}
