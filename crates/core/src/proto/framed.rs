//! Framing-only codecs, and [`Framed`], which makes any of them a [`Protocol`].
//!
//! A [`Codec`] only splits bytes into frames ([`Frame::Data`], [`Frame::Ping`],
//! [`Frame::Pong`]) and back: the protocol has no grammar of its own beyond that, so its
//! heartbeat frames are whatever the codec recognises. For a line protocol that means a line's
//! *content*: with [`LineCodec::plain`], a data line `PONG` is our heartbeat's answer, by
//! construction. Protocols with a real grammar (RESP, NATS) have their own modules, where a
//! value `+PONG` is data.
//!
//! Oversized or malformed input is a [`FrameError`] as soon as it can be recognised, so a
//! lying peer can never make the read buffer grow beyond the maximum frame size plus one read.

use alloc::vec::Vec;

use crate::error::{FrameError, NetError};
use crate::proto::{
    ControlBuf, Expect, Handshake, Match, Meta, Open, Protocol, ReplyStatus, Route, Sending, Unit,
};

/// One unit of the wire protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Application data.
    Data(&'a [u8]),
    /// A heartbeat request (from the peer when decoding, from us when encoding).
    Ping,
    /// A heartbeat answer.
    Pong,
}

/// Turns bytes into frames and frames into bytes.
pub trait Codec {
    /// Decodes the first frame at the start of `buf`, returning it with the number of bytes
    /// it used, or `Ok(None)` when more bytes are needed.
    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, FrameError>;

