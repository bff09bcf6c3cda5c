//! The shared scenarios on tokio.

#[path = "../../driver/tests/common/mod.rs"]
mod common;

use redial_tokio::{block_on, Tokio};

macro_rules! on_tokio {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            block_on(common::$name(Tokio));
        }
    )*};
}

on_tokio!(
    connect_send_receive,
    events_are_bounded,
    ping_pong_keeps_idle_connection,
    restart_reconnects_and_flushes_in_order,
    gives_up_and_abandons,
    bad_config_fails_before_spawn,
    hostname_is_resolved,
    dropping_handles_closes,
    graceful_close_drains,
    oversized_frame_recovers,
    in_order_acks_and_in_doubt,
    blocked_write_keeps_reading_and_times_out,
);

/// The session task on its own thread with its own current-thread runtime.
#[test]
fn connector_and_build_on_dedicated_thread() {
    block_on(common::connector_and_build(Tokio, |task| {
        std::thread::spawn(move || block_on(task));
    }));
}

/// A runtime shut down under a live session: every receipt still resolves (abandoned), and
/// the handle refuses new messages.
#[test]
fn receipts_resolve_when_the_runtime_is_torn_down() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (handle, receipt) = rt.block_on(async {
        // Nothing listens there: the message waits in the queue.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (h, _i, _e) = redial_tokio::builder(dead)
            .config(common::fast())
            .spawn()
            .unwrap();
        let r = h.send(b"stranded".to_vec(), redial_tokio::Delivery::AtMostOnce);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        (h, r)
    });
    drop(rt);
    // Bounded: a receipt nobody resolves would hang here forever.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(futures::executor::block_on(receipt)));
    let outcome = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the receipt resolves once the runtime is gone")
        .unwrap_err();
    assert_eq!(
        (outcome.outcome, outcome.payload.as_slice()),
        (
            redial_tokio::Outcome::Abandoned(redial_tokio::AbandonReason::Closed),
            &b"stranded"[..]
        ),
        "the real outcome, with the message handed back"
    );
    assert!(handle.is_closed());
    let late = futures::executor::block_on(handle.send(b"late".to_vec(), Default::default()));
    assert_eq!(
        late.unwrap_err().outcome,
        redial_tokio::Outcome::Rejected(redial_tokio::RejectReason::Closed)
    );
}

/// A session task polled by reference (not dropped when it finishes): its streams still end
/// when the session does.
#[test]
fn streams_end_when_the_session_ends_not_when_its_task_is_dropped() {
    use futures::StreamExt;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    block_on(async move {
        let (h, mut inbound, mut events, mut task) = redial_tokio::builder(dead)
            .config(common::fast())
            .build()
            .unwrap();
        let close = h.close(redial_tokio::CloseMode::Immediate);
        futures::future::join(&mut task, close).await;
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while events.next().await.is_some() {}
            inbound.next().await
        })
        .await;
        assert_eq!(ended, Ok(None), "both streams ended");
        drop(task);
    });
}
