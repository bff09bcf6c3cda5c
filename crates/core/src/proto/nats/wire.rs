//! The client's side of the wire: publishes, subscriptions and the checks on what the user
//! hands the session (subjects, one `PUB` per message), and the small parsers both
//! directions share.

use alloc::vec::Vec;

use super::malformed;
use crate::error::FrameError;
use crate::proto::{parse_u64, push_decimal};

/// The status code of a NATS header block (`NATS/1.0 503`), if it has one.
pub(super) fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    let rest = line.strip_prefix(b"NATS/1.0")?;
    let code = rest.trim_ascii_start().split(|&b| b == b' ').next()?;
    parse_u64(code).and_then(|c| u16::try_from(c).ok())
}

pub(super) fn valid_subject(s: &[u8], wildcards: bool) -> bool {
    !s.is_empty()
        && s.split(|&b| b == b'.').all(|t| {
            !t.is_empty()
                && t.iter().all(|&b| b > b' ' && b != 0x7f)
                && (wildcards || !t.iter().any(|&b| b == b'*' || b == b'>'))
        })
}

/// `PUB subject [reply] n\r\npayload\r\n` (or `HPUB` with a header block).
pub(super) fn publish_to(
    subject: &str,
    reply: Option<&str>,
    headers: Option<&[u8]>,
    payload: &[u8],
) -> Result<Vec<u8>, FrameError> {
    if !valid_subject(subject.as_bytes(), false) {
        return Err(malformed("not a NATS subject to publish to"));
    }
    if reply.is_some_and(|r| !valid_subject(r.as_bytes(), false)) {
        return Err(malformed("not a NATS reply subject"));
    }
    let head = headers.unwrap_or(&[]);
    let mut out = Vec::with_capacity(subject.len() + head.len() + payload.len() + 48);
    out.extend_from_slice(if headers.is_some() { b"HPUB " } else { b"PUB " });
    out.extend_from_slice(subject.as_bytes());
    if let Some(r) = reply {
        out.push(b' ');
        out.extend_from_slice(r.as_bytes());
    }
    out.push(b' ');
    if headers.is_some() {
        push_decimal(&mut out, head.len() as u64);
        out.push(b' ');
    }
    push_decimal(&mut out, (head.len() + payload.len()) as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(head);
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// A message to publish: `PUB subject payload`. Any bytes are a payload.
pub fn publish(subject: &str, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    publish_to(subject, None, None, payload)
}

/// A message to publish with a reply subject (someone else's inbox).
pub fn publish_with_reply(
    subject: &str,
    reply: &str,
    payload: &[u8],
) -> Result<Vec<u8>, FrameError> {
    publish_to(subject, Some(reply), None, payload)
}

/// A message with headers (`HPUB`): `headers` as `(name, value)` pairs.
pub fn publish_with_headers(
    subject: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> Result<Vec<u8>, FrameError> {
    let mut head = b"NATS/1.0\r\n".to_vec();
    for (k, v) in headers {
        let bad = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n') || s.contains(':');
        if k.is_empty() || bad(k) || v.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(malformed(
                "NATS header with a line break or colon in its name",
            ));
        }
        head.extend_from_slice(k.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    publish_to(subject, None, Some(&head), payload)
}

/// The subscription spec of `subject` (wildcards allowed), optionally in a queue group.
pub fn subscription(subject: &str, queue: Option<&str>) -> Vec<u8> {
    let mut v = subject.as_bytes().to_vec();
    if let Some(q) = queue {
        v.push(b' ');
        v.extend_from_slice(q.as_bytes());
    }
    v
}

/// Splits a checked `PUB`/`HPUB` into (reply subject, declared total, line length).
pub(super) fn parse_pub(msg: &[u8], max_line: usize) -> Result<(&[u8], usize, usize), FrameError> {
    let nl = msg
        .iter()
        .take(max_line + 2)
        .position(|&b| b == b'\n')
        .ok_or(malformed(
            "a NATS message is one PUB or HPUB (use nats::publish)",
        ))?;
    let line = msg[..nl]
        .strip_suffix(b"\r")
        .ok_or(malformed("NATS control line without CR LF"))?;
    let (op, args) = split_op(line);
    let (words, count) = words::<4>(args).ok_or(malformed(
        "a NATS message is one PUB or HPUB (use nats::publish)",
    ))?;
    let (subject, reply, hdr, total) = match (op, count) {
        (b"PUB", 2) => (words[0], &[][..], None, words[1]),
        (b"PUB", 3) => (words[0], words[1], None, words[2]),
        (b"HPUB", 3) => (words[0], &[][..], Some(words[1]), words[2]),
        (b"HPUB", 4) => (words[0], words[1], Some(words[2]), words[3]),
        _ => {
            return Err(malformed(
                "a NATS message is one PUB or HPUB (use nats::publish)",
            ))
        }
    };
    if !valid_subject(subject, false) || (!reply.is_empty() && !valid_subject(reply, false)) {
        return Err(malformed("not a NATS subject to publish to"));
    }
    let total = parse_u64(total)
        .and_then(|t| usize::try_from(t).ok())
        .ok_or(malformed("NATS payload size is not a number"))?;
    if let Some(h) = hdr {
        let h = parse_u64(h).ok_or(malformed("NATS header size is not a number"))?;
        if h > total as u64 {
            return Err(malformed("NATS header size beyond the payload"));
        }
    }
    if msg.len() != nl + 1 + total + 2 || !msg.ends_with(b"\r\n") {
        return Err(malformed(
            "one message must hold exactly one PUB and its payload",
        ));
    }
    Ok((reply, total, nl + 1))
}

/// Up to `N` blank-separated words (without allocating); `None` when there are more.
pub(super) fn words<const N: usize>(args: &[u8]) -> Option<([&[u8]; N], usize)> {
    let mut out = [&[][..]; N];
    let mut n = 0;
    for w in args
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty())
    {
        *out.get_mut(n)? = w;
        n += 1;
    }
    Some((out, n))
}

/// The operation (upper-cased comparison is done by the caller) and its arguments.
pub(super) fn split_op(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => (&line[..i], line[i + 1..].trim_ascii_start()),
        None => (line, &[]),
    }
}
