//! A real redial session (redial-tokio) over a real loopback socket: tokio-util codecs as
//! its framing, the session as a tower `Service`, its handle as a `Sink`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use redial_tokio::{AckMode, Config, Delivery, Heartbeat, Outcome, RejectReason};
use redial_tower::{HandleSink, SessionError, SessionRequest, SessionService, TokioCodec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::codec::{LengthDelimitedCodec, LinesCodec};
use tower::{Service, ServiceExt};

const BOUND: Duration = Duration::from_secs(10);

/// A line server: `PING` → `PONG`; `hold` is answered only when `release` comes (then both,
/// in order); anything else → `echo:<line>`. Counts data lines.
async fn line_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let lines = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&lines);
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r).lines();
                let mut held = Vec::new();
                while let Ok(Some(line)) = r.next_line().await {
                    let out = match line.as_str() {
                        "PING" => "PONG\r\n".to_owned(),
                        "hold" => {
                            count.fetch_add(1, Ordering::SeqCst);
                            held.push(line);
                            continue;
                        }
                        _ => {
                            count.fetch_add(1, Ordering::SeqCst);
                            let mut out: String =
                                held.drain(..).map(|h| format!("echo:{h}\r\n")).collect();
                            out.push_str(&format!("echo:{line}\r\n"));
                            out
                        }
                    };
                    if w.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, lines)
}

fn config() -> Config {
    Config::default().with_heartbeat(Some(Heartbeat {
        interval: Duration::from_millis(30),
        timeout: Duration::from_secs(2),
        adaptive_floor: None,
    }))
}

fn lines_codec() -> TokioCodec<LinesCodec, String> {
    TokioCodec::new(LinesCodec::new_with_max_length(1024)).with_heartbeat(b"PING", b"PONG")
}

