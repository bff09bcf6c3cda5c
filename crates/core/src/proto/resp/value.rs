//! RESP values, borrowed from the bytes of a reply: for callers that want the tree, and for
//! printing replies the way redis-cli does.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use super::scan::{line_end, parse_i64, HARD_MAX_DEPTH};
use crate::error::FrameError;

/// One RESP2 or RESP3 value. Strings are bytes as on the wire (binary-safe).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// `+OK`
    Simple(&'a [u8]),
    /// `-ERR ...` (or a RESP3 blob error `!`).
    Error(&'a [u8]),
    /// `:42`
    Integer(i64),
    /// `$5\r\nhello`; RESP2's null bulk string is [`Value::Null`].
    Bulk(&'a [u8]),
    /// RESP3 `_`, and RESP2's null bulk string and null array.
    Null,
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,` as sent (`1.5`, `inf`, `nan`).
    Double(&'a [u8]),
    /// RESP3 `(` as sent.
    BigNumber(&'a [u8]),
    /// RESP3 `=`: a format (`txt`, `mkd`) and the text.
    Verbatim {
        /// Three bytes.
        format: &'a [u8],
        /// The text.
        text: &'a [u8],
    },
    /// `*`
    Array(Vec<Value<'a>>),
    /// RESP3 `~`
    Set(Vec<Value<'a>>),
    /// RESP3 `%`
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// RESP3 `>`
    Push(Vec<Value<'a>>),
    /// RESP3 `|`: attributes, and the value they annotate.
    Attributed {
        /// The attributes.
        attributes: Vec<(Value<'a>, Value<'a>)>,
        /// The value.
        value: Box<Value<'a>>,
    },
}

fn malformed(reason: &'static str) -> FrameError {
    FrameError::Malformed { reason }
}

impl<'a> Value<'a> {
    /// Parses the value at the start of `bytes`; returns it and the bytes it used.
    pub fn parse(bytes: &'a [u8]) -> Result<(Value<'a>, usize), FrameError> {
        parse_at(bytes, 0, 0)
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        match self {
            Value::Error(_) => true,
            Value::Attributed { value, .. } => value.is_error(),
            _ => false,
        }
    }

    /// The bytes of a string-like value (simple, bulk, error, verbatim text).
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Simple(b) | Value::Bulk(b) | Value::Error(b) => Some(b),
            Value::Verbatim { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Formats the value as redis-cli prints it (`"hello"`, `(integer) 1`, `(nil)`,
    /// `1) "a"` lines for aggregates).
    pub fn to_cli(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = cli(self, &mut s, 0);
        s
    }
}

fn elements<'a>(
    bytes: &'a [u8],
    mut pos: usize,
    n: usize,
    depth: usize,
) -> Result<(Vec<Value<'a>>, usize), FrameError> {
    // The count was declared by the peer: never trust it for a reservation.
    let mut v = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let (e, next) = parse_at(bytes, pos, depth + 1)?;
        v.push(e);
        pos = next;
    }
    Ok((v, pos))
}

fn pairs<'a>(
    bytes: &'a [u8],
    pos: usize,
    n: usize,
    depth: usize,
) -> Result<(Vec<(Value<'a>, Value<'a>)>, usize), FrameError> {
    let (flat, pos) = elements(bytes, pos, n.saturating_mul(2), depth)?;
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok((out, pos))
}

fn parse_at(bytes: &[u8], pos: usize, depth: usize) -> Result<(Value<'_>, usize), FrameError> {
    if depth > HARD_MAX_DEPTH {
        return Err(FrameError::TooDeep {
            max: HARD_MAX_DEPTH,
        });
    }
    let kind = *bytes.get(pos).ok_or(malformed("RESP value cut short"))?;
    let cr = line_end(bytes, pos + 1)?.ok_or(malformed("RESP value cut short"))?;
    let line = &bytes[pos + 1..cr];
    let after = cr + 2;
    let count = |aggregate: bool| -> Result<Option<usize>, FrameError> {
        let n = parse_i64(line).ok_or(malformed("RESP count is not a number"))?;
        if n == -1 {
            return Ok(None);
        }
        let n = usize::try_from(n).map_err(|_| malformed("negative RESP count"))?;
        // Each element takes at least 3 bytes; a string is no longer than what is left.
        let left = bytes.len().saturating_sub(after);
        if (aggregate && n > left / 3 + 1) || (!aggregate && n > left) {
            return Err(malformed("RESP count beyond the bytes"));
        }
        Ok(Some(n))
    };
    let v = match kind {
        b'+' => (Value::Simple(line), after),
        b'-' => (Value::Error(line), after),
        b':' => (
            Value::Integer(parse_i64(line).ok_or(malformed("RESP integer is not a number"))?),
            after,
        ),
        b'_' => (Value::Null, after),
        b'#' => (Value::Boolean(line == b"t"), after),
        b',' => (Value::Double(line), after),
        b'(' => (Value::BigNumber(line), after),
        b'$' | b'!' | b'=' => {
            let Some(n) = count(false)? else {
                return Ok((Value::Null, after));
            };
            let body = bytes
                .get(after..after + n)
                .ok_or(malformed("RESP bulk string cut short"))?;
            // Its terminator must be there and be CR LF: never claim bytes that are not.
            if bytes.get(after + n..after + n + 2) != Some(b"\r\n") {
                return Err(malformed("RESP bulk string without its CR LF"));
            }
            let v = match kind {
                b'$' => Value::Bulk(body),
                b'!' => Value::Error(body),
                _ if body.len() >= 4 => Value::Verbatim {
                    format: &body[..3],
                    text: &body[4..],
                },
                _ => return Err(malformed("RESP verbatim string without its format")),
            };
            (v, after + n + 2)
        }
        b'*' | b'~' | b'>' => {
            let Some(n) = count(true)? else {
                return Ok((Value::Null, after));
            };
            let (v, next) = elements(bytes, after, n, depth)?;
            let v = match kind {
                b'*' => Value::Array(v),
                b'~' => Value::Set(v),
                _ => Value::Push(v),
            };
            (v, next)
        }
        b'%' | b'|' => {
            let n = count(true)?.ok_or(malformed("RESP null map"))?;
            let (p, next) = pairs(bytes, after, n, depth)?;
            if kind == b'%' {
                (Value::Map(p), next)
            } else {
                let (value, next) = parse_at(bytes, next, depth + 1)?;
                (
                    Value::Attributed {
                        attributes: p,
                        value: Box::new(value),
                    },
                    next,
                )
            }
        }
        _ => return Err(malformed("unknown RESP type byte")),
    };
    Ok(v)
}

/// redis-cli's quoting of a string: printable ASCII as is, the rest escaped.
fn quoted(b: &[u8], out: &mut String) -> fmt::Result {
    out.push('"');
    for &c in b {
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(c as char),
            _ => write!(out, "\\x{c:02x}")?,
        }
    }
    out.push('"');
    Ok(())
}

fn raw(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cli(v: &Value<'_>, out: &mut String, indent: usize) -> fmt::Result {
    match v {
        Value::Simple(b) => out.push_str(&raw(b)),
        Value::Error(b) => write!(out, "(error) {}", raw(b))?,
        Value::Integer(n) => write!(out, "(integer) {n}")?,
        Value::Bulk(b) => quoted(b, out)?,
        Value::Null => out.push_str("(nil)"),
        Value::Boolean(t) => out.push_str(if *t { "(true)" } else { "(false)" }),
        Value::Double(b) => write!(out, "(double) {}", raw(b))?,
        Value::BigNumber(b) => write!(out, "(big number) {}", raw(b))?,
        Value::Verbatim { text, .. } => quoted(text, out)?,
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            if items.is_empty() {
                out.push_str(if matches!(v, Value::Set(_)) {
                    "(empty set)"
                } else {
                    "(empty array)"
                });
            }
            let width = digits(items.len());
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                }
                write!(out, "{:>width$}) ", i + 1)?;
                cli(item, out, indent + width + 2)?;
            }
        }
        Value::Map(pairs) => {
            if pairs.is_empty() {
                out.push_str("(empty hash)");
            }
            let width = digits(pairs.len());
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                }
                write!(out, "{:>width$}# ", i + 1)?;
                cli(k, out, indent + width + 2)?;
                out.push_str(" => ");
                cli(val, out, indent + width + 2)?;
            }
        }
        Value::Attributed { value, .. } => cli(value, out, indent)?,
    }
    Ok(())
}

fn digits(n: usize) -> usize {
    let mut d = 1;
    let mut n = n;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type_and_prints_like_redis_cli() {
        let (v, n) = Value::parse(b"*3\r\n$5\r\n+PONG\r\n:7\r\n$-1\r\nrest").unwrap();
        assert_eq!(n, 24);
        assert_eq!(
            v,
            Value::Array(alloc::vec![
                Value::Bulk(b"+PONG"),
                Value::Integer(7),
                Value::Null
            ])
        );
        assert_eq!(v.to_cli(), "1) \"+PONG\"\n2) (integer) 7\n3) (nil)");
        let (m, _) = Value::parse(b"%1\r\n+a\r\n#t\r\n").unwrap();
        assert_eq!(m.to_cli(), "1# a => (true)");
        let (e, _) = Value::parse(b"!5\r\nERR x\r\n").unwrap();
        assert!(e.is_error());
        let (a, _) = Value::parse(b"|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n").unwrap();
        assert_eq!(a.as_bytes(), None);
        assert_eq!(a.to_cli(), "\"hi\"");
        assert_eq!(Value::Bulk(b"a\r\nb\x00").to_cli(), "\"a\\r\\nb\\x00\"");
    }

    #[test]
    fn lying_counts_are_errors_not_reservations() {
        assert!(Value::parse(b"*999999999999\r\n").is_err());
        assert!(Value::parse(b"$10\r\nabc\r\n").is_err());
    }
}
