//! The opening handshake (RFC 6455 §4.1): our HTTP/1.1 Upgrade request, and the server's
//! answer, read by HTTP's grammar (a status line, header lines, a blank line) and bounded
//! before it is buffered. What the answer means (accepted, retried, refused for good) is
//! decided here from the status and the headers RFC 6455 names, never from a body.

use core::time::Duration;

use crate::error::{FrameError, NetError};

/// Most header lines an answer may carry.
pub(crate) const MAX_HEADERS: usize = 128;
/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What the server's answer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer<'a> {
    /// 101 with every header right.
    Accepted,
    /// Anything else the grammar allows: the attempt fails with this class.
    Refused {
        error: NetError,
        text: &'a [u8],
        retry_after: Option<Duration>,
    },
}

fn malformed(reason: &'static str) -> FrameError {
    FrameError::Malformed { reason }
}

/// Where the answer's head ends (just past its blank line), scanning from `from` (how far an
/// earlier call got): `Ok(None)` while it is incomplete and within `max` bytes.
pub(crate) fn head_end(buf: &[u8], from: usize, max: usize) -> Result<Option<usize>, FrameError> {
    let start = from.saturating_sub(3);
    let window = &buf[..buf.len().min(max)];
    if let Some(i) = window
        .get(start..)
        .and_then(|w| w.windows(4).position(|w| w == b"\r\n\r\n"))
    {
        return Ok(Some(start + i + 4));
    }
    if buf.len() >= max {
        return Err(FrameError::TooLarge {
            size: buf.len(),
            max,
        });
    }
    Ok(None)
}

/// One `name: value` header line.
fn split_header(line: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(malformed("HTTP header line without a colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(malformed("HTTP header name is not a token"));
    }
    if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(malformed("HTTP header value with a control byte"));
    }
    Ok((name, value.trim_ascii()))
}

/// HTTP token characters (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The parts of a head: the status, the status line, and the header lines.
pub(crate) struct Head<'a> {
    pub(crate) status: u16,
    pub(crate) status_line: &'a [u8],
    headers: &'a [u8],
}

impl<'a> Head<'a> {
    /// Parses a complete head (ending in its blank line).
    pub(crate) fn parse(head: &'a [u8]) -> Result<Head<'a>, FrameError> {
        let body = &head[..head.len() - 4];
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(body.len());
        let status_line = &body[..eol];
        let headers = body.get(eol + 2..).unwrap_or(&[]);
        let rest = status_line
            .strip_prefix(b"HTTP/1.1 ")
            .ok_or(malformed("the answer to the Upgrade is not HTTP/1.1"))?;
        let code = rest
            .get(..3)
            .ok_or(malformed("HTTP status line too short"))?;
        if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
            return Err(malformed("HTTP status is not three digits"));
        }
        let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        if !(100..=599).contains(&status) {
            return Err(malformed("HTTP status out of range"));
        }
        let h = Head {
            status,
            status_line,
            headers,
        };
        let mut n = 0;
        for line in h.lines() {
            if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                return Err(malformed("folded HTTP header line"));
            }
            split_header(line)?;
            n += 1;
            if n > MAX_HEADERS {
                return Err(FrameError::TooMany {
                    what: "HTTP header lines",
                    count: n as u64,
                    max: MAX_HEADERS as u64,
                });
            }
        }
        Ok(h)
    }

    fn lines(&self) -> impl Iterator<Item = &'a [u8]> {
        let headers = self.headers;
        let mut rest = headers;
        core::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or(rest.len());
            let line = &rest[..eol];
            rest = rest.get(eol + 2..).unwrap_or(&[]);
            Some(line)
        })
    }

    /// Every value of header `name` (case-insensitive), checked by [`Head::parse`].
    pub(crate) fn values(&self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.lines().filter_map(move |l| match split_header(l) {
            Ok((n, v)) if n.eq_ignore_ascii_case(name) => Some(v),
            _ => None,
        })
    }

    fn one(&self, name: &'a [u8]) -> Result<Option<&'a [u8]>, ()> {
        let mut it = self.values(name);
        let first = it.next();
        if it.next().is_some() {
            return Err(());
        }
        Ok(first)
    }
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn lists(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A `Retry-After` in delay-seconds (an HTTP date is not honoured: the core has no clock of
/// dates), at most [`MAX_RETRY_AFTER`].
fn retry_after(v: &[u8]) -> Option<Duration> {
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let secs = v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn refused(error: NetError, text: &[u8]) -> Answer<'_> {
    Answer::Refused {
        error,
        text,
        retry_after: None,
    }
}

/// What the head means for a connection that sent `accept` as the expected
/// `Sec-WebSocket-Accept` and offered `protocols`.
pub(crate) fn judge<'a>(
    head: &Head<'a>,
    accept: &[u8],
    offered: &[alloc::string::String],
) -> Answer<'a> {
    let line = head.status_line;
    match super::classify_status(head.status) {
        None => {}
        // Overloaded or restarting: try again, when the server says.
        Some(NetError::Refused) => {
            return Answer::Refused {
                error: NetError::Refused,
                text: line,
                retry_after: head
                    .one(b"retry-after")
                    .ok()
                    .flatten()
                    .and_then(retry_after),
            }
        }
        Some(error) => return refused(error, line),
    }
    let ok_upgrade = matches!(head.one(b"upgrade"), Ok(Some(v)) if lists(v, b"websocket"));
    if !ok_upgrade {
        return refused(NetError::Unsupported, b"101 without Upgrade: websocket");
    }
    if !head.values(b"connection").any(|v| lists(v, b"upgrade")) {
        return refused(NetError::Unsupported, b"101 without Connection: Upgrade");
    }
    match head.one(b"sec-websocket-accept") {
        Ok(Some(v)) if v == accept => {}
        _ => return refused(NetError::Unsupported, b"bad Sec-WebSocket-Accept"),
    }
    if head
        .values(b"sec-websocket-extensions")
        .any(|v| !v.is_empty())
    {
        return refused(
            NetError::Unsupported,
            b"server chose an extension not offered",
        );
    }
    match head.one(b"sec-websocket-protocol") {
        Ok(None) => {}
        Ok(Some(p)) if offered.iter().any(|o| o.as_bytes() == p) => {}
        _ => {
            return refused(
                NetError::Unsupported,
                b"server chose a subprotocol not offered",
            )
        }
    }
    Answer::Accepted
}
