//! Arbitrary bytes -> a configuration and a sequence of events (current, old and made-up
//! epochs), commands and time steps, driven through the invariant checker shared with the
//! property tests (`crates/core/tests/common/check.rs`), twice, comparing traces.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/core/tests/common/check.rs"]
mod check;

fuzz_target!(|data: &[u8]| {
    check::run(data);
});
