//! Writes what the host asked of the core as a `redial replay` trace (format version 2 of
//! `redial_driver::trace`): one JSON line per core call, so a counterexample runs again under
//! `redial replay FILE`, and `redial_driver::trace::replay` proves it takes the same decisions.

use redial_core::proto::nats::Nats;
use redial_core::proto::resp::Resp;
use redial_core::{
    Action, CloseMode, Config, Delivery, Epoch, GiveUpWhen, Input, Instant, Jitter, NetError,
    Overflow,
};
use serde_json::{json, Value};

use crate::peer::{Proto, INBOX};

fn ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trace lines of one run, in order.
#[derive(Debug, Default, Clone)]
pub struct Recording {
    /// One JSON object per line.
    pub lines: Vec<String>,
}

impl Recording {
    fn push(&mut self, v: Value) {
        self.lines.push(v.to_string());
    }

    /// The `start` line: every config field, and the protocol with its settings.
    pub fn start(&mut self, cfg: &Config, proto: Proto) {
        let jitter = match cfg.backoff.jitter {
            Jitter::None => json!("none"),
            Jitter::Full => json!("full"),
            Jitter::Equal => json!("equal"),
            Jitter::Decorrelated => json!("decorrelated"),
            Jitter::Proportional(f) => json!({ "proportional": f }),
            _ => json!("unknown"),
        };
        let config = json!({
            "backoff_initial_ns": ns(cfg.backoff.initial),
            "backoff_multiplier": cfg.backoff.multiplier,
            "backoff_cap_ns": ns(cfg.backoff.cap),
            "backoff_jitter": jitter,
            "give_up_max_failures": cfg.give_up.max_failures,
            "give_up_max_elapsed_ns": cfg.give_up.max_elapsed.map(ns),
            "give_up_either": cfg.give_up.when == GiveUpWhen::Either,
            "stable_after_ns": ns(cfg.stable_after),
            "connect_timeout_ns": ns(cfg.connect_timeout),
            "heartbeat": cfg.heartbeat.map(|h| json!({
                "interval_ns": ns(h.interval),
                "timeout_ns": ns(h.timeout),
                "adaptive_floor_ns": h.adaptive_floor.map(ns),
            })),
            "read_idle_timeout_ns": cfg.read_idle_timeout.map(ns),
            "write_timeout_ns": cfg.write_timeout.map(ns),
            "close_timeout_ns": ns(cfg.close_timeout),
            "queue_max_messages": cfg.queue.max_messages,
            "queue_max_bytes": cfg.queue.max_bytes,
            "queue_max_message": cfg.queue.max_message,
            "queue_evict_oldest": cfg.queue.overflow == Overflow::EvictOldest,
            "inbound_max_messages": cfg.inbound.max_messages,
            "inbound_max_bytes": cfg.inbound.max_bytes,
            "request_timeout_ns": cfg.request_timeout.map(ns),
            "max_replays": cfg.max_replays,
            "batch_bytes": cfg.batch_bytes,
            "batch_messages": cfg.batch_messages,
            "seed": cfg.seed,
        });
        let protocol = match proto {
            Proto::Redis => {
                let l = Resp::new().resp3().limits();
                json!({
                    "p": "resp", "resp3": true, "auth": "none", "database": null,
                    "client_name": null, "setup": [], "max_frame": l.max_frame,
                    "max_depth": l.max_depth, "max_elements": l.max_elements,
                })
            }
            Proto::Nats => {
                let n = Nats::new().with_inbox(INBOX);
                json!({
                    "p": "nats", "auth": "none", "name": n.name(), "echo": n.echo(),
                    "inbox": n.inbox(), "max_control_line": n.max_control_line(),
                    "max_payload": n.max_payload(),
                })
            }
        };
        self.push(json!({"k": "start", "version": 2, "config": config, "protocol": protocol}));
    }

    /// A `poll` and the action it returned.
    pub fn poll(&mut self, t: Instant, a: &Action) {
        self.push(json!({"k": "poll", "t": t.as_nanos(), "a": redial_driver::trace::redacted(a)}));
    }

    /// A `handle_input`.
    pub fn input(&mut self, t: Instant, input: &Input<'_>) {
        let e = |e: Epoch| e.get();
        let net = |n: NetError| format!("{n:?}");
        let input = match *input {
            Input::Resolved { epoch, addrs } => {
                let addrs: Vec<Value> = addrs
                    .iter()
                    .map(|a| match a {
                        redial_core::Addr::Ip(s) => json!({ "ip": s.to_string() }),
                        redial_core::Addr::Local(n) => json!({ "local": n }),
                    })
                    .collect();
                json!({"e": "resolved", "epoch": e(epoch), "addrs": addrs})
            }
            Input::ResolveFailed { epoch, error } => {
                json!({"e": "resolve_failed", "epoch": e(epoch), "error": net(error)})
            }
            Input::DialOk { epoch } => json!({"e": "dial_ok", "epoch": e(epoch)}),
            Input::DialFailed { epoch, error } => {
                json!({"e": "dial_failed", "epoch": e(epoch), "error": net(error)})
            }
            Input::Written { epoch } => json!({"e": "written", "epoch": e(epoch)}),
            Input::Eof { epoch } => json!({"e": "eof", "epoch": e(epoch)}),
            Input::IoError { epoch, error } => {
                json!({"e": "io_error", "epoch": e(epoch), "error": net(error)})
            }
            Input::Closed { epoch } => json!({"e": "closed", "epoch": e(epoch)}),
            _ => json!({"e": "unknown"}),
        };
        self.push(json!({"k": "input", "t": t.as_nanos(), "input": input}));
    }

    /// A `handle_read` of `fresh` new bytes after `kept` kept ones.
    pub fn read(
        &mut self,
        t: Instant,
        epoch: Epoch,
        kept: usize,
        fresh: &[u8],
        used: usize,
        units: usize,
    ) {
        self.push(json!({
            "k": "read", "t": t.as_nanos(), "epoch": epoch.get(), "kept": kept,
            "data": hex(fresh), "used": used, "units": units,
        }));
    }

    /// An `encode_transmit`.
    pub fn transmit(&mut self) {
        self.push(json!({"k": "transmit"}));
    }

    /// An `enqueue`.
    pub fn enqueue(&mut self, t: Instant, data: &[u8], d: Delivery) {
        let delivery = if d == Delivery::Idempotent {
            "idempotent"
        } else {
            "at_most_once"
        };
        self.push(
            json!({"k": "enqueue", "t": t.as_nanos(), "data": hex(data), "delivery": delivery}),
        );
    }

    /// A `subscribe`.
    pub fn subscribe(&mut self, t: Instant, spec: &[u8]) {
        self.push(json!({"k": "subscribe", "t": t.as_nanos(), "spec": hex(spec)}));
    }

    /// An `inbound_taken`.
    pub fn taken(&mut self, t: Instant, messages: usize, bytes: usize) {
        self.push(json!({"k": "taken", "t": t.as_nanos(), "messages": messages, "bytes": bytes}));
    }

    /// A `close`.
    pub fn close(&mut self, t: Instant, mode: CloseMode) {
        let mode = match mode {
            CloseMode::Immediate => json!("immediate"),
            CloseMode::Graceful { drain } => json!({"graceful": {"graceful_ns": ns(drain)}}),
        };
        self.push(json!({"k": "close", "t": t.as_nanos(), "mode": mode}));
    }

    /// A `reconnect_now`.
    pub fn reconnect(&mut self, t: Instant) {
        self.push(json!({"k": "reconnect", "t": t.as_nanos()}));
    }

    /// The whole trace, one line each.
    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}