    /// Appends the encoding of `frame` to `out`.
    fn encode(&mut self, frame: Frame<'_>, out: &mut Vec<u8>) -> Result<(), FrameError>;

    /// Bytes to send first on every new connection, before anything queued (a protocol
    /// handshake such as NATS `CONNECT`). Default: nothing.
    fn handshake(&mut self, out: &mut Vec<u8>) {
        let _ = out;
    }

    /// How many frames the peer sends on a new connection before it is usable: answers to
    /// [`Codec::handshake`] (Redis `+OK` to `AUTH`), the peer's own greeting (NATS `INFO`), or
    /// a [`Frame::Pong`] answering a `PING` in the handshake. The adapter reads them before it
    /// reports the dial successful, checks each data frame with [`Codec::handshake_reply`],
    /// and never delivers them as data or counts them as acknowledgements. They are read
    /// within the attempt's connect deadline; a peer `PING` meanwhile is not answered and does
    /// not count. Default: 0.
    fn handshake_replies(&self) -> usize {
        0
    }

    /// Checks one of the [`Codec::handshake_replies`] frames; an error fails the attempt with
    /// it (a permanent error such as [`NetError::PermissionDenied`] stops retrying, as for a
    /// refused password). Default: every reply is accepted.
    fn handshake_reply(&mut self, reply: &[u8]) -> Result<(), NetError> {
        let _ = reply;
        Ok(())
    }

    /// The largest data frame this codec accepts, in bytes.
    fn max_frame(&self) -> usize;

    /// Checks the codec's own settings (called when a session is built). Default: fine.
    fn validate(&self) -> Result<(), crate::error::ConfigError> {
        Ok(())
    }

    /// Whether [`Codec::encode`] would accept `payload` as a [`Frame::Data`], without encoding
    /// it. Default: only the length is checked against [`Codec::max_frame`]; codecs with other
    /// restrictions on data payloads should override it.
    fn check(&self, payload: &[u8]) -> Result<(), FrameError> {
        let max = self.max_frame();
        if payload.len() > max {
            return Err(FrameError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        Ok(())
    }
}

/// Newline-delimited text lines (`\n` or `\r\n`; writes `\r\n`), with configurable heartbeat
/// lines, recognised by content (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineCodec {
    /// The line we send as PING (`None`: the protocol has no client ping).
    pub ping: Option<Vec<u8>>,
    /// The line recognised as the answer to our PING.
    pub pong: Option<Vec<u8>>,
    /// A line from the peer recognised as its PING.
    pub peer_ping: Option<Vec<u8>>,
    /// What we send back to the peer's PING.
    pub pong_reply: Vec<u8>,
    /// Sent first on every connection, as a line (it may hold several lines separated by
    /// `\r\n`, e.g. `AUTH secret\r\nSELECT 2`).
    pub greeting: Option<Vec<u8>>,
    /// Replies the peer sends before the connection is usable (see
    /// [`Codec::handshake_replies`]): lines answering the greeting or the peer's own greeting,
    /// and PONGs (a greeting ending in `PING` is a way to wait until the peer has processed
    /// it).
    pub greeting_replies: usize,
    /// Handshake replies that fail the attempt: a reply starting with a prefix fails with its
    /// error, the first match wins. A permanent error ([`NetError::PermissionDenied`]: a
    /// refused password) stops retrying; [`NetError::Refused`] is retried with backoff.
    pub handshake_errors: Vec<(Vec<u8>, NetError)>,
    /// The longest line accepted, without its terminator.
    pub max_line: usize,
}

impl Default for LineCodec {
    fn default() -> Self {
        LineCodec::plain()
    }
}

impl LineCodec {
    /// `PING` / `PONG` in both directions; lines up to 64 KiB.
    pub fn plain() -> Self {
        LineCodec {
            ping: Some(b"PING".to_vec()),
            pong: Some(b"PONG".to_vec()),
            peer_ping: Some(b"PING".to_vec()),
            pong_reply: b"PONG".to_vec(),
            greeting: None,
            greeting_replies: 0,
            handshake_errors: Vec::new(),
            max_line: 64 << 10,
        }
    }

    /// Sets the longest accepted line.
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line;
        self
    }

    /// Sets the heartbeat lines: what we send, and what answers it.
    pub fn with_ping(mut self, ping: &[u8], pong: &[u8]) -> Self {
        self.ping = Some(ping.to_vec());
        self.pong = Some(pong.to_vec());
        self
    }

    /// Sets the greeting line sent on every new connection.
    pub fn with_greeting(mut self, greeting: Option<&[u8]>) -> Self {
        self.greeting = greeting.map(<[u8]>::to_vec);
        self
    }

    /// Sets how many replies the peer sends before the connection is usable (see
    /// [`LineCodec::greeting_replies`]).
    pub fn with_greeting_replies(mut self, replies: usize) -> Self {
        self.greeting_replies = replies;
        self
    }

    /// Adds a handshake reply prefix that fails the attempt with `error` (checked after the
    /// ones already set; see [`LineCodec::handshake_errors`]).
    pub fn with_handshake_error(mut self, prefix: &[u8], error: NetError) -> Self {
        self.handshake_errors.push((prefix.to_vec(), error));
        self
    }

    fn write_line(line: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
}

impl Codec for LineCodec {
    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, FrameError> {
        // Saturating: a limit of usize::MAX means "no practical limit", not an overflow.
        let window = &buf[..buf.len().min(self.max_line.saturating_add(2))];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            return if buf.len() > self.max_line.saturating_add(1) {
                Err(FrameError::TooLarge {
                    size: buf.len(),
                    max: self.max_line,
                })
            } else {
                Ok(None)
            };
        };
        let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
        if line.len() > self.max_line {
            return Err(FrameError::TooLarge {
                size: line.len(),
                max: self.max_line,
            });
        }
        let frame = if self.pong.as_deref() == Some(line) {
            Frame::Pong
        } else if self.peer_ping.as_deref() == Some(line) {
            Frame::Ping
        } else {
            Frame::Data(line)
        };
        Ok(Some((frame, nl + 1)))
    }

    fn encode(&mut self, frame: Frame<'_>, out: &mut Vec<u8>) -> Result<(), FrameError> {
        match frame {
            Frame::Data(d) => {
                self.check(d)?;
                Self::write_line(d, out);
            }
            Frame::Ping => {
                if let Some(p) = &self.ping {
                    Self::write_line(p, out);
                }
            }
            Frame::Pong => Self::write_line(&self.pong_reply, out),
        }
        Ok(())
    }

    fn handshake(&mut self, out: &mut Vec<u8>) {
        if let Some(g) = &self.greeting {
            Self::write_line(g, out);
        }
    }

    fn handshake_replies(&self) -> usize {
        self.greeting_replies
    }

    fn handshake_reply(&mut self, reply: &[u8]) -> Result<(), NetError> {
        match self
            .handshake_errors
            .iter()
            .find(|(prefix, _)| reply.starts_with(prefix))
        {
            Some((_, error)) => Err(*error),
            None => Ok(()),
        }
    }

    fn max_frame(&self) -> usize {
        self.max_line
    }

    fn validate(&self) -> Result<(), crate::error::ConfigError> {
        use crate::error::ConfigError;
        let lines = [
            (
                self.ping.as_deref(),
                "the ping line is empty or holds a line break",
            ),
            (
                self.pong.as_deref(),
                "the pong line is empty or holds a line break",
            ),
            (
                self.peer_ping.as_deref(),
                "the peer ping line is empty or holds a line break",
            ),
            (
                Some(&self.pong_reply[..]),
                "the pong reply is empty or holds a line break",
            ),
        ];
        for (line, problem) in lines {
            if line.is_some_and(|l| l.is_empty() || l.iter().any(|&b| b == b'\r' || b == b'\n')) {
                return Err(ConfigError::Protocol(problem));
            }
        }
        if self.max_line == 0 {
            return Err(ConfigError::Protocol("max_line is zero"));
        }
        Ok(())
    }

    fn check(&self, payload: &[u8]) -> Result<(), FrameError> {
        if payload.len() > self.max_line {
            return Err(FrameError::TooLarge {
                size: payload.len(),
                max: self.max_line,
            });
        }
        // '\r' (13) and '\n' (10) are the only bytes below 14 that matter; the cheap range
        // test keeps the scan branch-light and vectorisable.
        if payload
            .iter()
            .any(|&b| b <= b'\r' && (b == b'\n' || b == b'\r'))
        {
            return Err(FrameError::Malformed {
                reason: "line payload contains a line break",
            });
        }
        Ok(())
    }
}

/// No framing at all: whatever bytes arrive are one data frame (up to `max` at a time), and a
/// message is written as it is. For byte streams with no message boundaries (`redial pipe
/// --stdin raw`). It has no heartbeat frames: liveness comes from TCP keepalive,
/// `TCP_USER_TIMEOUT` and the read-idle timeout, and no reply can confirm a message (a message
/// is delivered once written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawCodec {
    /// The most bytes handed out as one frame, and the largest message.
    pub max: usize,
}

