//! WebSocket against real peers written by others (Python `websockets`, websocat) on
//! redial-tokio: echoes of hostile and large messages, Pings mid-fragment, dead peers by
//! heartbeat, Close 1012 and 1008, upgrade answers 401/403/503, a server that closes and
//! stops reading. See `ws_peers/mod.rs`.

mod ws_peers;

macro_rules! ws_tests {
    ($($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                <redial_tests::adapters::TokioAdapter as redial_tests::conformance::Adapter>::block_on(
                    ws_peers::$name::<redial_tests::adapters::TokioAdapter>(),
                );
            }
        )*
    };
}

ws_tests!(
    echo_text_hostile_and_a_mebibyte,
    websocat_mirrors_binary,
    websocat_without_pongs_is_declared_dead,
    a_stopped_server_is_declared_dead,
    a_ping_mid_fragment_is_answered,
    close_1012_mid_stream,
    close_1008_gives_up,
    http_401_and_403_give_up_at_once,
    http_503_retried_then_delivered,
    close_then_deaf_ends_within_the_close_deadline,
    a_netns_drop_cut_is_declared_dead,
    nginx_idle_cut_is_kept_away_by_the_heartbeat
);
