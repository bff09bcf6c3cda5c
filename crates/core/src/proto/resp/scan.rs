//! Finding where one RESP value ends, without building it, resumably.
//!
//! The scanner walks element headers and skips bulk bodies by their declared length, keeping
//! a stack of the elements each open aggregate still needs. When the buffer ends mid-value it
//! remembers how far it got, so a 100,000-element reply arriving in 16 KiB reads is scanned
//! once, not once per read. Every declared length and count is checked against its bound
//! before anything waits for the bytes it announces.

use crate::error::FrameError;

/// Aggregates may nest at most this deep, whatever the configuration says.
pub const HARD_MAX_DEPTH: usize = 64;
/// Header lines (`$5`, `*3`) longer than this are not RESP.
const MAX_HEADER_LINE: usize = 32;

/// Bounds of one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a whole value, at most.
    pub max_frame: usize,
    /// Nesting depth, at most (`HARD_MAX_DEPTH` caps it).
    pub max_depth: usize,
    /// Elements in all aggregates of one value, at most.
    pub max_elements: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 64 << 20,
            max_depth: 32,
            max_elements: 4 << 20,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Open {
    /// Elements still needed.
    left: u64,
    /// An attribute: completing it does not complete an element of its parent (the value it
    /// annotates follows).
    attribute: bool,
}

/// Scanning state of the value at the front of the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scanner {
    active: bool,
    pos: usize,
    depth: usize,
    elements: u64,
    /// A top-level attribute just ended: the value it annotates is still to come.
    top_attribute: bool,
    stack: [Open; HARD_MAX_DEPTH],
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            active: false,
            pos: 0,
            depth: 0,
            elements: 0,
            top_attribute: false,
            stack: [Open::default(); HARD_MAX_DEPTH],
        }
    }
}

fn malformed(reason: &'static str) -> FrameError {
    FrameError::Malformed { reason }
}

/// Parses a signed decimal header value.
pub(crate) fn parse_i64(line: &[u8]) -> Option<i64> {
    let (neg, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, line),
    };
    let n = crate::proto::parse_u64(digits)?;
    if neg {
        0i64.checked_sub_unsigned(n)
    } else {
        i64::try_from(n).ok()
    }
}

/// The index of the `\r` ending the line that starts at `from`, if the line is complete.
/// A line holds neither CR nor LF: a bare one is refused, never read as data.
pub(crate) fn line_end(buf: &[u8], from: usize) -> Result<Option<usize>, FrameError> {
    let Some(off) = buf
        .get(from..)
        .and_then(|b| b.iter().position(|&c| c == b'\r' || c == b'\n'))
    else {
        return Ok(None);
    };
    let cr = from + off;
    if buf[cr] == b'\n' {
        return Err(malformed("LF without CR in a RESP line"));
    }
    match buf.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some(cr)),
        Some(_) => Err(malformed("CR without LF in a RESP line")),
    }
}

impl Scanner {
    /// Forgets any partial scan (a new connection).
    pub(crate) fn reset(&mut self) {
        self.active = false;
    }

