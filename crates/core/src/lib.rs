//! # redial-core
//!
//! The sans-IO heart of redial: a pure, deterministic state machine that keeps one long-lived
//! TCP conversation alive through partitions, dead peers and server restarts. It decides
//! *when* to resolve, dial, ping, write, close and give up; an adapter (redial-tokio,
//! redial-smol, the simulator, or your own) does the I/O and reports back.
//!
//! The core never reads a clock, never sleeps, never does I/O and never spawns: time is an
//! argument (`now`) of every call, and jitter comes from a generator seeded by the config.
//! The same inputs always give the same outputs.
//!
//! | concern | where |
//! |---|---|
//! | backoff, jitter, cap | [`backoff`] |
//! | give-up, heartbeat, queue bounds, validation | [`config`] |
//! | connection epochs | [`epoch`] |
//! | events in, actions and notifications out | [`event`] |
//! | RTT and the liveness deadline | [`heartbeat`] |
//! | delivery classes and outcomes | [`message`] |
//! | framing (lines, length-delimited) | [`codec`] |
//! | the state machine | [`session`] |
//!
//! ## The run loop
//!
//! Every adapter is this loop. Here it runs against a scripted "network" so the example is
//! complete: the first dial is refused, the second succeeds, one message is written.
//!
//! ```
//! use core::time::Duration;
//! use redial_core::{Action, Config, Delivery, Event, Instant, NetError, Notification, Session};
//!
//! let addr = "127.0.0.1:6379".parse().unwrap();
//! let mut now = Instant::ZERO;
//! let mut session = Session::new(Config::default(), now).unwrap();
//! session.enqueue(now, b"hello".to_vec(), Delivery::AtMostOnce).unwrap();
//!
//! let mut refusals = 1;
//! let mut written = Vec::new();
//! loop {
//!     // 1. Drain the actions of this round.
//!     let mut events = Vec::new();
//!     let wait = loop {
//!         match session.poll(now) {
//!             Action::Resolve { epoch } => events.push((epoch, "resolved")),
//!             Action::Dial { epoch, .. } if refusals > 0 => {
//!                 refusals -= 1;
//!                 events.push((epoch, "refused"));
//!             }
//!             Action::Dial { epoch, .. } => events.push((epoch, "connected")),
//!             Action::Transmit { epoch, .. } => {
//!                 written.extend(session.transmit_payloads().map(<[u8]>::to_vec));
//!                 events.push((epoch, "written"));
//!             }
//!             Action::Notify(Notification::Outcome { outcome, .. }) => {
//!                 println!("message ended: {outcome:?}");
//!             }
//!             Action::Notify(n) => println!("{n:?}"),
//!             Action::Wait { until } => break until,
//!             _ => {}
//!         }
//!     };
//!     if !written.is_empty() {
//!         break;
//!     }
//!     // 2. Feed back what the "network" did, tagged with its epoch. Only when nothing
//!     //    happened does the loop sleep.
//!     if events.is_empty() {
//!         // 3. Sleep until the deadline (virtual time here: just jump to it).
//!         now = wait.expect("a live session always has a deadline");
//!         continue;
//!     }
//!     for (epoch, what) in events {
//!         let event = match what {
//!             "resolved" => Event::Resolved { epoch, addrs: &[addr] },
//!             "refused" => Event::DialFailed { epoch, error: NetError::Refused },
//!             "connected" => Event::DialOk { epoch },
//!             _ => Event::Written { epoch },
//!         };
//!         session.handle(now, event);
//!     }
//! }
//! assert_eq!(written, vec![b"hello".to_vec()]);
//! assert!(now <= Instant::ZERO + Duration::from_millis(100), "retried within the first backoff");
//! ```
//!
//! ## Guarantees (property-tested and fuzzed)
//! 1. No input sequence panics.
//! 2. At most one current connection; events of stale epochs never change it.
//! 3. No dial before its backoff deadline; every delay is within `[0, cap]`; nothing after
//!    give-up or close.
//! 4. Every message ends in exactly one [`Outcome`]; none is written twice unless idempotent;
//!    order holds.
//! 5. A peer silent for longer than heartbeat interval + timeout is declared dead by then.
//! 6. Same seed and inputs, same outputs.
//! 7. Steady-state stepping allocates nothing.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod backoff;
pub mod codec;
pub mod config;
pub mod epoch;
pub mod error;
pub mod event;
pub mod heartbeat;
pub mod message;
mod queue;
pub mod rng;
pub mod session;
pub mod stats;
pub mod time;

pub use backoff::{Backoff, Jitter};
pub use codec::{Codec, Frame, LengthCodec, LineCodec};
pub use config::{AckMode, Config, GiveUp, GiveUpWhen, Heartbeat, Overflow, QueueLimits};
pub use epoch::Epoch;
pub use error::{AbandonReason, ConfigError, DisconnectReason, FrameError, NetError, RejectReason};
pub use event::{Action, CloseMode, Event, Notification, State};
pub use message::{Batch, BatchIter, Delivery, MsgId, Outcome, Rejected, BATCH_RECORD_OVERHEAD};
pub use rng::SplitMix64;
pub use session::Session;
pub use stats::Stats;
pub use time::Instant;

/// Re-exported so users can plug in their own jitter source without depending on it.
pub use rand_core;
