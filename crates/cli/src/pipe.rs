//! `redial pipe`: stdin lines to a server, server lines to stdout, through a reconnecting,
//! heartbeating session; lifecycle events and undelivered messages on stderr.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use redial_core::{
    AckMode, CloseMode, Config, Delivery, GiveUp, GiveUpWhen, Heartbeat, Jitter, LineCodec,
    Notification, QueueLimits,
};
use redial_tokio::{Discover, SessionEvent, Target};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::backoff_args::{parse_jitter, BackoffArgs};
use crate::describe::describe;
use crate::duration::parse_duration;
use crate::UsageError;

/// Exit code when the session gave up reconnecting.
pub const EXIT_GAVE_UP: u8 = 3;
/// Exit code when stdin ended (or a signal came) but some lines were not delivered.
pub const EXIT_UNDELIVERED: u8 = 4;

/// Heartbeat presets.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Preset {
    /// `PING` answered by `PONG`, both ways.
    Plain,
    /// Redis inline protocol: `PING` answered by `+PONG`.
    Redis,
    /// NATS: `CONNECT` on every connection, `PING`/`PONG` both ways.
    Nats,
}

/// `--delivery`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DeliveryArg {
    /// Never resend a line that may have reached the server.
    AtMostOnce,
    /// Replay unconfirmed lines after a reconnect.
    AtLeastOnce,
}

/// `--ack`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum AckArg {
    /// A line is delivered once written.
    None,
    /// Each request line is confirmed by one reply line, in order.
    Reply,
}

/// `--events`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum EventsArg {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
    /// Nothing but undelivered messages.
    Quiet,
}

/// Arguments of `redial pipe`.
#[derive(Debug, clap::Args)]
pub struct PipeArgs {
    /// Server addresses (`host:port`), resolved afresh on every attempt, tried in rotation.
    #[arg(required = true, value_name = "HOST:PORT")]
    targets: Vec<String>,
    /// Heartbeat lines preset.
    #[arg(long, value_enum, default_value = "plain")]
    preset: Preset,
    /// The heartbeat line to send (overrides the preset).
    #[arg(long)]
    ping: Option<String>,
    /// The line that answers it (overrides the preset).
    #[arg(long)]
    pong: Option<String>,
    /// Read silence before a PING.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    interval: Duration,
    /// Further silence before the connection is declared dead.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Disable the heartbeat.
    #[arg(long)]
    no_heartbeat: bool,
    #[command(flatten)]
    backoff: BackoffArgs,
    /// Backoff jitter: full, none, equal, decorrelated, or a fraction for proportional.
    #[arg(long, default_value = "full", value_parser = parse_jitter)]
    jitter: Jitter,
    /// Give up after this many consecutive failures (0: no limit).
    #[arg(long, default_value_t = 10)]
    max_failures: u32,
    /// Give up after failing for this long (0s: no limit).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    max_elapsed: Duration,
    /// Give up when either limit is reached (default: both).
    #[arg(long)]
    give_up_either: bool,
    /// Per-attempt connect deadline.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// A connection must stay up this long to reset the backoff.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    stable_after: Duration,
    /// Lines held while disconnected (more are rejected and reported).
    #[arg(long, default_value_t = 1024)]
    queue: usize,
    /// Replay policy for unconfirmed lines.
    #[arg(long, value_enum, default_value = "at-most-once")]
    delivery: DeliveryArg,
    /// How lines are confirmed.
    #[arg(long, value_enum, default_value = "none")]
    ack: AckArg,
    /// Lifecycle events on stderr.
    #[arg(long, value_enum, default_value = "human")]
    events: EventsArg,
    /// Record every input to the core as JSON lines in FILE (for `redial replay`).
    #[arg(long, value_name = "FILE")]
    record: Option<std::path::PathBuf>,
    /// How long to keep delivering after stdin ends or a signal arrives.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
}

/// Resolves every `host:port` afresh on each attempt.
struct Hosts(Vec<String>);