    /// The length of the complete value at the start of `buf`, or `None` if it is not all
    /// there yet. `buf` must start where the previous call's did (more bytes appended).
    /// `resp3`: RESP3's types are taken; without it, only RESP2's five.
    pub(crate) fn scan(
        &mut self,
        buf: &[u8],
        lim: &Limits,
        resp3: bool,
    ) -> Result<Option<usize>, FrameError> {
        if !self.active {
            *self = Scanner {
                active: true,
                ..Scanner::default()
            };
        }
        let max_depth = lim.max_depth.min(HARD_MAX_DEPTH);
        loop {
            let pos = self.pos;
            let Some(&kind) = buf.get(pos) else {
                return Ok(None);
            };
            // A byte that starts no value of the version spoken is refused at once, not
            // after its line.
            match kind {
                b'+' | b'-' | b':' | b'$' | b'*' => {}
                b'_' | b'#' | b',' | b'(' | b'!' | b'=' | b'~' | b'>' | b'%' | b'|' if resp3 => {}
                b'_' | b'#' | b',' | b'(' | b'!' | b'=' | b'~' | b'>' | b'%' | b'|' => {
                    return Err(malformed("a RESP3 type on a RESP2 connection"))
                }
                b'?' | b';' | b'.' => {
                    return Err(malformed("streamed RESP3 values are not supported"))
                }
                _ => return Err(malformed("unknown RESP type byte")),
            }
            let header = matches!(kind, b'$' | b'!' | b'=' | b'*' | b'~' | b'>' | b'%' | b'|');
            let Some(cr) = line_end(buf, pos + 1)? else {
                if header && buf.len() - pos > MAX_HEADER_LINE + 1 {
                    return Err(malformed("RESP header line too long"));
                }
                if buf.len() > lim.max_frame {
                    return Err(FrameError::TooLarge {
                        size: buf.len(),
                        max: lim.max_frame,
                    });
                }
                return Ok(None);
            };
            let line = &buf[pos + 1..cr];
            let after = cr + 2;
            if header && line.len() > MAX_HEADER_LINE {
                return Err(malformed("RESP header line too long"));
            }
            if after > lim.max_frame {
                return Err(FrameError::TooLarge {
                    size: after,
                    max: lim.max_frame,
                });
            }
            match kind {
                b'+' | b'-' => {}
                b':' => {
                    parse_i64(line).ok_or(malformed("RESP integer is not a number"))?;
                }
                b'_' if line.is_empty() => {}
                b'_' => return Err(malformed("RESP null with a payload")),
                b'#' if line == b"t" || line == b"f" => {}
                b'#' => return Err(malformed("RESP boolean is not t or f")),
                b',' | b'(' if !line.is_empty() => {}
                b',' | b'(' => return Err(malformed("empty RESP number")),
                b'$' | b'!' | b'=' => {
                    let n = parse_i64(line).ok_or(malformed("RESP length is not a number"))?;
                    if !(n == -1 && kind == b'$') {
                        // (-1 is RESP2's null bulk string.)
                        let n =
                            usize::try_from(n).map_err(|_| malformed("negative RESP length"))?;
                        let end = after.saturating_add(n).saturating_add(2);
                        if end > lim.max_frame {
                            return Err(FrameError::TooLarge {
                                size: end,
                                max: lim.max_frame,
                            });
                        }
                        if buf.len() < end {
                            return Ok(None);
                        }
                        if &buf[end - 2..end] != b"\r\n" {
                            return Err(malformed("RESP bulk string not followed by CR LF"));
                        }
                        if kind == b'=' && (n < 4 || buf[after + 3] != b':') {
                            return Err(malformed("RESP verbatim string without its format"));
                        }
                        self.pos = end;
                        self.complete();
                        if self.finished() {
                            return Ok(Some(self.take()));
                        }
                        continue;
                    }
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = parse_i64(line).ok_or(malformed("RESP count is not a number"))?;
                    if !(n == -1 && kind == b'*') {
                        // (-1 is RESP2's null array.)
                        let n = u64::try_from(n).map_err(|_| malformed("negative RESP count"))?;
                        let count = if matches!(kind, b'%' | b'|') {
                            n.saturating_mul(2)
                        } else {
                            n
                        };
                        self.elements = self.elements.saturating_add(count);
                        if self.elements > lim.max_elements {
                            return Err(FrameError::TooMany {
                                what: "elements",
                                count: self.elements,
                                max: lim.max_elements,
                            });
                        }
                        // Every element takes at least 3 bytes (`_\r\n`): a count that
                        // cannot fit the frame bound is a lie, refused before any element
                        // arrives.
                        if count.saturating_mul(3) > lim.max_frame as u64 {
                            return Err(FrameError::TooMany {
                                what: "elements",
                                count,
                                max: lim.max_frame as u64 / 3,
                            });
                        }
                        self.pos = after;
                        if count > 0 {
                            if self.depth >= max_depth {
                                return Err(FrameError::TooDeep { max: max_depth });
                            }
                            self.stack[self.depth] = Open {
                                left: count,
                                attribute: kind == b'|',
                            };
                            self.depth += 1;
                            continue;
                        }
                        if kind == b'|' {
                            // An empty attribute: the value it annotates follows.
                            self.top_attribute = self.depth == 0;
                            continue;
                        }
                    }
                }
                // Refused above, before the line.
                _ => return Err(malformed("unknown RESP type byte")),
            }
            self.pos = after;
            self.complete();
            if self.finished() {
                return Ok(Some(self.take()));
            }
        }
    }

    fn finished(&self) -> bool {
        self.depth == 0 && !self.top_attribute
    }

    fn take(&mut self) -> usize {
        self.active = false;
        self.pos
    }

    /// One element completed: close every aggregate it completes.
    fn complete(&mut self) {
        self.top_attribute = false;
        while self.depth > 0 {
            let top = &mut self.stack[self.depth - 1];
            top.left -= 1;
            if top.left > 0 {
                return;
            }
            let attribute = top.attribute;
            self.depth -= 1;
            if attribute {
                // The attribute is done; the value it annotates is next (and that value is
                // the element of the parent, or the top-level value).
                self.top_attribute = self.depth == 0;
                return;
            }
        }
    }
}
