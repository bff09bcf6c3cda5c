//! The driver on tokio's virtual clock: attempt times follow the policy exactly.

use std::time::Duration;

use futures::StreamExt;
use redial_tokio::{Backoff, Config, Delivery, GiveUp, GiveUpWhen, Jitter, Notification};

#[tokio::test(start_paused = true)]
async fn attempts_follow_backoff_on_virtual_time() {
    // Nothing listens on this port: every dial is refused at once.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
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
    let (h, _inbound, events) = redial_tokio::builder(addr).config(cfg).spawn().unwrap();
    let r = h.send(b"x".to_vec(), Delivery::AtMostOnce);
    let events: Vec<_> = events.collect().await;
    assert!(r.await.is_err());
    let starts: Vec<Duration> = events
        .iter()
        .filter(|e| matches!(e.notification, Notification::AttemptStarted { .. }))
        .map(|e| e.at)
        .collect();
    let secs: Vec<u64> = starts.iter().map(Duration::as_secs).collect();
    // 10, 20, 40, 60 (capped) seconds apart, on virtual time.
    assert_eq!(secs, [0, 10, 30, 70, 130], "{events:#?}");
    assert!(start.elapsed() >= Duration::from_secs(130));
}
