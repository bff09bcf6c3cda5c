//! # redial-sim
//!
//! A deterministic discrete-event simulator that runs many **real** [`redial_core::Session`]s
//! (the same state machine the adapters run) against a simulated server and network, on
//! virtual time that jumps from one event to the next. Nothing sleeps and nothing steps idle
//! sessions: a time-ordered queue holds every timed event (session deadlines, dial answers, PONGs,
//! acknowledgements, closes, faults), and only the session an event belongs to runs.
//!
//! Same [`Scenario`] (and so the same seed), same [`Report`], always.
//!
//! | concern | where |
//! |---|---|
//! | latencies, workload | [`network`] |
//! | faults and their schedule | [`fault`] |
//! | the inputs of a run | [`scenario`] |
//! | the engine | [`sim`] |
//! | measurements and summary | [`report`] |
//! | named backoff policies | [`policy`] |
//! | several servers, one leaving the set; the shared retry budget | [`registry`], [`Scenario::budget`] |
//!
//! ## A run
//!
//! A hundred sessions ride through a 10 s outage; every message is accounted for and no
//! invariant breaks.
//!
//! ```
//! use std::time::Duration;
//! use redial_sim::{FaultKind, FaultSchedule, Policy, Scenario, Simulation, Workload};
//!
//! let s = Duration::from_secs;
//! let scenario = Scenario::new(100, Scenario::sim_config(Policy::DEFAULT.backoff), s(60))
//!     .with_faults(FaultSchedule::single(FaultKind::Refuse, s(10), s(10)))
//!     .with_workload(Some(Workload::default()))
//!     .with_seed(7);
//! let report = Simulation::new(scenario).unwrap().run();
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! let summary = report.summary();
//! assert_eq!(summary.messages.settled(), summary.messages.enqueued);
//! assert_eq!(summary.reconnection.count, 100);
//! println!("peak {} dials per 100 ms", summary.peak_dials_per_bucket);
//! ```
//!
//! ## What is checked during every run
//! - No dial before the backoff delay the core announced, none after give-up or close, no
//!   delay above the cap.
//! - At most one connection per session as the network sees it.
//! - Detection of a fault by every session connected when it started, within its bound: the
//!   heartbeat's interval + timeout for a blackhole (no byte crosses one, and the simulator
//!   wakes each core exactly at its deadline, so no slack is needed), the one-way latency for
//!   faults that send EOF or a reset.
//! - Every enqueued message ends in exactly one outcome; an acknowledged message was
//!   received by the server; an at-most-once message is never received twice and arrives in
//!   order; abandoned and rejected ones never reached the server; in-doubt ones were written.
//!
//! ## Features
//!
//! This crate has no cargo features.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod book;
pub mod fault;
pub mod network;
pub mod policy;
mod queue;
pub mod registry;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod sim;

pub use fault::{Fault, FaultKind, FaultSchedule};
pub use network::{Network, Workload};
pub use policy::Policy;
pub use registry::Registry;
pub use report::{MessageCounts, Percentiles, Report, Sample, Summary};
pub use rng::SimRng;
pub use scenario::Scenario;
pub use sim::{SimProtocol, SimSession, Simulation};