#[tokio::test]
async fn a_tokio_util_lines_codec_frames_a_real_session_with_its_heartbeat() {
    let (addr, _) = line_server().await;
    let (handle, _inbound, _events) = redial_tokio::builder(addr)
        .config(config())
        .codec(lines_codec())
        .acks(AckMode::InOrder)
        .spawn()
        .unwrap();
    let reply = tokio::time::timeout(
        BOUND,
        handle.request(b"hello".to_vec(), Delivery::AtMostOnce),
    )
    .await
    .unwrap()
    .expect("delivered");
    assert_eq!(reply.body, b"echo:hello");
    // The heartbeat configured beside the codec: PING out, PONG recognised (not a reply).
    tokio::time::timeout(BOUND, async {
        while handle.stats().pongs < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("pongs counted");
    let again = handle
        .request(b"again".to_vec(), Delivery::AtMostOnce)
        .await
        .unwrap();
    assert_eq!(
        again.body, b"echo:again",
        "heartbeats never taken for replies"
    );
    handle.close_graceful(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_tokio_util_length_delimited_codec_over_a_real_session() {
    // The server speaks tokio-util's own LengthDelimitedCodec: echo every frame.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((s, _)) = l.accept().await else { return };
        let mut framed = tokio_util::codec::Framed::new(s, LengthDelimitedCodec::new());
        while let Some(Ok(frame)) = framed.next().await {
            if framed.send(frame.freeze()).await.is_err() {
                return;
            }
        }
    });
    let (handle, _i, _e) = redial_tokio::builder(addr)
        .config(Config::default().with_heartbeat(None))
        .codec(TokioCodec::<LengthDelimitedCodec>::new(
            LengthDelimitedCodec::new(),
        ))
        .acks(AckMode::InOrder)
        .spawn()
        .unwrap();
    for payload in [&b"bin\0ary\r\n"[..], b"", &[7u8; 3000]] {
        let reply = tokio::time::timeout(
            BOUND,
            handle.request(payload.to_vec(), Delivery::AtMostOnce),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(reply.body, payload);
    }
    handle.close_graceful(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_session_as_a_service_with_backpressure_in_poll_ready() {
    let (addr, _) = line_server().await;
    let (handle, _i, _e) = redial_tokio::builder(addr)
        .config(config())
        .codec(lines_codec())
        .acks(AckMode::InOrder)
        .spawn()
        .unwrap();
    let mut svc = SessionService::new(handle.clone()).with_limit(1);
    let reply = tokio::time::timeout(
        BOUND,
        svc.ready().await.unwrap().call(b"one".to_vec().into()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(reply.body, b"echo:one");

    // One request unanswered: the service is not ready (tower's backpressure, no Rejected).
    let held = svc.ready().await.unwrap().call(b"hold".to_vec().into());
    assert_eq!(svc.in_flight(), 1);
    assert!(
        svc.ready().now_or_never().is_none(),
        "poll_ready must wait for room"
    );
    // Release it (through the handle, which the service does not count).
    let release = handle.request(b"release".to_vec(), Delivery::AtMostOnce);
    let reply = tokio::time::timeout(BOUND, held).await.unwrap().unwrap();
    assert_eq!(reply.body, b"echo:hold");
    assert_eq!(release.await.unwrap().body, b"echo:release");
    // Room again, within a bound.
    tokio::time::timeout(BOUND, svc.ready())
        .await
        .unwrap()
        .unwrap();
    let typed = svc
        .call(SessionRequest::idempotent(&b"typed"[..]))
        .await
        .unwrap();
    assert_eq!(typed.body, b"echo:typed");

    // Bad input: a typed error, the message handed back.
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(vec![0xff, 0xfe].into())
        .await
        .unwrap_err();
    match err {
        SessionError::Undelivered(u) => {
            assert!(matches!(
                u.outcome,
                Outcome::Rejected(RejectReason::Unencodable(_))
            ));
            assert_eq!(u.payload, [0xff, 0xfe]);
        }
        other => panic!("unexpected {other:?}"),
    }
    handle.close_graceful(Duration::from_secs(1)).await;
    // A closed session: poll_ready says so.
    let closed = tokio::time::timeout(BOUND, svc.ready()).await.unwrap();
    assert!(matches!(closed, Err(SessionError::Closed)));
}

#[tokio::test]
async fn the_handle_as_a_sink() {
    let (addr, lines) = line_server().await;
    let (handle, _i, _e) = redial_tokio::builder(addr)
        .config(config())
        .codec(lines_codec())
        .spawn()
        .unwrap();
    let mut sink = HandleSink::new(handle.clone()).with_max_pending(2);
    let mut items = futures::stream::iter((0..20).map(|n| Ok(format!("m{n}").into_bytes())));
    tokio::time::timeout(BOUND, sink.send_all(&mut items))
        .await
        .unwrap()
        .expect("all delivered");
    assert_eq!(sink.pending(), 0, "flushed: every message settled");
    let lines2 = Arc::clone(&lines);
    tokio::time::timeout(BOUND, async move {
        while lines2.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the server read all 20 lines");
    // An undeliverable message: flush reports it, typed, with the message back.
    sink.feed(vec![0xff]).await.unwrap();
    match sink.flush().await {
        Err(SessionError::Undelivered(u)) => assert_eq!(u.payload, [0xff]),
        other => panic!("unexpected {other:?}"),
    }
    handle.close_graceful(Duration::from_secs(1)).await;
    assert!(matches!(
        sink.send(b"late".to_vec()).await,
        Err(SessionError::Closed)
    ));
}

#[tokio::test]
async fn the_session_service_composes_with_the_retry_layer() {
    use tower::Layer;
    let (addr, _) = line_server().await;
    let (handle, _i, _e) = redial_tokio::builder(addr)
        .config(config())
        .codec(lines_codec())
        .acks(AckMode::InOrder)
        .spawn()
        .unwrap();
    // A session's own failures are `Undelivered` (not io errors): the layer passes them on;
    // the session reconnects and replays idempotent messages itself.
    let svc = redial_tower::RetryPolicy::new()
        .layer()
        .unwrap()
        .layer(SessionService::new(handle.clone()));
    let reply = tokio::time::timeout(BOUND, svc.oneshot(SessionRequest::idempotent(&b"x"[..])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.body, b"echo:x");
    handle.close_graceful(Duration::from_secs(1)).await;
}
