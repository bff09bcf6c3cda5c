//! Any tokio-util [`Decoder`] + [`Encoder`] as a redial [`Codec`]: framing only, with the
//! heartbeat frames configured beside it.
//!
//! redial's decoder contract is borrowed and restartable: the session hands the bytes not yet
//! consumed (more appended each call) and wants a frame *borrowed from them* and how many
//! bytes it used. tokio-util decoders own a `BytesMut` they consume from. [`TokioCodec`]
//! bridges the two: it keeps that `BytesMut`, feeds it only the bytes it has not seen, and
//! when the decoder yields an item, reports the bytes the decoder consumed and finds the
//! item's bytes inside them (a line without its terminator, a payload after its length
//! header). A decoder whose items are not a copy of some of their frame's bytes (it
//! decompresses, say) cannot be borrowed from: that is a [`FrameError::Malformed`], never a
//! wrong frame. Each new connection starts from a fresh clone of the codec as configured.

use std::marker::PhantomData;

use bytes::{Bytes, BytesMut};
use redial_core::{Codec, Frame, FrameError};
use tokio_util::codec::{Decoder, Encoder};

/// How a data payload becomes the item a tokio-util [`Encoder`] takes.
pub trait FromPayload: Sized {
    /// The item, or why this payload cannot be one.
    fn from_payload(payload: &[u8]) -> Result<Self, FrameError>;
}

impl FromPayload for Bytes {
    fn from_payload(payload: &[u8]) -> Result<Self, FrameError> {
        Ok(Bytes::copy_from_slice(payload))
    }
}

impl FromPayload for BytesMut {
    fn from_payload(payload: &[u8]) -> Result<Self, FrameError> {
        Ok(BytesMut::from(payload))
    }
}

impl FromPayload for Vec<u8> {
    fn from_payload(payload: &[u8]) -> Result<Self, FrameError> {
        Ok(payload.to_vec())
    }
}

impl FromPayload for String {
    fn from_payload(payload: &[u8]) -> Result<Self, FrameError> {
        String::from_utf8(payload.to_vec()).map_err(|_| FrameError::Malformed {
            reason: "payload is not UTF-8, which this codec's items must be",
        })
    }
}

/// A tokio-util codec `C` (encoding items of type `I`) as a redial [`Codec`].
///
/// Heartbeats are configured beside the codec ([`TokioCodec::with_heartbeat`]): data frames
/// equal to the configured pong are our heartbeat's answer, frames equal to the peer's ping
/// are answered. Without them the session has no heartbeat of its own (liveness then rests on
/// TCP keepalive and the read-idle deadline).
#[derive(Debug)]
pub struct TokioCodec<C, I = Bytes> {
    /// The codec as configured: each connection starts from a clone.
    fresh: C,
    codec: C,
    /// What the decoder has been given and not consumed.
    buf: BytesMut,
    /// Bytes of the session's buffer (from its start) already in `buf`.
    fed: usize,
    max_frame: usize,
    ping: Option<Vec<u8>>,
    pong: Option<Vec<u8>>,
    peer_ping: Option<Vec<u8>>,
    pong_reply: Option<Vec<u8>>,
    _item: PhantomData<fn(I)>,
}

impl<C: Clone, I> Clone for TokioCodec<C, I> {
    fn clone(&self) -> Self {
        TokioCodec {
            fresh: self.fresh.clone(),
            codec: self.fresh.clone(),
            buf: BytesMut::new(),
            fed: 0,
            max_frame: self.max_frame,
            ping: self.ping.clone(),
            pong: self.pong.clone(),
            peer_ping: self.peer_ping.clone(),
            pong_reply: self.pong_reply.clone(),
            _item: PhantomData,
        }
    }
}

/// The default of [`TokioCodec::with_max_frame`]: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

impl<C: Clone, I> TokioCodec<C, I> {
    /// Wraps `codec`, without heartbeat, accepting frames up to [`DEFAULT_MAX_FRAME`] bytes.
    pub fn new(codec: C) -> Self {
        TokioCodec {
            fresh: codec.clone(),
            codec,
            buf: BytesMut::new(),
            fed: 0,
            max_frame: DEFAULT_MAX_FRAME,
            ping: None,
            pong: None,
            peer_ping: None,
            pong_reply: None,
            _item: PhantomData,
        }
    }

