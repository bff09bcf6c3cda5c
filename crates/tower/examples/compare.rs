//! Prints the comparison table of `docs/TOWER.md`: one fault script (refused connects, a reset
//! after the request was written, a 503) against redial-tower's `RetryLayer`,
//! `tower::retry` with a "retry every error" policy, and `reqwest-retry`'s default strategy.
//! Everything runs on 127.0.0.1: a real hyper server, a fault proxy, real clients.
//!
//! ```text
//! cargo run --example compare
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rows = support::compare::table().await;
    print!("{}", support::compare::markdown(&rows));
}