impl RawCodec {
    /// Chunks of up to `max` bytes.
    pub const fn new(max: usize) -> Self {
        RawCodec { max }
    }
}

impl Default for RawCodec {
    /// 64 KiB chunks.
    fn default() -> Self {
        RawCodec::new(64 << 10)
    }
}

impl Codec for RawCodec {
    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, FrameError> {
        if buf.is_empty() {
            return Ok(None);
        }
        let n = buf.len().min(self.max.max(1));
        Ok(Some((Frame::Data(&buf[..n]), n)))
    }

    fn encode(&mut self, frame: Frame<'_>, out: &mut Vec<u8>) -> Result<(), FrameError> {
        match frame {
            Frame::Data(p) => {
                self.check(p)?;
                out.extend_from_slice(p);
                Ok(())
            }
            // No heartbeat frames: nothing is written, so the session sends no PING.
            Frame::Ping | Frame::Pong => Ok(()),
        }
    }

    fn max_frame(&self) -> usize {
        self.max
    }

    fn validate(&self) -> Result<(), crate::error::ConfigError> {
        if self.max == 0 {
            return Err(crate::error::ConfigError::Protocol("raw chunks of 0 bytes"));
        }
        Ok(())
    }
}

/// Length-delimited binary frames: a 4-byte big-endian length `N`, then `N` bytes: a type byte
/// (0 data, 1 ping, 2 pong) and the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthCodec {
    /// The largest payload accepted.
    pub max_payload: usize,
}

impl Default for LengthCodec {
    fn default() -> Self {
        LengthCodec {
            max_payload: 1 << 20,
        }
    }
}

impl LengthCodec {
    /// Type byte of a data frame.
    pub const DATA: u8 = 0;
    /// Type byte of a ping frame.
    pub const PING: u8 = 1;
    /// Type byte of a pong frame.
    pub const PONG: u8 = 2;

    /// A codec accepting payloads up to `max_payload` bytes.
    pub const fn new(max_payload: usize) -> Self {
        LengthCodec { max_payload }
    }
}

