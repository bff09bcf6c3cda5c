//! The RESP differential oracle, shared by `tests/differential_resp.rs` and the fuzz target
//! `resp_oracle`: our grammar (the session's own decode path) against the `redis-protocol`
//! crate's RESP2 parser, with the only disagreements allowed being those where the oracle is
//! laxer than the grammar.
#![allow(dead_code)]

use redial_core::proto::resp::{Resp, Value};
use redial_core::proto::{Open, Protocol};
use redis_protocol::resp2::decode::decode as oracle_resp2;
use redis_protocol::resp2::types::OwnedFrame as F2;

/// A RESP2 value as both sides see it.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<V>),
}

pub fn encode(v: &V, out: &mut Vec<u8>) {
    encode_as(v, out, b"$-1\r\n");
}

/// `null`: RESP2's null bulk string, or RESP3's `_`.
pub fn encode_as(v: &V, out: &mut Vec<u8>, null: &[u8]) {
    match v {
        V::Simple(s) => {
            out.push(b'+');
            out.extend_from_slice(s);
            out.extend_from_slice(b"\r\n");
        }
        V::Error(s) => {
            out.push(b'-');
            out.extend_from_slice(s);
            out.extend_from_slice(b"\r\n");
        }
        V::Integer(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        V::Bulk(b) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        V::Null => out.extend_from_slice(null),
        V::Array(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for i in items {
                encode_as(i, out, null);
            }
        }
    }
}

pub fn ours_value(v: &Value<'_>) -> Option<V> {
    Some(match v {
        Value::Simple(s) => V::Simple(s.to_vec()),
        Value::Error(s) => V::Error(s.to_vec()),
        Value::Integer(n) => V::Integer(*n),
        Value::Bulk(b) => V::Bulk(b.to_vec()),
        Value::Null => V::Null,
        Value::Array(items) => V::Array(items.iter().map(ours_value).collect::<Option<_>>()?),
        _ => return None,
    })
}

pub fn oracle_value(f: &F2) -> V {
    match f {
        F2::SimpleString(s) => V::Simple(s.clone()),
        F2::Error(s) => V::Error(s.as_bytes().to_vec()),
        F2::Integer(n) => V::Integer(*n),
        F2::BulkString(b) => V::Bulk(b.clone()),
        F2::Null => V::Null,
        F2::Array(items) => V::Array(items.iter().map(oracle_value).collect()),
    }
}

/// A verdict on the bytes at the start of a buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// A complete value of this many bytes.
    Value(V, usize),
    /// Not all there yet.
    More,
    /// Not RESP.
    Refused,
}

pub fn opened(p: Resp) -> Resp {
    let mut p = p;
    let _ = p.open(Open {
        nonce: 1,
        unconfirmed: false,
    });
    p
}

/// What the session's own path (the resumable scanner behind `Protocol::decode`, then
/// `Value::parse` on the frame it found) makes of `buf`.
pub fn ours(buf: &[u8]) -> Verdict {
    let mut p = opened(Resp::new());
    match p.decode(buf) {
        Ok(None) => Verdict::More,
        Err(_) => Verdict::Refused,
        Ok(Some((_, used))) => {
            let (v, n) = Value::parse(&buf[..used]).expect("a framed value parses");
            assert_eq!(n, used, "the value's length is the frame's");
            match ours_value(&v) {
                Some(v) => Verdict::Value(v, used),
                // A RESP3 type: the RESP2 oracle refuses it, and so do we, here.
                None => Verdict::Refused,
            }
        }
    }
}

pub fn oracle(buf: &[u8]) -> Verdict {
    match oracle_resp2(buf) {
        Ok(None) => Verdict::More,
        Ok(Some((f, n))) => Verdict::Value(oracle_value(&f), n),
        Err(_) => Verdict::Refused,
    }
}

/// Whether a value is one the grammar allows: no CR or LF inside a simple string or error.
pub fn canonical(v: &V) -> bool {
    match v {
        V::Simple(s) | V::Error(s) => !s.iter().any(|&b| b == b'\r' || b == b'\n'),
        V::Array(items) => items.iter().all(canonical),
        _ => true,
    }
}

/// Whether every error text in a value is UTF-8.
pub fn utf8_errors(v: &V) -> bool {
    match v {
        V::Error(s) => std::str::from_utf8(s).is_ok(),
        V::Array(items) => items.iter().all(utf8_errors),
        _ => true,
    }
}

/// Whether the oracle accepted exactly the bytes of a well-formed value.
pub fn oracle_accepts_canonical(buf: &[u8]) -> bool {
    match oracle(buf) {
        Verdict::Value(v, n) => {
            let mut again = Vec::new();
            encode(&v, &mut again);
            canonical(&v) && again == buf[..n]
        }
        _ => false,
    }
}

/// Both parsers must agree, but where the oracle is laxer than the grammar. It accepts
/// bytes no RESP server sends: a `+` sign or a lone CR or LF in a line, a bulk string whose CR LF
/// is missing (it never checks the terminator). There we must refuse, and we may refuse at
/// once what it still waits on, provided no continuation makes it a well-formed value.
pub fn check(buf: &[u8]) {
    let (a, b) = (ours(buf), oracle(buf));
    if a == b {
        return;
    }
    let shown = String::from_utf8_lossy(buf);
    match (&a, &b) {
        // Error text is bytes to us; the oracle holds it as a `String` and refuses the rest.
        (Verdict::Value(v, _), Verdict::Refused) if !utf8_errors(v) => {}
        (Verdict::Refused, Verdict::Value(..)) => assert!(
            !oracle_accepts_canonical(buf),
            "we refuse the well-formed {shown:?}: redis-protocol reads {b:?}"
        ),
        (Verdict::Refused, Verdict::More) => {
            for more in [
                &b"\r\n"[..],
                b"\r\n\r\n",
                b"1\r\n:1\r\n",
                b"\r\n$1\r\nx\r\n",
            ] {
                let longer = [buf, more].concat();
                assert!(
                    !oracle_accepts_canonical(&longer),
                    "we refuse {shown:?} early, but {:?} is well-formed",
                    String::from_utf8_lossy(&longer)
                );
            }
        }
        _ => panic!("disagree on {shown:?}: ours {a:?}, redis-protocol {b:?}"),
    }
}
