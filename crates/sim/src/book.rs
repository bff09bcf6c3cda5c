//! Per-session message bookkeeping: what was enqueued, put on the wire, received by the
//! server, and how the core settled it. This is the ground truth the delivery ledger is
//! checked against.

use std::collections::VecDeque;

use redial_core::{Delivery, MsgId, Outcome};

use crate::report::MessageCounts;

const SETTLED: u8 = 1;
const TRANSMITTED: u8 = 2;
const RECEIVED: u8 = 4;
const IDEMPOTENT: u8 = 8;

/// Payload layout: the message's sequence number (little endian) and its delivery class.
pub(crate) fn encode(seq: u32, delivery: Delivery) -> Vec<u8> {
    let mut p = Vec::with_capacity(5);
    p.extend_from_slice(&seq.to_le_bytes());
    p.push(u8::from(delivery == Delivery::Idempotent));
    p
}

/// The sequence number of a payload made by [`encode`].
pub(crate) fn decode(payload: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(payload.get(..4)?.try_into().ok()?))
}

#[derive(Default)]
pub(crate) struct MsgBook {
    flags: Vec<u8>,
    /// Accepted messages not yet settled, by core id (increasing, as the core assigns them).
    outstanding: VecDeque<(MsgId, u32)>,
}

impl MsgBook {
    /// A new message: its sequence number and payload.
    pub(crate) fn next(&mut self, delivery: Delivery) -> (u32, Vec<u8>) {
        let seq = self.flags.len() as u32;
        self.flags.push(if delivery == Delivery::Idempotent {
            IDEMPOTENT
        } else {
            0
        });
        (seq, encode(seq, delivery))
    }

    pub(crate) fn accepted(&mut self, id: MsgId, seq: u32) {
        self.outstanding.push_back((id, seq));
    }

    pub(crate) fn is_idempotent(&self, seq: u32) -> bool {
        self.flags[seq as usize] & IDEMPOTENT != 0
    }

    pub(crate) fn transmitted(&mut self, seq: u32) {
        self.flags[seq as usize] |= TRANSMITTED;
    }

    /// The server got `seq`. Errors when a non-idempotent message arrives twice.
    pub(crate) fn received(&mut self, seq: u32, counts: &mut MessageCounts) -> Result<(), String> {
        let f = &mut self.flags[seq as usize];
        counts.received += 1;
        if *f & RECEIVED != 0 {
            if *f & IDEMPOTENT == 0 {
                return Err(format!("message {seq} (at most once) received twice"));
            }
            counts.duplicates_idempotent += 1;
        }
        *f |= RECEIVED;
        Ok(())
    }

    /// The core settled message `id` (payload returned unless delivered), or refused it at
    /// enqueue (`id` is `None`, `seq` known).
    pub(crate) fn settled(
        &mut self,
        id: Option<MsgId>,
        payload_seq: Option<u32>,
        outcome: Outcome,
        acked_protocol: bool,
        counts: &mut MessageCounts,
    ) -> Result<(), String> {
        let seq = match id {
            Some(id) => {
                let i = self
                    .outstanding
                    .binary_search_by_key(&id, |(i, _)| *i)
                    .map_err(|_| format!("outcome for unknown or already settled {id:?}"))?;
                let (_, seq) = self.outstanding.remove(i).expect("index found above");
                if payload_seq.is_some_and(|s| s != seq) {
                    return Err(format!("{id:?} handed back another message's payload"));
                }
                seq
            }
            None => payload_seq.ok_or("a rejection without its payload")?,
        };
        let f = &mut self.flags[seq as usize];
        if *f & SETTLED != 0 {
            return Err(format!("message {seq} settled twice"));
        }
        *f |= SETTLED;
        let (sent, got) = (*f & TRANSMITTED != 0, *f & RECEIVED != 0);
        match outcome {
            Outcome::Delivered => {
                counts.delivered += 1;
                if acked_protocol && !got {
                    return Err(format!("message {seq} acknowledged but never received"));
                }
                if !sent {
                    return Err(format!("message {seq} delivered but never written"));
                }
            }
            Outcome::InDoubt => {
                counts.in_doubt += 1;
                if got {
                    counts.in_doubt_received += 1;
                }
                if !sent {
                    return Err(format!("message {seq} in doubt but never written"));
                }
            }
            Outcome::Abandoned(_) => {
                counts.abandoned += 1;
                // Abandoned promises "never written", idempotent or not (a replay-pending
                // message that is dropped ends in doubt).
                if sent {
                    return Err(format!("message {seq} abandoned but it was written"));
                }
            }
            Outcome::Rejected(_) => {
                counts.rejected += 1;
                if sent {
                    return Err(format!("message {seq} rejected but written"));
                }
            }
        }
        Ok(())
    }

    /// Messages enqueued so far.
    pub(crate) fn enqueued(&self) -> usize {
        self.flags.len()
    }

    /// Messages never settled.
    pub(crate) fn unsettled(&self) -> usize {
        self.flags.iter().filter(|f| **f & SETTLED == 0).count()
    }
}