impl Codec for LengthCodec {
    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, FrameError> {
        let Some(header) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len == 0 {
            return Err(FrameError::Malformed {
                reason: "zero-length frame has no type byte",
            });
        }
        if len - 1 > self.max_payload {
            return Err(FrameError::TooLarge {
                size: len - 1,
                max: self.max_payload,
            });
        }
        let Some(body) = buf.get(4..4 + len) else {
            return Ok(None);
        };
        let frame = match (body[0], body.len()) {
            (Self::DATA, _) => Frame::Data(&body[1..]),
            (Self::PING, 1) => Frame::Ping,
            (Self::PONG, 1) => Frame::Pong,
            (Self::PING | Self::PONG, _) => {
                return Err(FrameError::Malformed {
                    reason: "heartbeat frame with a payload",
                })
            }
            _ => {
                return Err(FrameError::Malformed {
                    reason: "unknown frame type",
                })
            }
        };
        Ok(Some((frame, 4 + len)))
    }

    fn encode(&mut self, frame: Frame<'_>, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let (kind, payload) = match frame {
            Frame::Data(d) => (Self::DATA, d),
            Frame::Ping => (Self::PING, &[][..]),
            Frame::Pong => (Self::PONG, &[][..]),
        };
        if payload.len() > self.max_payload {
            return Err(FrameError::TooLarge {
                size: payload.len(),
                max: self.max_payload,
            });
        }
        // max_payload < u32::MAX is not enforced by the type, so check the header fits.
        let len = u32::try_from(payload.len() + 1).map_err(|_| FrameError::TooLarge {
            size: payload.len(),
            max: u32::MAX as usize - 1,
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(payload);
        Ok(())
    }

    fn max_frame(&self) -> usize {
        self.max_payload
    }

    fn check(&self, payload: &[u8]) -> Result<(), FrameError> {
        if payload.len() > self.max_payload {
            return Err(FrameError::TooLarge {
                size: payload.len(),
                max: self.max_payload,
            });
        }
        if payload.len() >= u32::MAX as usize {
            return Err(FrameError::TooLarge {
                size: payload.len(),
                max: u32::MAX as usize - 1,
            });
        }
        Ok(())
    }
}

/// Whether a framed protocol's peer confirms messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AckMode {
    /// A message is delivered once fully written to the socket. Default.
    #[default]
    None,
    /// Every inbound data frame confirms the oldest written message (one reply per request,
    /// in order); written-but-unconfirmed messages are in doubt when the connection dies.
    InOrder,
}

/// Any [`Codec`] as a [`Protocol`]: data frames are messages (or, with [`AckMode::InOrder`],
/// in-order replies), the codec's PING and PONG frames are the heartbeat, and its handshake
/// ([`Codec::handshake`], [`Codec::handshake_replies`]) opens every connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Framed<C> {
    codec: C,
    acks: AckMode,
    /// Handshake replies still to read on this connection.
    handshake_left: usize,
    control: ControlBuf,
}

impl<C: Codec> Framed<C> {
    /// `codec`, without acknowledgements.
    pub fn new(codec: C) -> Self {
        Framed {
            codec,
            acks: AckMode::None,
            handshake_left: 0,
            control: ControlBuf::default(),
        }
    }

    /// Sets whether the peer confirms messages.
    pub fn with_acks(mut self, acks: AckMode) -> Self {
        self.acks = acks;
        self
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The acknowledgement mode.
    pub fn acks(&self) -> AckMode {
        self.acks
    }
}

impl<C: Codec> From<C> for Framed<C> {
    fn from(codec: C) -> Self {
        Framed::new(codec)
    }
}

impl<C: Codec> Protocol for Framed<C> {
    fn open(&mut self, _open: Open) -> Result<bool, FrameError> {
        self.control.clear();
        self.codec.handshake(self.control.buf());
        self.handshake_left = self.codec.handshake_replies();
        Ok(self.handshake_left > 0)
    }

    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Unit<'a>, usize)>, FrameError> {
        let Some((frame, used)) = self.codec.decode(buf)? else {
            return Ok(None);
        };
        if used == 0 {
            return Err(FrameError::Malformed {
                reason: "codec decoded a frame from zero bytes",
            });
        }
        let unit = if self.handshake_left > 0 {
            let step = match frame {
                Frame::Data(reply) => match self.codec.handshake_reply(reply) {
                    Ok(()) => None,
                    Err(error) => Some(Handshake::Refused {
                        error,
                        text: reply,
                        retry_after: None,
                    }),
                },
                // The answer to a PING in the handshake.
                Frame::Pong => None,
                // Not answered: the connection is not usable yet.
                Frame::Ping => return Ok(Some((Unit::Control, used))),
            };
            Unit::Handshake(step.unwrap_or_else(|| {
                self.handshake_left -= 1;
                if self.handshake_left == 0 {
                    Handshake::Accepted {
                        resumed: false,
                        keepalive: None,
                    }
                } else {
                    Handshake::Progress
                }
            }))
        } else {
            match frame {
                Frame::Data(body) if self.acks == AckMode::InOrder => Unit::Reply {
                    to: Match::Next,
                    body,
                    status: ReplyStatus::Done,
                },
                Frame::Data(body) => Unit::Message {
                    route: Route::None,
                    body,
                    meta: Meta::default(),
                },
                Frame::Ping => {
                    self.codec.encode(Frame::Pong, self.control.buf())?;
                    Unit::Control
                }
                Frame::Pong => Unit::Reply {
                    to: Match::Heartbeat { token: None },
                    body: &[],
                    status: ReplyStatus::Done,
                },
            }
        };
        Ok(Some((unit, used)))
    }

