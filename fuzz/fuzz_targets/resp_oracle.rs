//! Arbitrary bytes through our RESP2 grammar and the `redis-protocol` crate's parser, as a
//! differential oracle: the same verdict (a value of the same length and contents, or "not all
//! there yet"), except where the oracle is laxer than the grammar (`common/oracle.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/core/tests/common/oracle.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| {
    oracle::check(data);
});
