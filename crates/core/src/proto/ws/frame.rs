//! RFC 6455 §5 frames: the header (what the grammar says a frame is), client masking, and
//! the close payload. A header parses or says "not yet"; its declared length is checked
//! against the bound before any of the body is waited for.

use alloc::vec::Vec;

/// A frame's opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: UTF-8 text.
    Text,
    /// 0x2: binary data.
    Binary,
    /// 0x8: the closing handshake.
    Close,
    /// 0x9: a ping.
    Ping,
    /// 0xA: a pong.
    Pong,
}

impl Opcode {
    fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The final fragment of a message.
    pub fin: bool,
    /// The opcode.
    pub opcode: Opcode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// The payload's length as declared.
    pub len: u64,
    /// The header's own length in bytes (2 to 14).
    pub header_len: usize,
}

/// Why a frame breaks the grammar, with the close code that says so (RFC 6455 §7.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// RSV1–3 set (no extension was negotiated): 1002.
    Reserved,
    /// An opcode RFC 6455 does not define: 1002.
    UnknownOpcode,
    /// A control frame with FIN clear: 1002.
    FragmentedControl,
    /// A control frame over 125 bytes: 1002.
    LongControl,
    /// A 64-bit length with its top bit set: 1002.
    BadLength,
}

impl Violation {
    /// What it is, for the typed error.
    pub fn reason(self) -> &'static str {
        match self {
            Violation::Reserved => "WebSocket frame with RSV bits set (no extension negotiated)",
            Violation::UnknownOpcode => "WebSocket frame with a reserved opcode",
            Violation::FragmentedControl => "fragmented WebSocket control frame",
            Violation::LongControl => "WebSocket control frame over 125 bytes",
            Violation::BadLength => "WebSocket frame length with the most significant bit set",
        }
    }
}

/// Parses the header at the start of `buf`: `Ok(None)` until all of it is there.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, Violation> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(Violation::Reserved);
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(Violation::UnknownOpcode)?;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let n = u64::from_be_bytes(a);
            if n >> 63 != 0 {
                return Err(Violation::BadLength);
            }
            (n, 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() {
        if !fin {
            return Err(Violation::FragmentedControl);
        }
        if len > 125 {
            return Err(Violation::LongControl);
        }
    }
    let mask = if masked {
        let Some(b) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([b[0], b[1], b[2], b[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        len,
        header_len: at,
    }))
}

/// Appends one whole frame (FIN set) of `opcode` carrying `payload`, masked with `mask`
/// (a client's frames always are, RFC 6455 §5.3) or unmasked with `None`.
pub fn encode(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) {
    encode_parts(out, opcode, &[payload], mask);
}

/// As [`encode`], the payload given in parts (a close code and its reason).
pub fn encode_parts(out: &mut Vec<u8>, opcode: Opcode, parts: &[&[u8]], mask: Option<[u8; 4]>) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    out.reserve(len + 14);
    out.push(0x80 | opcode.bits());
    if len < 126 {
        out.push(mbit | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(mbit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mbit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let start = out.len() + mask.map_or(0, |_| 4);
    if let Some(m) = mask {
        out.extend_from_slice(&m);
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m, 0);
    }
}

/// XORs `data` with `mask`, `data[0]` being byte `offset` of the payload.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = mask;
    m.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(a) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// Whether a close code may appear on the wire (RFC 6455 §7.4; 1004–1006 and 1015 are
/// reserved, 1016–2999 unassigned, 3000–4999 registered or private).
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_round_trips_at_every_offset() {
        let data: Vec<u8> = (0..37u8).collect();
        let m = [0x12, 0x34, 0x56, 0x78];
        let mut whole = data.clone();
        apply_mask(&mut whole, m, 0);
        for (i, b) in whole.iter().enumerate() {
            assert_eq!(*b, data[i] ^ m[i % 4]);
        }
        for split in 0..data.len() {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(split);
            apply_mask(a, m, 0);
            apply_mask(b, m, split);
            assert_eq!(parts, whole, "split at {split}");
        }
    }

    #[test]
    fn headers_of_every_length_class() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload = alloc::vec![7u8; len];
            let mut out = Vec::new();
            encode(&mut out, Opcode::Binary, &payload, Some([1, 2, 3, 4]));
            let h = parse_header(&out).unwrap().unwrap();
            assert_eq!(h.len, len as u64);
            assert_eq!(h.mask, Some([1, 2, 3, 4]));
            assert_eq!(out.len(), h.header_len + len);
            for cut in 0..h.header_len {
                assert_eq!(parse_header(&out[..cut]), Ok(None), "cut {cut}");
            }
        }
    }

    #[test]
    fn bad_headers() {
        assert_eq!(parse_header(&[0x91, 0]), Err(Violation::Reserved));
        assert_eq!(parse_header(&[0x83, 0]), Err(Violation::UnknownOpcode));
        assert_eq!(parse_header(&[0x0B, 0]), Err(Violation::UnknownOpcode));
        assert_eq!(parse_header(&[0x09, 0]), Err(Violation::FragmentedControl));
        assert_eq!(
            parse_header(&[0x89, 126, 0, 126]),
            Err(Violation::LongControl)
        );
        assert_eq!(
            parse_header(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(Violation::BadLength)
        );
    }
}
