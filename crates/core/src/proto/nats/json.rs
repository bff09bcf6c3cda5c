//! The little JSON NATS needs: escaping strings for `CONNECT`, and walking the top-level
//! fields of `INFO` by the JSON grammar (a server name holding `"max_payload":` is a string,
//! not a field).

use alloc::vec::Vec;

use crate::error::FrameError;

fn malformed() -> FrameError {
    FrameError::Malformed {
        reason: "NATS INFO is not a JSON object",
    }
}

/// Appends `s` as a JSON string.
pub(super) fn push_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let hex = b"0123456789abcdef";
                let n = c as usize;
                out.extend_from_slice(b"\\u00");
                out.push(hex[n >> 4]);
                out.push(hex[n & 15]);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// What the session uses of `INFO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Info {
    pub(super) max_payload: Option<usize>,
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), FrameError> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(malformed())
        }
    }

    /// A string's raw bytes (escapes left as they are).
    fn string(&mut self) -> Result<&'a [u8], FrameError> {
        self.expect(b'"')?;
        let start = self.i;
        while let Some(c) = self.peek() {
            match c {
                b'\\' => self.i += 2,
                b'"' => {
                    let s = &self.b[start..self.i];
                    self.i += 1;
                    return Ok(s);
                }
                _ => self.i += 1,
            }
        }
        Err(malformed())
    }

    /// Skips any value, nesting bounded by `depth`; returns its bytes.
    fn value(&mut self, depth: u8) -> Result<&'a [u8], FrameError> {
        if depth > 16 {
            return Err(malformed());
        }
        self.ws();
        let start = self.i;
        match self.peek().ok_or_else(malformed)? {
            b'"' => {
                self.string()?;
            }
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                } else {
                    loop {
                        if open == b'{' {
                            self.string()?;
                            self.expect(b':')?;
                        }
                        self.value(depth + 1)?;
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(c) if c == close => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(malformed()),
                        }
                    }
                }
            }
            _ => {
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace() {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    return Err(malformed());
                }
            }
        }
        Ok(&self.b[start..self.i])
    }
}

impl Info {
    pub(super) fn parse(json: &[u8]) -> Result<Info, FrameError> {
        let mut c = Cursor { b: json, i: 0 };
        let mut info = Info::default();
        c.expect(b'{')?;
        c.ws();
        if c.peek() == Some(b'}') {
            return Ok(info);
        }
        loop {
            let key = c.string()?;
            c.expect(b':')?;
            let v = c.value(0)?;
            if key == b"max_payload" {
                info.max_payload = crate::proto::parse_u64(v).and_then(|n| usize::try_from(n).ok());
            }
            c.ws();
            match c.peek() {
                Some(b',') => c.i += 1,
                Some(b'}') => return Ok(info),
                _ => return Err(malformed()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_by_the_grammar_not_by_search() {
        let info = br#"{"server_name":"a \"max_payload\": 1","nested":{"max_payload":2},"max_payload":1048576}"#;
        assert_eq!(Info::parse(info).unwrap().max_payload, Some(1 << 20));
        assert_eq!(Info::parse(b"{}").unwrap(), Info::default());
        assert!(Info::parse(b"not json").is_err());
        assert!(Info::parse(br#"{"a":"#).is_err());
        assert!(Info::parse(&[b'['; 100]).is_err());
        let mut out = Vec::new();
        push_string(&mut out, "p\"w\\d\n");
        assert_eq!(out, br#""p\"w\\d\u000a""#);
    }
}
