//! One fault script, three retry policies: redial-tower's `RetryLayer`, `tower::retry` with a
//! hand-written "retry every error" policy, and `reqwest-retry`'s default strategy. Each
//! cell says what the client reported, how many attempts reached the network and what the
//! server saw.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use tower::{Layer, ServiceExt};

use super::{client, Fault, Hook, Proxy, Server, TestTimer};

/// The fault a scenario scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// Connects refused for the first two attempts, then accepted.
    RefuseTwice,
    /// The request is forwarded whole, the server executes it, the client's connection is
    /// reset before the answer.
    ResetAfterWrite,
    /// The server answers 503 (Retry-After: 1) once.
    Unavailable,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub method: Method,
    pub key: Option<&'static str>,
    pub script: Script,
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "GET, connect refused ×2",
            method: Method::GET,
            key: None,
            script: Script::RefuseTwice,
        },
        Scenario {
            name: "POST, connect refused ×2",
            method: Method::POST,
            key: None,
            script: Script::RefuseTwice,
        },
        Scenario {
            name: "POST, reset after it was written",
            method: Method::POST,
            key: None,
            script: Script::ResetAfterWrite,
        },
        Scenario {
            name: "POST + Idempotency-Key, reset after write",
            method: Method::POST,
            key: Some("k-1"),
            script: Script::ResetAfterWrite,
        },
        Scenario {
            name: "GET, 503 once",
            method: Method::GET,
            key: None,
            script: Script::Unavailable,
        },
        Scenario {
            name: "POST, 503 once",
            method: Method::POST,
            key: None,
            script: Script::Unavailable,
        },
    ]
}

/// The clients compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    Redial,
    RedialStatus,
    RedialReqwest,
    TowerEveryError,
    ReqwestRetry,
}

pub const CONTENDERS: [Contender; 5] = [
    Contender::Redial,
    Contender::RedialStatus,
    Contender::RedialReqwest,
    Contender::TowerEveryError,
    Contender::ReqwestRetry,
];

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::Redial => "redial-tower RetryLayer (defaults)",
            Contender::RedialStatus => "redial-tower, 503/429 opted in",
            Contender::RedialReqwest => "redial-tower over reqwest::Client (defaults)",
            Contender::TowerEveryError => "tower::retry, retry every error (3 attempts)",
            Contender::ReqwestRetry => "reqwest-retry default strategy (3 retries)",
        }
    }
}

/// What one contender did in one scenario.
#[derive(Clone, Debug)]
pub struct Cell {
    pub reported: String,
    pub attempts: u32,
    pub received: u32,
    pub executed: u32,
}

/// `tower::retry` with a policy that retries any error, up to two more times, at once.
#[derive(Clone)]
struct RetryEveryError {
    left: u32,
}

impl<Res, E> tower::retry::Policy<Request<Full<Bytes>>, Res, E> for RetryEveryError {
    type Future = std::future::Ready<()>;
    fn retry(
        &mut self,
        _: &mut Request<Full<Bytes>>,
        result: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        if result.is_err() && self.left > 0 {
            self.left -= 1;
            Some(std::future::ready(()))
        } else {
            None
        }
    }
    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut c = Request::new(req.body().clone());
        *c.method_mut() = req.method().clone();
        *c.uri_mut() = req.uri().clone();
        *c.headers_mut() = req.headers().clone();
        Some(c)
    }
}

/// Calls the hook before each attempt that reaches reqwest (below the retry middleware).
struct HookMiddleware {
    attempts: Arc<AtomicU32>,
    hook: Arc<dyn Fn(u32) + Send + Sync>,
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for HookMiddleware {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        (self.hook)(n);
        next.run(req, extensions).await
    }
}

fn headers(s: &Scenario, id: &str) -> Vec<(&'static str, String)> {
    let mut h = vec![("x-test-id", id.to_owned())];
    if let Some(k) = s.key {
        h.push(("idempotency-key", k.to_owned()));
    }
    if s.script == Script::Unavailable {
        h.push(("x-fail-times", "1".into()));
        h.push(("x-retry-after", "1".into()));
    }
    h
}

fn status_or<E: std::fmt::Display>(r: Result<u16, E>) -> String {
    match r {
        Ok(code) => code.to_string(),
        Err(e) => format!("error: {e}"),
    }
}

