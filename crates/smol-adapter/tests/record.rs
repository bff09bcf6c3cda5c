//! Record → replay on smol against real servers (feature `record`): the fresh core takes the
//! identical decisions, and no credential reaches the trace.
#![cfg(feature = "record")]

use std::rc::Rc;

use redial_smol::{Builder, Smol, TcpConnector};

#[path = "../../tokio-adapter/tests/record_scenarios/mod.rs"]
mod record_scenarios;

/// Runs `scenario` on a local executor whose runtime the sessions spawn onto.
fn local<F: std::future::Future>(scenario: impl FnOnce(Smol) -> F) -> F::Output {
    let ex = Rc::new(smol::LocalExecutor::new());
    let rt = Smol::local(&ex);
    smol::block_on(ex.run(scenario(rt)))
}

#[test]
fn redis_session_replays_identically() {
    local(|rt| {
        let r = rt.clone();
        record_scenarios::redis_session_replays_identically(rt, move |a| {
            Builder::new(r.clone(), TcpConnector::default(), a)
        })
    });
}

#[test]
fn nats_session_replays_identically() {
    local(|rt| {
        let r = rt.clone();
        record_scenarios::nats_session_replays_identically(rt, move |a| {
            Builder::new(r.clone(), TcpConnector::default(), a)
        })
    });
}