    fn check(&self, msg: &[u8]) -> Result<(), FrameError> {
        self.codec.check(msg)
    }

    fn encode(
        &mut self,
        msg: &[u8],
        _send: Sending,
        out: &mut Vec<u8>,
    ) -> Result<Expect, FrameError> {
        self.codec.encode(Frame::Data(msg), out)?;
        Ok(match self.acks {
            AckMode::None => Expect::Written,
            AckMode::InOrder => Expect::Next,
        })
    }

    fn encode_ping(&mut self, _token: u64, out: &mut Vec<u8>) -> Option<Expect> {
        let before = out.len();
        self.codec.encode(Frame::Ping, out).ok()?;
        (out.len() > before).then_some(Expect::Heartbeat)
    }

    fn control_pending(&self) -> usize {
        self.control.len()
    }

    fn write_control(&mut self, out: &mut Vec<u8>) {
        self.control.drain_into(out);
    }

    fn max_frame(&self) -> usize {
        self.codec.max_frame()
    }

    fn validate(&self) -> Result<(), crate::error::ConfigError> {
        self.codec.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn decode_all<C: Codec>(c: &mut C, mut buf: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut out = Vec::new();
        while let Some((f, n)) = c.decode(buf)? {
            out.push(match f {
                Frame::Data(d) => d.to_vec(),
                Frame::Ping => b"<ping>".to_vec(),
                Frame::Pong => b"<pong>".to_vec(),
            });
            buf = &buf[n..];
        }
        Ok(out)
    }

    #[test]
    fn oversized_line_is_an_error_before_its_end_arrives() {
        let mut c = LineCodec::plain().with_max_line(8);
        assert_eq!(c.decode(b"12345678\r\n").unwrap().unwrap().1, 10);
        assert_eq!(c.decode(b"123456789"), Ok(None));
        assert!(matches!(
            c.decode(b"1234567890"),
            Err(FrameError::TooLarge { max: 8, .. })
        ));
        assert!(matches!(
            c.decode(b"123456789\n"),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(c.encode(Frame::Data(b"a\nb"), &mut Vec::new()).is_err());
        assert!(c.encode(Frame::Data(&[b'x'; 9]), &mut Vec::new()).is_err());
    }

    #[test]
    fn length_frames_round_trip_and_reject_lies() {
        let mut c = LengthCodec::new(16);
        let mut buf = Vec::new();
        for f in [
            Frame::Data(b"hello"),
            Frame::Ping,
            Frame::Pong,
            Frame::Data(b""),
        ] {
            c.encode(f, &mut buf).unwrap();
        }
        let got = decode_all(&mut c, &buf).unwrap();
        assert_eq!(
            got,
            vec![
                b"hello".to_vec(),
                b"<ping>".to_vec(),
                b"<pong>".to_vec(),
                vec![]
            ]
        );
        assert_eq!(c.decode(&buf[..7]), Ok(None));
        assert!(matches!(
            c.decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            c.decode(&[0, 0, 0, 0]),
            Err(FrameError::Malformed { .. })
        ));
        assert!(matches!(
            c.decode(&[0, 0, 0, 1, 9]),
            Err(FrameError::Malformed { .. })
        ));
        assert!(matches!(
            c.decode(&[0, 0, 0, 2, 1, 0]),
            Err(FrameError::Malformed { .. })
        ));
        assert!(c.encode(Frame::Data(&[0; 17]), &mut Vec::new()).is_err());
    }
}
