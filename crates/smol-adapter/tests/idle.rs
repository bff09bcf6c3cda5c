//! Alone in its binary, so no other test's CPU use is counted.
#![cfg(target_os = "linux")]

#[path = "../../driver/tests/common/mod.rs"]
mod common;

#[test]
fn idle_session_uses_no_cpu() {
    redial_smol::block_on(common::idle_session_uses_no_cpu(redial_smol::Smol));
}
