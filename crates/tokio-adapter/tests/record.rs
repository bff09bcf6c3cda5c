//! Record → replay on tokio against real servers (feature `record`): the fresh core takes the
//! identical decisions, and no credential reaches the trace.
#![cfg(feature = "record")]

mod record_scenarios;

fn local<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, f)
}

#[test]
fn redis_session_replays_identically() {
    local(record_scenarios::redis_session_replays_identically(
        redial_tokio::Tokio,
        redial_tokio::builder,
    ));
}

#[test]
fn nats_session_replays_identically() {
    local(record_scenarios::nats_session_replays_identically(
        redial_tokio::Tokio,
        redial_tokio::builder,
    ));
}
