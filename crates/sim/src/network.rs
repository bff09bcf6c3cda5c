//! The simulated network and server: latencies and lifetimes. Faults live in
//! [`crate::fault`].

use core::time::Duration;

/// Latencies of the simulated path and server. All sans-IO: the simulator turns them into
/// event times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Network {
    /// Time from a dial to its answer (SYN, SYN-ACK). Default 1 ms.
    pub dial_latency: Duration,
    /// Uniform extra dial time in `[0, dial_jitter]`. Default 1 ms.
    pub dial_jitter: Duration,
    /// One-way packet latency on an established connection. Default 500 µs.
    pub one_way: Duration,
    /// Server think time before answering a PING. Default 200 µs.
    pub pong_latency: Duration,
    /// Server think time before acknowledging a write's messages. Default 500 µs.
    pub ack_latency: Duration,
    /// Time for a write to complete locally (into the send buffer). Default zero: reported
    /// within the same round, saving an event per write.
    pub write_latency: Duration,
    /// Time for a close to complete. Default 100 µs.
    pub close_latency: Duration,
    /// Lifetime of a connection accepted while the server flaps. Default 200 ms.
    pub flap_life: Duration,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            dial_latency: Duration::from_millis(1),
            dial_jitter: Duration::from_millis(1),
            one_way: Duration::from_micros(500),
            pong_latency: Duration::from_micros(200),
            ack_latency: Duration::from_micros(500),
            write_latency: Duration::ZERO,
            close_latency: Duration::from_micros(100),
            flap_life: Duration::from_millis(200),
        }
    }
}

/// What each session sends on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Workload {
    /// Enqueue one message every this long.
    pub every: Duration,
    /// Every n-th message is [`redial_core::Delivery::Idempotent`] (0: none).
    pub idempotent_every: u32,
    /// Stop enqueueing at this virtual time (`None`: until the run ends).
    pub until: Option<Duration>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            every: Duration::from_secs(1),
            idempotent_every: 3,
            until: None,
        }
    }
}
