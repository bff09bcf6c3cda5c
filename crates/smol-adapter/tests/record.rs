//! Record → replay gives the identical action trace (feature `record`).
#![cfg(feature = "record")]

#[path = "../../driver/tests/common/mod.rs"]
mod common;

#[test]
fn record_then_replay_is_identical() {
    redial_smol::block_on(common::record_then_replay_is_identical(redial_smol::Smol));
}
