//! Round trips through the RESP and NATS grammars with arbitrary bytes: what we encode is read
//! back by the grammar exactly, whatever the bytes look like (`+PONG`, `PING`, CR LF, NUL).

use proptest::prelude::*;
use redial_core::proto::nats::Nats;
use redial_core::proto::resp::{cmd, Value};
use redial_core::proto::{Open, Protocol, Unit};

/// Bytes biased towards what a grammar could mistake for its own.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        &b"+PONG"[..],
        b"PING",
        b"PONG",
        b"\r\n",
        b"\r",
        b"\n",
        b"$5",
        b"-ERR x",
        b"*1",
        b"\0",
        b"MSG a 1 3",
        b"+OK",
        b" ",
    ]);
    prop::collection::vec(
        prop_oneof![
            pieces.prop_map(|p| p.to_vec()),
            prop::collection::vec(any::<u8>(), 0..8)
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A command's arguments come back as an array of the same bulk strings, using every byte.
    #[test]
    fn resp_commands_parse_back_to_their_arguments(
        args in prop::collection::vec(hostile(), 1..6),
        tail in hostile(),
    ) {
        let wire = cmd(&args);
        let mut buf = wire.clone();
        buf.extend_from_slice(&tail);
        let (v, used) = Value::parse(&buf).expect("our own command parses");
        prop_assert_eq!(used, wire.len());
        let Value::Array(items) = v else { panic!("not an array") };
        let got: Vec<&[u8]> = items.iter().map(|i| i.as_bytes().expect("bulk")).collect();
        let want: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(got, want);
    }

    /// A NATS message's payload is taken by its byte count, whatever it holds, split
    /// anywhere.
    #[test]
    fn nats_payloads_are_taken_by_byte_count(payload in hostile(), split in any::<prop::sample::Index>()) {
        let mut n = Nats::new();
        n.open(Open { nonce: 0, unconfirmed: false }).unwrap();
        let _ = n.decode(b"INFO {\"max_payload\":1048576}\r\n").unwrap();
        let _ = n.decode(b"PONG\r\n").unwrap();
        let mut wire = format!("MSG t.x 7 {}\r\n", payload.len()).into_bytes();
        wire.extend_from_slice(&payload);
        wire.extend_from_slice(b"\r\nPONG\r\n");
        let cut = split.index(wire.len() + 1);
        // A prefix never yields a unit of the wrong shape: it waits, or yields the message.
        match n.decode(&wire[..cut]).expect("a prefix is never an error") {
            None => {}
            Some((Unit::Message { body, .. }, used)) => {
                prop_assert_eq!(body, payload.as_slice());
                prop_assert!(used <= cut);
            }
            Some((other, _)) => panic!("{other:?} from a prefix"),
        }
        match n.decode(&wire).expect("whole") {
            Some((Unit::Message { body, .. }, used)) => {
                prop_assert_eq!(body, payload.as_slice());
                prop_assert_eq!(used, wire.len() - 6, "the PONG after it is its own unit");
            }
            other => panic!("{other:?}"),
        }
    }
}
