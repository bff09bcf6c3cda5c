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
