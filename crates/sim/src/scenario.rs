//! Everything that defines a run: how many sessions, their config, the network, the faults,
//! the workload, how long, and the seed.

use core::time::Duration;

use redial_core::budget::BudgetPolicy;
use redial_core::{AckMode, Backoff, Config, QueueLimits};

use crate::fault::FaultSchedule;
use crate::network::{Network, Workload};
use crate::registry::Registry;

/// The inputs of a run. The same scenario always gives the same [`crate::Report`].
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// How many sessions.
    pub clients: usize,
    /// The sessions' config; each session's jitter seed is derived from [`Scenario::seed`]
    /// and its index, so no two sessions share a jitter stream.
    pub config: Config,
    /// Whether the simulated server confirms every message (one reply per message, in order,
    /// as Redis does), so delivery is checked against what it received; with
    /// [`AckMode::None`] a message is delivered once written. Default: in order.
    pub acks: AckMode,
    /// Path and server latencies.
    pub network: Network,
    /// The faults.
    pub faults: FaultSchedule,
    /// What each session sends (`None`: nothing).
    pub workload: Option<Workload>,
    /// Virtual time to simulate.
    pub duration: Duration,
    /// Width of a dial-rate bucket. Default 100 ms.
    pub bucket: Duration,
    /// Sessions start uniformly within `[0, start_spread]`. Default 1 s.
    pub start_spread: Duration,
    /// The run's seed.
    pub seed: u64,
    /// Several servers behind a registry (`None`: one server, one fixed address). Faults hit
    /// every server alike.
    pub registry: Option<Registry>,
    /// A retry budget every session shares (`None`: each backs off on its own).
    pub budget: Option<BudgetPolicy>,
}

impl Scenario {
    /// `clients` sessions with `config` for `duration`, no faults, no workload, seed 1.
    pub fn new(clients: usize, config: Config, duration: Duration) -> Scenario {
        Scenario {
            clients,
            config,
            acks: AckMode::InOrder,
            network: Network::default(),
            faults: FaultSchedule::none(),
            workload: None,
            duration,
            bucket: Duration::from_millis(100),
            start_spread: Duration::from_secs(1),
            seed: 1,
            registry: None,
            budget: None,
        }
    }

    /// A session config fit for simulating thousands of sessions with `backoff`: the core's
    /// defaults, except small queue and batch bounds (the core reserves them up front,
    /// and 10,000 sessions with the default 1,024-message queue would reserve gigabytes).
    pub fn sim_config(backoff: Backoff) -> Config {
        let mut c = Config::default()
            .with_backoff(backoff)
            .with_queue(QueueLimits {
                max_messages: 64,
                ..QueueLimits::default()
            });
        c.batch_messages = 8;
        c
    }

    /// Sets the faults.
    pub fn with_faults(mut self, faults: FaultSchedule) -> Self {
        self.faults = faults;
        self
    }

    /// Sets the workload.
    pub fn with_workload(mut self, workload: Option<Workload>) -> Self {
        self.workload = workload;
        self
    }

    /// Sets the network.
    pub fn with_network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Sets whether the server confirms messages.
    pub fn with_acks(mut self, acks: AckMode) -> Self {
        self.acks = acks;
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the registry model.
    pub fn with_registry(mut self, registry: Option<Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// Sets the shared retry budget.
    pub fn with_budget(mut self, budget: Option<BudgetPolicy>) -> Self {
        self.budget = budget;
        self
    }

    /// Sets the start spread.
    pub fn with_start_spread(mut self, spread: Duration) -> Self {
        self.start_spread = spread;
        self
    }
}
