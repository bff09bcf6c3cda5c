//! The shared scenarios on smol.

#[path = "../../driver/tests/common/mod.rs"]
mod common;

use redial_smol::{block_on, Smol};

macro_rules! on_smol {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            block_on(common::$name(Smol));
        }
    )*};
}

on_smol!(
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

/// The session task on its own thread.
#[test]
fn connector_and_build_on_dedicated_thread() {
    block_on(common::connector_and_build(Smol, |task| {
        std::thread::spawn(move || block_on(task));
    }));
}