impl Discover for Hosts {
    fn discover(&self) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        let hosts = self.0.clone();
        async move {
            let mut all = Vec::new();
            let mut last_err = None;
            for h in hosts {
                match tokio::net::lookup_host(h.as_str()).await {
                    Ok(addrs) => all.extend(addrs),
                    Err(e) => last_err = Some(e),
                }
            }
            match (all.is_empty(), last_err) {
                (true, Some(e)) => Err(e),
                _ => Ok(all),
            }
        }
        .boxed()
    }
}

impl PipeArgs {
    fn config(&self) -> Result<Config, UsageError> {
        let cfg = Config::default()
            .with_backoff(self.backoff.backoff(self.jitter))
            .with_give_up(GiveUp {
                max_failures: (self.max_failures > 0).then_some(self.max_failures),
                max_elapsed: (!self.max_elapsed.is_zero()).then_some(self.max_elapsed),
                when: if self.give_up_either {
                    GiveUpWhen::Either
                } else {
                    GiveUpWhen::Both
                },
            })
            .with_connect_timeout(self.connect_timeout)
            .with_stable_after(self.stable_after)
            .with_heartbeat((!self.no_heartbeat).then_some(Heartbeat {
                interval: self.interval,
                timeout: self.timeout,
                adaptive_floor: None,
            }))
            .with_queue(QueueLimits {
                max_messages: self.queue,
                ..QueueLimits::default()
            })
            .with_acks(self.ack_mode());
        cfg.validate()
            .map_err(|e| UsageError(format!("invalid configuration: {e}")))?;
        Ok(cfg)
    }

    fn ack_mode(&self) -> AckMode {
        match self.ack {
            AckArg::None => AckMode::None,
            AckArg::Reply => AckMode::InOrder,
        }
    }

    fn codec(&self) -> LineCodec {
        let mut c = match self.preset {
            Preset::Plain => LineCodec::plain(),
            Preset::Redis => LineCodec::redis(),
            Preset::Nats => LineCodec::nats(),
        };
        if let Some(p) = &self.ping {
            c.ping = Some(p.clone().into_bytes());
        }
        if let Some(p) = &self.pong {
            c.pong = Some(p.clone().into_bytes());
        }
        c
    }
}