    /// Sets the largest frame accepted, bytes on the wire (set the codec's own limit too, such
    /// as `LinesCodec::new_with_max_length`: this one is checked while a frame is incomplete).
    pub fn with_max_frame(mut self, max: usize) -> Self {
        self.max_frame = max;
        self
    }

    /// Sets our heartbeat: the data frame we send as PING, and the one that answers it.
    pub fn with_heartbeat(mut self, ping: &[u8], pong: &[u8]) -> Self {
        self.ping = Some(ping.to_vec());
        self.pong = Some(pong.to_vec());
        self
    }

    /// Sets the peer's heartbeat: the data frame it sends as PING, and what we answer.
    pub fn with_peer_heartbeat(mut self, ping: &[u8], reply: &[u8]) -> Self {
        self.peer_ping = Some(ping.to_vec());
        self.pong_reply = Some(reply.to_vec());
        self
    }

    fn reset(&mut self) {
        self.codec = self.fresh.clone();
        self.buf.clear();
        self.fed = 0;
    }
}

/// Where `item`'s bytes are inside `frame`: at its end (less a terminator of up to two
/// bytes), at its start, or, last, anywhere.
#[cfg(feature = "tokio-util")]
fn locate(frame: &[u8], item: &[u8]) -> Option<usize> {
    let (f, n) = (frame.len(), item.len());
    if n > f {
        return None;
    }
    let fits = |at: usize| frame.get(at..at + n) == Some(item);
    (0..=2)
        .filter_map(|k| (f - n).checked_sub(k))
        .chain([0])
        .find(|&at| fits(at))
        .or_else(|| memchr::memmem::find(frame, item))
}

