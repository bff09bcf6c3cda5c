//! Every codec's decoder on arbitrary bytes: no panic, bounded consumption, bounded frames,
//! and data frames that encode back to bytes decoding to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redial_core::{Codec, Frame, FrameError, LengthCodec, LineCodec};

/// Decodes `buf` to the end (or the first error), checking each step; re-encodes every frame
/// and checks it decodes back to itself.
fn exercise<C: Codec + Clone>(codec: &C, buf: &[u8]) {
    let mut dec = codec.clone();
    let max = dec.max_frame();
    let mut rest = buf;
    let mut steps = 0;
    loop {
        match dec.decode(rest) {
            Ok(None) => {
                // Needing more bytes is only allowed while the buffer could still hold one
                // frame: a lying peer must never make the read buffer grow without bound.
                assert!(
                    rest.len() <= max.saturating_add(8),
                    "waits for more with {} bytes",
                    rest.len()
                );
                break;
            }
            Ok(Some((frame, used))) => {
                assert!(used > 0, "progress");
                assert!(used <= rest.len(), "consumed {used} of {}", rest.len());
                if let Frame::Data(d) = frame {
                    assert!(d.len() <= max, "frame above max");
                }
                round_trip(codec, frame);
                rest = &rest[used..];
            }
            Err(FrameError::TooLarge { .. } | FrameError::Malformed { .. }) => break,
            Err(e) => panic!("unexpected error {e:?}"),
        }
        steps += 1;
        assert!(steps <= buf.len(), "more frames than bytes");
    }
}

fn round_trip<C: Codec + Clone>(codec: &C, frame: Frame<'_>) {
    let mut enc = codec.clone();
    let mut out = Vec::new();
    if enc.encode(frame, &mut out).is_err() {
        return;
    }
    let mut dec = codec.clone();
    match dec.decode(&out) {
        Ok(Some((back, used))) => {
            assert_eq!(used, out.len(), "one frame, fully consumed");
            // A line codec may map our PING line to the peer-ping frame etc.; data must
            // come back byte for byte.
            if let Frame::Data(d) = frame {
                assert_eq!(back, Frame::Data(d), "round trip");
            }
        }
        other => panic!("encoded {frame:?} as {out:?}, decoded {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (sel, buf) = data.split_first().map_or((0, data), |(s, r)| (*s, r));
    let small = usize::from(sel >> 4) * 3;
    exercise(&LineCodec::plain(), buf);
    exercise(&LineCodec::plain().with_ping(b"PING", b"+PONG"), buf);
    exercise(&LineCodec::plain().with_max_line(small), buf);
    exercise(&LineCodec::plain().with_max_line(usize::MAX - small), buf);
    exercise(&LengthCodec::default(), buf);
    exercise(&LengthCodec::new(small), buf);
    // Encode-then-decode of arbitrary data frames.
    for codec in [LengthCodec::new(64), LengthCodec::default()] {
        round_trip(&codec, Frame::Data(buf));
    }
    let line: Vec<u8> = buf
        .iter()
        .copied()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    let mut plain = LineCodec::plain();
    let mut out = Vec::new();
    if plain.encode(Frame::Data(&line), &mut out).is_ok() {
        let got = plain.decode(&out).expect("encoded line decodes");
        let (frame, used) = got.expect("a whole line");
        assert_eq!(used, out.len());
        // Data equal to a heartbeat line decodes as that heartbeat; that is the protocol.
        if line != b"PING" && line != b"PONG" {
            assert_eq!(frame, Frame::Data(&line));
        }
    }
});