/// Runs the pipe. Returns the process exit code on a normal end.
pub fn run(args: PipeArgs) -> Result<u8, Box<dyn std::error::Error>> {
    let cfg = args.config()?;
    for t in &args.targets {
        if t.rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(Box::new(UsageError(format!(
                "target {t:?} is not HOST:PORT"
            ))));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = rt.block_on(pipe(args, cfg));
    // tokio reads stdin on a blocking thread that only returns at the next line: do not wait.
    rt.shutdown_background();
    code
}

fn json_event(e: &SessionEvent) -> String {
    let at = e.at.as_secs_f64() * 1000.0;
    let detail = e.detail.clone();
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    let v = match &e.notification {
        Notification::StateChanged { from, to } => {
            serde_json::json!({"event": "state", "from": format!("{from:?}"), "to": format!("{to:?}")})
        }
        Notification::AttemptStarted {
            epoch,
            attempt,
            addr,
        } => {
            serde_json::json!({"event": "attempt", "epoch": epoch.get(), "attempt": attempt, "addr": addr.to_string()})
        }
        Notification::AttemptFailed {
            epoch,
            attempt,
            addr,
            error,
            next_delay,
        } => serde_json::json!({
            "event": "attempt_failed", "epoch": epoch.get(), "attempt": attempt,
            "addr": addr.map(|a| a.to_string()), "error": error.to_string(), "detail": detail,
            "next_delay_ms": ms(*next_delay)}),
        Notification::Connected {
            epoch,
            addr,
            attempt,
        } => {
            serde_json::json!({"event": "connected", "epoch": epoch.get(), "addr": addr.to_string(), "attempt": attempt})
        }
        Notification::Disconnected {
            epoch,
            reason,
            uptime,
            next_delay,
        } => serde_json::json!({
            "event": "disconnected", "epoch": epoch.get(), "reason": reason.to_string(), "detail": detail,
            "uptime_ms": uptime.as_millis() as u64, "next_delay_ms": ms(*next_delay)}),
        Notification::Rtt { sample, smoothed } => serde_json::json!({
            "event": "rtt", "sample_us": sample.as_micros() as u64, "smoothed_us": smoothed.as_micros() as u64}),
        Notification::GaveUp {
            failures,
            elapsed,
            last_error,
        } => serde_json::json!({
            "event": "gave_up", "failures": failures, "elapsed_ms": elapsed.as_millis() as u64,
            "last_error": last_error.to_string()}),
        other => serde_json::json!({"event": "other", "debug": format!("{other:?}")}),
    };
    let mut v = v;
    v["at_ms"] = serde_json::json!(at);
    if e.missed > 0 {
        // The event stream was full: this many older events were dropped.
        v["missed"] = serde_json::json!(e.missed);
    }
    v.to_string()
}

fn human_event(e: &SessionEvent) -> Option<String> {
    if matches!(e.notification, Notification::Rtt { .. }) {
        return None;
    }
    let line = describe(&e.notification, e.detail.as_deref());
    let missed = match e.missed {
        0 => String::new(),
        n => format!(" ({n} earlier events missed)"),
    };
    Some(format!("redial: {:.3}s {line}{missed}", e.at.as_secs_f64()))
}

async fn pipe(args: PipeArgs, cfg: Config) -> Result<u8, Box<dyn std::error::Error>> {
    let delivery = match args.delivery {
        DeliveryArg::AtMostOnce => Delivery::AtMostOnce,
        DeliveryArg::AtLeastOnce => Delivery::Idempotent,
    };
    let mut builder = redial_tokio::builder(Target::discover(Hosts(args.targets.clone())))
        .config(cfg)
        .codec(args.codec())
        .acks(args.ack_mode());
    if let Some(path) = &args.record {
        let file = std::fs::File::create(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        builder = builder.record(std::io::BufWriter::new(file));
    }
    let (handle, mut inbound, mut events) = builder
        .spawn()
        .map_err(|e| UsageError(format!("invalid configuration: {e}")))?;
    let gave_up = Arc::new(AtomicBool::new(false));
    let mode = args.events;
    let ev_task = {
        let gave_up = gave_up.clone();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                if matches!(e.notification, Notification::GaveUp { .. }) {
                    gave_up.store(true, Ordering::SeqCst);
                }
                match mode {
                    EventsArg::Json => eprintln!("{}", json_event(&e)),
                    EventsArg::Human => {
                        if let Some(l) = human_event(&e) {
                            eprintln!("{l}");
                        }
                    }
                    EventsArg::Quiet => {}
                }
            }
        })
    };
    let out_task = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = inbound.next().await {
            let _ = stdout.write_all(&line).await;
            let _ = stdout.write_all(b"\n").await;
            let _ = stdout.flush().await;
        }
    });

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut receipts = FuturesOrdered::new();
    let mut undelivered = 0u64;
    let report = |line: &str, u: &redial_tokio::Undelivered, json: bool| {
        if json {
            eprintln!(
                "{}",
                serde_json::json!({"event": "undelivered", "line": line, "outcome": format!("{:?}", u.outcome)})
            );
        } else {
            eprintln!("redial: not delivered ({:?}): {line}", u.outcome);
        }
    };
    let json = matches!(args.events, EventsArg::Json);
    let signal = shutdown_signal();
    futures::pin_mut!(signal);
    loop {
        tokio::select! {
            line = stdin.next_line() => match line? {
                Some(line) => {
                    let r = handle.send(line.clone().into_bytes(), delivery);
                    receipts.push_back(async move { (line, r.await) });
                }
                None => break,
            },
            Some((line, r)) = receipts.next(), if !receipts.is_empty() => {
                if let Err(u) = r {
                    undelivered += 1;
                    report(&line, &u, json);
                }
            }
            _ = &mut signal => break,
        }
        if handle.is_closed() {
            break;
        }
    }
    handle
        .close(CloseMode::Graceful { drain: args.drain })
        .await;
    while let Some((line, r)) = receipts.next().await {
        if let Err(u) = r {
            undelivered += 1;
            report(&line, &u, json);
        }
    }
    drop(handle);
    let _ = ev_task.await;
    let _ = out_task.await;
    Ok(if gave_up.load(Ordering::SeqCst) {
        EXIT_GAVE_UP
    } else if undelivered > 0 {
        EXIT_UNDELIVERED
    } else {
        0
    })
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
