//! The driver on tokio's virtual clock: attempt times follow the policy exactly.

use std::time::Duration;

use futures::StreamExt;
use redial_tokio::{
    AbandonReason, Backoff, BoxFuture, Config, Delivery, Discover, Endpoint, GiveUp, GiveUpWhen,
    Jitter, NetError, Notification, Outcome, Target,
};

#[tokio::test(start_paused = true)]
async fn attempts_follow_backoff_on_virtual_time() {
    // Discovery that always fails at once: no real I/O, so tokio's auto-advance cannot race
    // a pending socket (with a real refused dial under load, the clock may jump to the
    // connect deadline before the refusal is seen).
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    struct Nowhere;
    impl Discover for Nowhere {
        fn discover(&self) -> BoxFuture<'static, std::io::Result<Vec<Endpoint>>> {
            CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Err(std::io::Error::other("no such service")) })
        }
    }
    let cfg = Config::default()
        .with_backoff(
            Backoff::new()
                .with_initial(Duration::from_secs(10))
                .with_cap(Duration::from_secs(60))
                .with_jitter(Jitter::None),
        )
        .with_give_up(GiveUp {
            max_failures: Some(5),
            max_elapsed: None,
            when: GiveUpWhen::Either,
        });
    let start = tokio::time::Instant::now();
    let (h, _inbound, events) = redial_tokio::builder(Target::discover(Nowhere))
        .config(cfg)
        .spawn()
        .unwrap();
    let r = h.send(b"x".to_vec(), Delivery::AtMostOnce);
    let events: Vec<_> = events.collect().await;
    let u = r.await.expect_err("never connected");
    assert_eq!(u.outcome, Outcome::Abandoned(AbandonReason::GaveUp));
    let failures: Vec<Duration> = events
        .iter()
        .filter(|e| matches!(e.notification, Notification::AttemptFailed { .. }))
        .map(|e| e.at)
        .collect();
    let secs: Vec<u64> = failures.iter().map(Duration::as_secs).collect();
    // 10, 20, 40, 60 (capped) seconds apart, on virtual time.
    assert!(events
        .iter()
        .any(|e| e.detail.as_deref() == Some("no such service")));
    assert!(events.iter().all(|e| !matches!(
        e.notification,
        Notification::AttemptFailed { ref error, addr: Some(_), .. } if *error != NetError::ResolveFailed
    )), "resolution failures name no address: {events:#?}");
    assert!(events
        .iter()
        .any(|e| matches!(e.notification, Notification::GaveUp { failures: 5, .. })));
    assert_eq!(secs, [0, 10, 30, 70, 130], "{events:#?}");
    // Discovery runs afresh on every attempt.
    assert_eq!(CALLS.load(std::sync::atomic::Ordering::SeqCst), 5);
    assert!(start.elapsed() >= Duration::from_secs(130));
}
