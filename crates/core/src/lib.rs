//! # redial-core
//!
//! The sans-IO heart of redial: a pure, deterministic state machine that keeps one long-lived
//! conversation alive through partitions, dead peers and server restarts. It decides *when*
//! to resolve, dial, ping, write, close and give up, and, through the protocol's grammar,
//! *what* every byte read means: which reply answers which request, what is the heartbeat's
//! answer, what is a message for a subscription. An adapter (redial-tokio, redial-smol, the
//! simulator, or your own) only does the I/O and reports back.
//!
//! The core never reads a clock, never sleeps, never does I/O and never spawns: time is an
//! argument (`now`) of every call, and jitter comes from a generator seeded by the config.
//! The same inputs always give the same outputs.
//!
//! | concern | where |
//! |---|---|
//! | backoff, jitter, cap | [`backoff`] |
//! | the retry budget a fleet shares | [`budget`] |
//! | per-session endpoint order, departures | [`spread`] |
//! | give-up, heartbeat, queue and inbound bounds, validation | [`config`] |
//! | connection epochs | [`epoch`] |
//! | what goes in | [`input`] ([`Input`], [`Session::handle_read`]) |
//! | what comes out | [`output`] ([`Action`], [`Notification`], [`Received`]) |
//! | RTT and the heartbeat timeout | [`heartbeat`] |
//! | delivery classes and outcomes | [`message`] |
//! | protocols: grammar and reply attribution (RESP, NATS, framed codecs) | [`proto`] |
//! | subscriptions | [`subscription`] |
//! | the state machine | [`session`] |
//!
//! ## The run loop
//!
//! Every host is this loop: drain [`Session::poll`] until [`Action::Wait`], perform the
//! actions, feed back what happened. Here it runs against a scripted "network" and a tiny
//! Redis, so the example is complete: the first dial is refused, the second succeeds, one
//! command is written and its reply read.
//!
//! ```
//! use redial_core::proto::resp::{cmd, Resp};
//! use redial_core::{Action, Config, Delivery, Input, Instant, NetError, Received, Session};
//!
//! let addr = redial_core::Addr::Ip("127.0.0.1:6379".parse().unwrap());
//! let mut now = Instant::ZERO;
//! let mut session = Session::new(Config::default(), Resp::new(), now).unwrap();
//! let id = session
//!     .enqueue(now, cmd(["INCR", "visits"]), Delivery::AtMostOnce)
//!     .unwrap();
//!
//! let mut refusals = 1;
//! let mut wire = Vec::new(); // what we wrote
//! let mut reply = None;
//! while reply.is_none() {
//!     // 1. Drain the actions of this round, collecting what the "network" does.
//!     let mut inputs = Vec::new();
//!     let wait = loop {
//!         match session.poll(now) {
//!             Action::Resolve { epoch } => inputs.push((epoch, "resolved")),
//!             Action::Dial { epoch, .. } if refusals > 0 => {
//!                 refusals -= 1;
//!                 inputs.push((epoch, "refused"));
//!             }
//!             Action::Dial { epoch, .. } => inputs.push((epoch, "connected")),
//!             Action::Transmit { epoch } => {
//!                 // The one encode path: the session writes into our buffer.
//!                 session.encode_transmit(&mut wire);
//!                 inputs.push((epoch, "written"));
//!             }
//!             Action::Notify(n) => println!("{n:?}"),
//!             Action::Wait { until } => break until,
//!             _ => {}
//!         }
//!     };
//!     // 2. Feed back what happened, tagged with its epoch; bytes read go to `handle_read`.
//!     for (epoch, what) in &inputs {
//!         let input = match *what {
//!             "resolved" => Input::Resolved { epoch: *epoch, addrs: &[addr] },
//!             "refused" => Input::DialFailed { epoch: *epoch, error: NetError::Refused },
//!             "connected" => Input::DialOk { epoch: *epoch },
//!             _ => Input::Written { epoch: *epoch },
//!         };
//!         let _ = session.handle_input(now, input);
//!         if *what == "written" {
//!             assert_eq!(wire, b"*2\r\n$4\r\nINCR\r\n$6\r\nvisits\r\n");
//!             // The server answers; a reply is credited to the request it answers.
//!             let bytes = b":1\r\n";
//!             let used = session.handle_read(now, *epoch, bytes, bytes.len(), &mut |r| {
//!                 if let Received::Reply { id, body, .. } = r {
//!                     reply = Some((id, body.to_vec()));
//!                 }
//!             });
//!             assert_eq!(used, bytes.len());
//!             session.inbound_taken(now, 1, 4); // the user took it
//!         }
//!     }
//!     // 3. Nothing happened: sleep until the deadline (virtual time here: jump to it).
//!     if inputs.is_empty() {
//!         now = wait.expect("a live session always has a deadline");
//!     }
//! }
//! assert_eq!(reply, Some((id, b":1\r\n".to_vec())));
//! ```
//!
//! ## Guarantees (property-tested and fuzzed)
//! 1. No input sequence panics.
//! 2. At most one current connection; events of stale epochs never change it.
//! 3. No dial before its backoff deadline; every delay is within `[0, cap]`; nothing after
//!    give-up or close.
//! 4. Every message ends in exactly one [`Outcome`]; none is written twice unless idempotent;
//!    order holds; every reply is credited to the request it answers.
//! 5. A peer silent for longer than heartbeat interval + timeout is declared dead by then.
//! 6. Same seed and inputs, same outputs.
//! 7. Steady-state stepping allocates nothing (beyond the user's own payloads).
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `std` | yes | conveniences on std: `NetError::from_io` classifies `std::io::Error`s |
//! | `resp` | yes | RESP2 and RESP3, framed by their grammar (`proto::resp`): Redis, Valkey, KeyDB, Dragonfly |
//! | `nats` | yes | the NATS client protocol (`proto::nats`) |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod addr;
mod attribution;
pub mod backoff;
pub mod budget;
pub mod config;
pub mod epoch;
pub mod error;
pub mod heartbeat;
pub mod input;
mod ledger;
pub mod message;
pub mod output;
pub mod proto;
pub mod rng;
pub mod session;
pub mod spread;
pub mod stats;
pub mod subscription;
pub mod time;
mod timers;

pub use addr::Addr;
pub use backoff::{Backoff, Jitter};
pub use budget::{BudgetPolicy, RetryBudget};
pub use config::{Config, GiveUp, GiveUpWhen, Heartbeat, InboundLimits, Overflow, QueueLimits};
pub use epoch::Epoch;
pub use error::{AbandonReason, ConfigError, DisconnectReason, FrameError, NetError, RejectReason};
pub use input::{Handled, Input};
pub use message::{Batch, BatchIter, Delivery, MsgId, Outcome, Rejected, BATCH_RECORD_OVERHEAD};
pub use output::{Action, CloseMode, Notification, Received, State};
pub use proto::{AckMode, Codec, Frame, Framed, LengthCodec, LineCodec, Protocol, RawCodec};
pub use rng::SplitMix64;
pub use session::Session;
pub use stats::Stats;
pub use subscription::SubId;
pub use time::Instant;

/// Re-exported so users can plug in their own jitter source without depending on it.
pub use rand_core;