impl<C, I> Codec for TokioCodec<C, I>
where
    C: Decoder + Encoder<I> + Clone,
    C::Item: AsRef<[u8]>,
    <C as Decoder>::Error: std::fmt::Display,
    <C as Encoder<I>>::Error: std::fmt::Display,
    I: FromPayload,
{
    fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, FrameError> {
        if buf.len() < self.fed {
            // Not the buffer we were fed (it cannot shrink between frames): start over.
            self.reset();
        }
        self.buf.extend_from_slice(&buf[self.fed..]);
        self.fed = buf.len();
        let item = match self.codec.decode(&mut self.buf) {
            Ok(Some(item)) => item,
            Ok(None) => {
                if self.buf.len() > self.max_frame {
                    return Err(FrameError::TooLarge {
                        size: self.buf.len(),
                        max: self.max_frame,
                    });
                }
                return Ok(None);
            }
            Err(e) => {
                tracing::debug!(error = %e, "tokio-util decoder failed");
                return Err(FrameError::Malformed {
                    reason: "the tokio-util decoder refused the bytes",
                });
            }
        };
        let used = self.fed - self.buf.len();
        self.fed = self.buf.len();
        let frame = &buf[..used];
        let item = item.as_ref();
        let Some(at) = locate(frame, item) else {
            return Err(FrameError::Malformed {
                reason: "decoded item is not a copy of its frame's bytes",
            });
        };
        let data = &frame[at..at + item.len()];
        let out = if self.pong.as_deref() == Some(data) {
            Frame::Pong
        } else if self.peer_ping.as_deref() == Some(data) {
            Frame::Ping
        } else {
            Frame::Data(data)
        };
        if used == 0 {
            return Err(FrameError::Malformed {
                reason: "the tokio-util decoder yielded an item from zero bytes",
            });
        }
        Ok(Some((out, used)))
    }

    fn encode(&mut self, frame: Frame<'_>, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let payload = match frame {
            Frame::Data(d) => d,
            Frame::Ping => match &self.ping {
                Some(p) => p.as_slice(),
                None => return Ok(()),
            },
            Frame::Pong => match &self.pong_reply {
                Some(p) => p.as_slice(),
                None => return Ok(()),
            },
        };
        let item = I::from_payload(payload)?;
        // The encoder's own state is not per-connection (tokio-util encoders are stateless
        // but for their limits): encoding through the live one is fine.
        let mut dst = BytesMut::new();
        self.codec.encode(item, &mut dst).map_err(|e| {
            tracing::debug!(error = %e, "tokio-util encoder failed");
            FrameError::Malformed {
                reason: "the tokio-util encoder refused the payload",
            }
        })?;
        out.extend_from_slice(&dst);
        Ok(())
    }

    fn handshake(&mut self, _out: &mut Vec<u8>) {
        // Called on every new connection: the decoder starts afresh.
        self.reset();
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn check(&self, payload: &[u8]) -> Result<(), FrameError> {
        if payload.len() > self.max_frame {
            return Err(FrameError::TooLarge {
                size: payload.len(),
                max: self.max_frame,
            });
        }
        I::from_payload(payload).map(drop)
    }

    fn validate(&self) -> Result<(), redial_core::ConfigError> {
        if self.max_frame == 0 {
            return Err(redial_core::ConfigError::Protocol("max_frame is zero"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::{LengthDelimitedCodec, LinesCodec};

    /// Feeds `wire` to `codec` as the session would, `step` bytes at a time.
    fn frames<C: Codec>(
        codec: &mut C,
        wire: &[u8],
        step: usize,
    ) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut got = Vec::new();
        let mut start = 0;
        let mut end = 0;
        while end < wire.len() {
            end = (end + step).min(wire.len());
            while let Some((f, used)) = codec.decode(&wire[start..end])? {
                got.push(match f {
                    Frame::Data(d) => d.to_vec(),
                    Frame::Ping => b"<ping>".to_vec(),
                    Frame::Pong => b"<pong>".to_vec(),
                });
                start += used;
            }
        }
        Ok(got)
    }

    #[test]
    fn lines_split_at_every_byte() {
        let wire = b"hello\r\nPONG\nworld\nPING\n\n";
        for step in 1..=wire.len() {
            let mut c: TokioCodec<LinesCodec, String> = TokioCodec::new(LinesCodec::new())
                .with_heartbeat(b"PING", b"PONG")
                .with_peer_heartbeat(b"PING", b"PONG");
            let got = frames(&mut c, wire, step).unwrap();
            assert_eq!(
                got,
                [&b"hello"[..], b"<pong>", b"world", b"<ping>", b""].map(<[u8]>::to_vec),
                "step {step}"
            );
        }
    }

    #[test]
    fn length_delimited_split_at_every_byte_and_hostile_lengths() {
        let mut enc: TokioCodec<LengthDelimitedCodec> =
            TokioCodec::new(LengthDelimitedCodec::new());
        let mut wire = Vec::new();
        for p in [&b"abc"[..], b"", b"\r\nPING\r\n", b"abcabc"] {
            enc.encode(Frame::Data(p), &mut wire).unwrap();
        }
        for step in 1..=wire.len() {
            let mut c: TokioCodec<LengthDelimitedCodec> =
                TokioCodec::new(LengthDelimitedCodec::new());
            let got = frames(&mut c, &wire, step).unwrap();
            assert_eq!(
                got,
                [&b"abc"[..], b"", b"\r\nPING\r\n", b"abcabc"].map(<[u8]>::to_vec)
            );
        }
        // A 4 GiB header: refused before any body arrives.
        let mut c: TokioCodec<LengthDelimitedCodec> = TokioCodec::new(LengthDelimitedCodec::new());
        assert!(matches!(
            c.decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::Malformed { .. })
        ));
        // Over our own bound while incomplete.
        let mut c: TokioCodec<LinesCodec, String> =
            TokioCodec::new(LinesCodec::new()).with_max_frame(8);
        assert!(matches!(
            c.decode(b"123456789"),
            Err(FrameError::TooLarge { .. })
        ));
        // A new connection forgets a half-read frame.
        let mut c: TokioCodec<LinesCodec, String> = TokioCodec::new(LinesCodec::new());
        assert_eq!(c.decode(b"hal"), Ok(None));
        c.handshake(&mut Vec::new());
        assert_eq!(c.decode(b"new\n"), Ok(Some((Frame::Data(b"new"), 4))));
        // Bad UTF-8 for a String codec is a typed error at enqueue.
        assert!(c.check(b"\xff").is_err());
    }
}
