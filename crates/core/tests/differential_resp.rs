//! The RESP grammar against an independent, well-kept parser: the `redis-protocol` crate
//! (the one `fred` is built on), as a differential oracle. It is a dev-dependency only.
//!
//! For generated values with hostile contents (CR LF, `+PONG`, `$5`, NUL inside strings) and
//! for those values with one byte changed, cut short or followed by more bytes, both parsers
//! must agree on the verdict: a complete value of the same length, the same value, or "not all
//! there yet". Where they disagree on a malformed input, the oracle must be the lax one
//! (see `common/oracle.rs`).

#[path = "common/oracle.rs"]
mod oracle;

use oracle::{check, encode, encode_as, opened, oracle, ours, Verdict, V};
use proptest::prelude::*;
use redial_core::proto::resp::Resp;
use redial_core::proto::Protocol;
use redis_protocol::resp3::decode::complete::decode as oracle_resp3;
use redis_protocol::resp3::types::OwnedFrame as F3;

/// Bytes that look like the protocol itself.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"+PONG".to_vec()),
        Just(b"-ERR x".to_vec()),
        Just(b"$5".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"*-1\r\n".to_vec()),
        Just(vec![0u8]),
        prop::collection::vec(any::<u8>(), 0..12),
    ]
}

/// A line's contents: anything but CR and LF.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(b'+'), Just(b'$'), Just(b'-'), Just(b' '), 0x20u8..0x7f],
        0..12,
    )
}

fn value() -> impl Strategy<Value = V> {
    let leaf = prop_oneof![
        line().prop_map(V::Simple),
        line().prop_map(V::Error),
        any::<i64>().prop_map(V::Integer),
        prop::collection::vec(hostile(), 0..3).prop_map(|p| V::Bulk(p.concat())),
        Just(V::Null),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop::collection::vec(inner, 0..5).prop_map(V::Array)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("REDIAL_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1024)
    ))]

    /// A well-formed value: the same value and length on both sides; every proper prefix is
    /// "more" on both sides; bytes after it are not part of it.
    #[test]
    fn well_formed_values_agree_whole_cut_and_followed(v in value(), tail in hostile()) {
        let mut buf = Vec::new();
        encode(&v, &mut buf);
        let whole = Verdict::Value(v.clone(), buf.len());
        prop_assert_eq!(ours(&buf), whole.clone());
        prop_assert_eq!(oracle(&buf), whole.clone());
        for cut in 0..buf.len() {
            prop_assert_eq!(ours(&buf[..cut]), Verdict::More, "cut at {}", cut);
            prop_assert_eq!(oracle(&buf[..cut]), Verdict::More, "cut at {}", cut);
        }
        let mut followed = buf.clone();
        followed.extend_from_slice(&tail);
        prop_assert_eq!(ours(&followed), whole);
    }

    /// One byte changed anywhere in a well-formed value: both parsers reach the same verdict,
    /// or one of the listed, intended disagreements.
    #[test]
    fn one_changed_byte_gets_the_same_verdict(v in value(), at in any::<prop::sample::Index>(), to in any::<u8>()) {
        let mut buf = Vec::new();
        encode(&v, &mut buf);
        let i = at.index(buf.len());
        buf[i] = to;
        check(&buf);
    }

    /// Arbitrary bytes, starting with a RESP2 type byte: the same verdict.
    #[test]
    fn arbitrary_bytes_get_the_same_verdict(
        kind in prop::sample::select(b"+-:$*".to_vec()),
        rest in prop::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b'1'), any::<u8>()], 0..24),
    ) {
        let mut buf = vec![kind];
        buf.extend_from_slice(&rest);
        check(&buf);
    }

    /// RESP3: framing agrees with the oracle's RESP3 decoder on the same values (RESP2 types
    /// are RESP3 types too, with `_` for null), and on RESP3's own types.
    #[test]
    fn resp3_framing_agrees(v in value(), scalar in prop_oneof![
        Just(b"_\r\n".to_vec()),
        Just(b"#t\r\n".to_vec()),
        Just(b"#f\r\n".to_vec()),
        Just(b",1.5\r\n".to_vec()),
        Just(b",inf\r\n".to_vec()),
        Just(b"(3492890328409238509324850943850943825024385\r\n".to_vec()),
        Just(b"=15\r\ntxt:Some string\r\n".to_vec()),
        Just(b"!21\r\nSYNTAX invalid syntax\r\n".to_vec()),
        Just(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\n+PONG\r\n".to_vec()),
        Just(b"~2\r\n:1\r\n:2\r\n".to_vec()),
        Just(b"%1\r\n+k\r\n$2\r\n\r\n\r\n".to_vec()),
        Just(b"|1\r\n+ttl\r\n:3600\r\n+OK\r\n".to_vec()),
    ]) {
        let mut buf = Vec::new();
        encode_as(&v, &mut buf, b"_\r\n");
        for bytes in [buf, scalar] {
            let mut p = opened(Resp::new().resp3());
            let theirs = oracle_resp3(&bytes).expect("the oracle takes it");
            let hello = matches!(theirs, Some((F3::Hello { .. }, _)));
            prop_assert!(!hello, "a reply is never a HELLO");
            let theirs = theirs.map(|(_, n)| n);
            let ours = p.decode(&bytes).expect("we take it").map(|(_, n)| n);
            prop_assert_eq!(ours, theirs, "on {:?}", String::from_utf8_lossy(&bytes));
            for cut in 0..bytes.len() {
                let mut p = opened(Resp::new().resp3());
                prop_assert_eq!(p.decode(&bytes[..cut]).expect("a prefix is no error").map(|(_, n)| n), None);
                prop_assert_eq!(oracle_resp3(&bytes[..cut]).ok().flatten().map(|(_, n)| n), None);
            }
        }
    }
}
