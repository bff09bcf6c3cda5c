//! Codec edge cases found while fuzzing and the properties the `codec` fuzz target checks.

use redial_core::{Codec, Frame, FrameError, LengthCodec, LineCodec, RawCodec};

#[test]
fn a_line_codec_without_a_practical_limit_does_not_overflow() {
    // `max_line + 2` overflowed (a panic in debug builds) for a limit of usize::MAX.
    for max in [usize::MAX, usize::MAX - 1] {
        let mut c = LineCodec::plain().with_max_line(max);
        assert_eq!(c.decode(b"abc"), Ok(None));
        assert_eq!(c.decode(b"abc\r\n"), Ok(Some((Frame::Data(b"abc"), 5))));
    }
}

#[test]
fn heartbeat_lines_decode_as_heartbeats() {
    // A line codec has no grammar beyond lines: its heartbeats are recognised by content.
    let mut c = LineCodec::plain().with_ping(b"PING", b"+PONG");
    assert_eq!(c.decode(b"+PONG\r\nx"), Ok(Some((Frame::Pong, 7))));
    let mut c = LineCodec::plain().with_greeting(Some(b"HELLO there"));
    assert_eq!(c.decode(b"PING\n"), Ok(Some((Frame::Ping, 5))));
    let mut out = Vec::new();
    c.handshake(&mut out);
    assert!(out.starts_with(b"HELLO "));
}

#[test]
fn garbage_never_needs_more_than_one_frame_of_buffer() {
    let mut line = LineCodec::plain().with_max_line(8);
    assert_eq!(line.decode(b"123456789"), Ok(None));
    assert!(matches!(
        line.decode(b"1234567890"),
        Err(FrameError::TooLarge { .. })
    ));
    let mut len = LengthCodec::new(8);
    assert!(matches!(
        len.decode(&[0, 0, 0, 10, 0]),
        Err(FrameError::TooLarge { size: 9, max: 8 })
    ));
    assert!(matches!(
        len.decode(&[0, 0, 0, 0]),
        Err(FrameError::Malformed { .. })
    ));
    assert!(matches!(
        len.decode(&[0, 0, 0, 2, 7, 0]),
        Err(FrameError::Malformed { .. })
    ));
}

#[test]
fn data_frames_round_trip() {
    let mut len = LengthCodec::new(300);
    for n in [0, 1, 255, 300] {
        let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let mut out = Vec::new();
        len.encode(Frame::Data(&data), &mut out).unwrap();
        assert_eq!(len.decode(&out), Ok(Some((Frame::Data(&data), out.len()))));
    }
    let mut out = Vec::new();
    assert!(len.encode(Frame::Data(&[0; 301]), &mut out).is_err());
    assert!(out.is_empty(), "nothing written for a refused frame");
    let mut line = LineCodec::plain();
    assert!(line.encode(Frame::Data(b"a\nb"), &mut out).is_err());
    line.encode(Frame::Data(b"hello"), &mut out).unwrap();
    line.encode(Frame::Ping, &mut out).unwrap();
    assert_eq!(line.decode(&out), Ok(Some((Frame::Data(b"hello"), 7))));
    assert_eq!(line.decode(&out[7..]), Ok(Some((Frame::Ping, 6))));
}

/// `RawCodec`: whatever arrives is data, in chunks of at most `max`, every byte value kept;
/// a message is written as it is; no heartbeat frames exist; a zero chunk size is refused.
#[test]
fn raw_codec_takes_bytes_as_they_come() {
    let mut c = RawCodec::new(4);
    assert_eq!(c.decode(b"").unwrap(), None);
    let input = b"\r\n\x00\xffPING";
    let (f, n) = c.decode(input).unwrap().unwrap();
    assert_eq!((f, n), (Frame::Data(b"\r\n\x00\xff"), 4));
    let (f, n) = c.decode(&input[4..]).unwrap().unwrap();
    assert_eq!((f, n), (Frame::Data(b"PING"), 4));
    let mut out = Vec::new();
    c.encode(Frame::Data(b"a\nb"), &mut out).unwrap();
    c.encode(Frame::Ping, &mut out).unwrap();
    assert_eq!(out, b"a\nb", "no ping bytes");
    assert!(c.encode(Frame::Data(b"12345"), &mut out).is_err());
    assert!(RawCodec::new(0).validate().is_err());
}