/// Runs one scenario against one contender, on a fresh server and proxy.
pub async fn run(s: &Scenario, who: Contender) -> Cell {
    let server = Server::start().await;
    let proxy = Arc::new(Proxy::start(server.addr).await);
    match s.script {
        Script::RefuseTwice => proxy.refuse().await,
        Script::ResetAfterWrite => proxy.script([Fault::ResetOnResponse]),
        Script::Unavailable => {}
    }
    let attempts = Arc::new(AtomicU32::new(0));
    let p = Arc::clone(&proxy);
    let hook = move |n: u32| {
        if n == 3 {
            p.resume();
        }
    };
    let id = "req";
    let url = format!("http://{}/orders", proxy.addr);
    let body = if s.method == Method::POST {
        &b"{\"order\":1}"[..]
    } else {
        b""
    };
    let mut req = Request::builder().method(s.method.clone()).uri(&url);
    for (k, v) in headers(s, id) {
        req = req.header(k, v);
    }
    let req = req.body(Full::new(Bytes::from_static(body))).unwrap();
    let bound = Duration::from_secs(10);
    let reported =
        match who {
            Contender::Redial | Contender::RedialStatus => {
                let timer = TestTimer::new();
                let mut policy = redial_tower::RetryPolicy::new().with_timer(timer);
                if who == Contender::RedialStatus {
                    policy = policy.with_status_retry(redial_tower::StatusRetry::unavailable());
                }
                let layer = policy.layer().unwrap();
                let svc = layer.layer(Hook::new(client(), Arc::clone(&attempts), hook));
                match tokio::time::timeout(bound, svc.oneshot(req))
                    .await
                    .expect("bounded")
                {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(e) => match e.kind() {
                        redial_tower::RetryErrorKind::InDoubt => "in-doubt error (typed)".into(),
                        k => format!("error: {k:?}"),
                    },
                }
            }
            Contender::RedialReqwest => {
                let layer = redial_tower::RetryPolicy::new()
                    .with_timer(TestTimer::new())
                    .layer()
                    .unwrap();
                let inner = reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                let svc = layer.layer(Hook::new(inner.clone(), Arc::clone(&attempts), hook));
                let mut rb = inner.request(s.method.clone(), &url).body(body.to_vec());
                for (k, v) in headers(s, id) {
                    rb = rb.header(k, v);
                }
                let r = tokio::time::timeout(bound, svc.oneshot(rb.build().unwrap()))
                    .await
                    .expect("bounded");
                match r {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(e) if e.is_in_doubt() => "in-doubt error (typed)".into(),
                    Err(e) => format!("error: {:?}", e.kind()),
                }
            }
            Contender::TowerEveryError => {
                let svc = tower::retry::RetryLayer::new(RetryEveryError { left: 2 })
                    .layer(Hook::new(client(), Arc::clone(&attempts), hook));
                let r = tokio::time::timeout(bound, svc.oneshot(req))
                    .await
                    .expect("bounded");
                status_or(r.map(|r| r.status().as_u16()).map_err(|_| "client error"))
            }
            Contender::ReqwestRetry => {
                let policy = retry_policies::policies::ExponentialBackoff::builder()
                    .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
                    .build_with_max_retries(3);
                let inner = reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                let c = reqwest_middleware::ClientBuilder::new(inner)
                    .with(reqwest_retry::RetryTransientMiddleware::new_with_policy(
                        policy,
                    ))
                    .with(HookMiddleware {
                        attempts: Arc::clone(&attempts),
                        hook: Arc::new(hook),
                    })
                    .build();
                let mut rb = c.request(s.method.clone(), &url).body(body.to_vec());
                for (k, v) in headers(s, id) {
                    rb = rb.header(k, v);
                }
                let r = tokio::time::timeout(bound, rb.send())
                    .await
                    .expect("bounded");
                status_or(r.map(|r| r.status().as_u16()).map_err(|_| "request error"))
            }
        };
    let seen = server.seen(id);
    Cell {
        reported,
        attempts: attempts.load(Ordering::SeqCst),
        received: seen.received,
        executed: seen.executed,
    }
}

/// Every scenario against every contender.
pub async fn table() -> Vec<(Scenario, Vec<Cell>)> {
    let mut rows = Vec::new();
    for s in scenarios() {
        let mut cells = Vec::new();
        for who in CONTENDERS {
            cells.push(run(&s, who).await);
        }
        rows.push((s, cells));
    }
    rows
}

/// The table in Markdown: per cell, what the caller got, attempts on the wire, and what the
/// server saw (received / executed; **twice** when it executed the request twice).
pub fn markdown(rows: &[(Scenario, Vec<Cell>)]) -> String {
    let mut out = String::new();
    let _ = write!(out, "| scenario |");
    for who in CONTENDERS {
        let _ = write!(out, " {} |", who.name());
    }
    out.push_str("\n|---|");
    for _ in CONTENDERS {
        out.push_str("---|");
    }
    out.push('\n');
    for (s, cells) in rows {
        let _ = write!(out, "| {} |", s.name);
        for c in cells {
            let twice = if c.executed > 1 {
                " — **executed twice**"
            } else {
                ""
            };
            let _ = write!(
                out,
                " {}; {} attempt{}; server received {}, executed {}{} |",
                c.reported,
                c.attempts,
                if c.attempts == 1 { "" } else { "s" },
                c.received,
                c.executed,
                twice
            );
        }
        out.push('\n');
    }
    out
}
