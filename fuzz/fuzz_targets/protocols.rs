//! The RESP2, RESP3 and NATS grammars on arbitrary bytes, fed whole and split at an arbitrary
//! byte: no panic, progress on every unit, never more consumed than given, a buffer never left
//! waiting beyond the protocol's largest unit, and the same units whatever the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redial_core::proto::nats::Nats;
use redial_core::proto::resp::{Resp, Value};
use redial_core::proto::{Open, Protocol, Unit};

/// Decodes `buf` to the end or the first error; returns a printable trace of the units and
/// whether it ended in an error.
fn units<P: Protocol>(p: &mut P, buf: &[u8]) -> (Vec<String>, usize, bool) {
    let max = p.max_frame();
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match p.decode(&buf[at..]) {
            Ok(None) => {
                assert!(
                    buf.len() - at <= max.saturating_add(64),
                    "waits for more with {} bytes (max unit {max})",
                    buf.len() - at
                );
                return (out, at, false);
            }
            Ok(Some((unit, used))) => {
                assert!(used > 0, "a unit from zero bytes");
                assert!(used <= buf.len() - at, "used {used} of {}", buf.len() - at);
                out.push(format!("{unit:?}"));
                at += used;
                if matches!(unit, Unit::Closing(..)) {
                    return (out, at, false);
                }
            }
            Err(_) => return (out, at, true),
        }
    }
}

/// The same bytes, with only `split` of them available first: every unit decoded from the
/// prefix is a unit of the whole, in order.
fn split_agrees<P: Protocol + Clone>(fresh: &P, buf: &[u8], split: usize) {
    let (whole, _, whole_err) = units(&mut fresh.clone(), buf);
    let mut p = fresh.clone();
    let split = split.min(buf.len());
    let (first, used, err) = units(&mut p, &buf[..split]);
    if err {
        // An error in the prefix is an error of the whole.
        assert!(whole_err, "an error only when split");
        return;
    }
    let (rest, _, _) = units(&mut p, &buf[used..]);
    let mut both = first;
    both.extend(rest);
    assert_eq!(
        &both[..both.len().min(whole.len())],
        &whole[..both.len().min(whole.len())]
    );
}

fn opened<P: Protocol>(mut p: P) -> P {
    let _ = p.open(Open {
        nonce: 1,
        unconfirmed: false,
    });
    p
}

fuzz_target!(|data: &[u8]| {
    let (sel, buf) = data.split_first().map_or((0, data), |(s, r)| (*s, r));
    let split = usize::from(sel) * buf.len() / 256;
    // A bare RESP value: parsed or refused, never a panic, never beyond the input.
    if let Ok((_v, used)) = Value::parse(buf) {
        assert!(used > 0 && used <= buf.len());
    }
    split_agrees(&opened(Resp::new()), buf, split);
    split_agrees(&opened(Resp::new().resp3()), buf, split);
    // NATS: once the server's INFO is taken (and the handshake answered), and before it.
    let mut nats = opened(Nats::new().with_inbox("_INBOX.f"));
    let _ = nats.decode(b"INFO {\"max_payload\":4096}\r\n");
    let _ = nats.decode(b"PONG\r\n");
    split_agrees(&nats, buf, split);
    split_agrees(&opened(Nats::new()), buf, split);
});
