//! `redial pipe`: stdin lines to a server, its replies and messages to stdout, through a
//! reconnecting, heartbeating session; lifecycle events and undelivered lines on stderr.
//!
//! Three presets: `plain` (a line protocol: each line a message, the server's lines printed),
//! `redis` (each line a command split as redis-cli splits it, each reply printed as redis-cli
//! prints it) and `nats` (`pub`, `sub` and `req` lines; every message and reply on one line).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use redial_core::proto::nats::{self, Nats};
use redial_core::proto::resp::{cmd, split_args, Resp, Value};
use redial_core::proto::Shown;
use redial_core::{
    AckMode, CloseMode, Config, Delivery, Framed, GiveUp, GiveUpWhen, Heartbeat, Jitter, LineCodec,
    Notification, QueueLimits, RawCodec,
};
use redial_tokio::trace::Recordable;
use redial_tokio::{Discover, Endpoint, Inbound, Reply, SessionEvent, Target, Undelivered};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::backoff_args::{parse_jitter, BackoffArgs};
use crate::describe::describe;
use crate::duration::parse_duration;
use crate::UsageError;

/// Exit code when the session gave up reconnecting (or was refused for good).
pub const EXIT_GAVE_UP: u8 = 3;
/// Exit code when some lines were not delivered (in doubt, abandoned, rejected, unparsable).
pub const EXIT_UNDELIVERED: u8 = 4;
/// Exit code when stdout was closed under us.
pub const EXIT_STDOUT_CLOSED: u8 = 5;

/// What the pipe speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// A line protocol: `PING` answered by `PONG`, both ways; each stdin line a message.
    Plain,
    /// Redis (RESP): each line a command, split as redis-cli does; replies as redis-cli prints.
    Redis,
    /// NATS: `pub SUBJECT PAYLOAD`, `sub SUBJECT`, `req SUBJECT PAYLOAD` lines.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AckArg {
    /// A line is delivered once written (plain only).
    None,
    /// Each request is confirmed by its reply (always so for redis and nats).
    Reply,
}

/// `--events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EventsArg {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
    /// Nothing but undelivered lines.
    Quiet,
}

/// `--stdin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StdinArg {
    /// Each line a message (invalid UTF-8 is data).
    Lines,
    /// Bytes as they come, each chunk read a message; the server's bytes printed as they come
    /// (plain only: no framing, so no heartbeat and no replies).
    Raw,
}

/// `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputArg {
    /// Replies as the preset's own client prints them (redis-cli for redis).
    Text,
    /// One JSON object per reply or message, naming the line it answers.
    Json,
}

/// Arguments of `redial pipe`.
#[derive(Debug, clap::Args)]
pub struct PipeArgs {
    /// Server addresses (`host:port`), resolved afresh on every attempt, tried in rotation.
    #[arg(required = true, value_name = "HOST:PORT")]
    targets: Vec<String>,
    /// What the server speaks.
    #[arg(long, value_enum, default_value = "plain")]
    preset: Preset,
    /// The heartbeat line to send (plain only).
    #[arg(long)]
    ping: Option<String>,
    /// The line that answers it (plain only).
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
    /// Give up after this many consecutive failures (0: no limit). Given alone, it alone
    /// decides; with neither limit given: 10 failures and 5 minutes, both reached.
    #[arg(long)]
    max_failures: Option<u32>,
    /// Give up after failing for this long (0s: no limit). Given alone, it alone decides.
    #[arg(long, value_parser = parse_duration)]
    max_elapsed: Option<Duration>,
    /// With both limits given: give up when either is reached (default: both).
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
    /// How lines are confirmed: plain defaults to `none`; redis and nats replies always
    /// confirm their requests.
    #[arg(long, value_enum)]
    ack: Option<AckArg>,
    /// RESP3 (`HELLO 3`) instead of RESP2 (redis only).
    #[arg(long)]
    resp3: bool,
    /// Lifecycle events on stderr.
    #[arg(long, value_enum, default_value = "human")]
    events: EventsArg,
    /// How replies and messages are printed on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputArg,
    /// Record every call into the core as JSON lines in FILE (for `redial replay`).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// What stdin holds.
    #[arg(long, value_enum, default_value = "lines")]
    stdin: StdinArg,
    /// How long to keep delivering after stdin ends or a signal arrives.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
}

/// Resolves every `host:port` afresh on each attempt.
struct Hosts(Vec<String>);

impl Discover for Hosts {
    fn discover(&self) -> BoxFuture<'static, std::io::Result<Vec<Endpoint>>> {
        let hosts = self.0.clone();
        async move {
            let mut all = Vec::new();
            let mut last_err = None;
            for h in hosts {
                let name = h.rsplit_once(':').map_or(h.as_str(), |(n, _)| n).to_owned();
                match tokio::net::lookup_host(h.as_str()).await {
                    Ok(addrs) => all.extend(addrs.map(|a| Endpoint::named(&name, a))),
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

fn usage(msg: impl Into<String>) -> Box<dyn std::error::Error> {
    Box::new(UsageError(msg.into()))
}

impl PipeArgs {
    fn config(&self) -> Result<Config, UsageError> {
        let cfg = Config::default()
            .with_backoff(self.backoff.backoff(self.jitter))
            .with_give_up(self.give_up())
            .with_connect_timeout(self.connect_timeout)
            .with_stable_after(self.stable_after)
            .with_heartbeat(
                (!self.no_heartbeat && self.stdin == StdinArg::Lines).then_some(Heartbeat {
                    interval: self.interval,
                    timeout: self.timeout,
                    adaptive_floor: None,
                }),
            )
            .with_queue(QueueLimits {
                max_messages: self.queue,
                ..QueueLimits::default()
            });
        cfg.validate()
            .map_err(|e| UsageError(format!("invalid configuration: {e}")))?;
        Ok(cfg)
    }

    /// `--max-failures` and `--max-elapsed`: a limit given alone decides alone (a user who
    /// says "give up after 2 failures" means it); neither given: 10 failures and 5 minutes.
    fn give_up(&self) -> GiveUp {
        let (failures, elapsed, when) = match (self.max_failures, self.max_elapsed) {
            (None, None) => (10, Duration::from_secs(300), GiveUpWhen::Both),
            (Some(n), None) => (n, Duration::ZERO, GiveUpWhen::Either),
            (None, Some(d)) => (0, d, GiveUpWhen::Either),
            (Some(n), Some(d)) if self.give_up_either => (n, d, GiveUpWhen::Either),
            (Some(n), Some(d)) => (n, d, GiveUpWhen::Both),
        };
        GiveUp {
            max_failures: (failures > 0).then_some(failures),
            max_elapsed: (!elapsed.is_zero()).then_some(elapsed),
            when,
        }
    }

    /// Flags that parse but do not fit the preset.
    fn check(&self) -> Result<(), Box<dyn std::error::Error>> {
        for t in &self.targets {
            match t.rsplit_once(':').map(|(_, p)| p.parse::<u16>()) {
                Some(Ok(0)) => {
                    return Err(usage(format!(
                        "target \"{}\": port 0 is no server's port",
                        Shown(t.as_bytes())
                    )))
                }
                Some(Ok(_)) => {}
                _ => {
                    return Err(usage(format!(
                        "target \"{}\" is not HOST:PORT",
                        Shown(t.as_bytes())
                    )))
                }
            }
        }
        if self.preset != Preset::Plain {
            if self.ping.is_some() || self.pong.is_some() {
                return Err(usage(
                    "--ping and --pong are for --preset plain: redis and nats have their own heartbeat",
                ));
            }
            if self.ack == Some(AckArg::None) {
                return Err(usage(
                    "--ack none is for --preset plain: redis and nats replies always confirm their requests",
                ));
            }
        }
        if self.stdin == StdinArg::Raw {
            if self.preset != Preset::Plain {
                return Err(usage(
                    "--stdin raw is for --preset plain: redis and nats have lines",
                ));
            }
            if self.ack == Some(AckArg::Reply) || self.ping.is_some() || self.pong.is_some() {
                return Err(usage(
                    "--stdin raw has no framing: no --ack reply, --ping or --pong",
                ));
            }
        }
        if self.resp3 && self.preset != Preset::Redis {
            return Err(usage("--resp3 is for --preset redis"));
        }
        for (flag, v) in [("--ping", &self.ping), ("--pong", &self.pong)] {
            if let Some(v) = v {
                if v.is_empty() || v.contains(['\r', '\n']) {
                    return Err(usage(format!("{flag} must be one non-empty line")));
                }
            }
        }
        Ok(())
    }

    fn line_protocol(&self) -> Framed<LineCodec> {
        let mut c = LineCodec::plain();
        if let Some(p) = &self.ping {
            c.ping = Some(p.clone().into_bytes());
        }
        if let Some(p) = &self.pong {
            c.pong = Some(p.clone().into_bytes());
        }
        let acks = match self.ack {
            Some(AckArg::Reply) => AckMode::InOrder,
            _ => AckMode::None,
        };
        Framed::new(c).with_acks(acks)
    }
}

/// Runs the pipe. Returns the process exit code on a normal end.
pub fn run(args: PipeArgs) -> Result<u8, Box<dyn std::error::Error>> {
    args.check()?;
    let cfg = args.config()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = rt.block_on(async {
        match args.preset {
            Preset::Plain if args.stdin == StdinArg::Raw => {
                let p = Framed::new(RawCodec::default());
                pipe(&args, cfg, p, Speaker::Plain).await
            }
            Preset::Plain => {
                let p = args.line_protocol();
                pipe(&args, cfg, p, Speaker::Plain).await
            }
            Preset::Redis => {
                let p = if args.resp3 {
                    Resp::new().resp3()
                } else {
                    Resp::new()
                };
                pipe(&args, cfg, p, Speaker::Redis).await
            }
            Preset::Nats => {
                let p = Nats::new().with_inbox(&inbox()).with_name("redial-pipe");
                let speaker = Speaker::Nats(p.clone(), 0);
                pipe(&args, cfg, p, speaker).await
            }
        }
    });
    // tokio reads stdin on a blocking thread that only returns at the next line: do not wait.
    rt.shutdown_background();
    code
}

/// A fresh inbox prefix for this process's NATS requests.
fn inbox() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = t ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    // splitmix64: spread the bits.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("_INBOX.{:016x}", x ^ (x >> 31))
}

/// Turns stdin lines into what the protocol sends, and replies into what is printed.
enum Speaker {
    Plain,
    Redis,
    /// The protocol (for request encoding) and the next request token.
    Nats(Nats, u64),
}

/// What one stdin line asks for.
enum Ask {
    /// Nothing (a blank line).
    Skip,
    /// A message whose reply is printed.
    Request(Vec<u8>),
    /// A message with no reply.
    Send(Vec<u8>),
    /// A NATS subscription.
    Subscribe(String),
}

impl Speaker {
    fn ask(&mut self, line: &[u8], acks: bool) -> Result<Ask, String> {
        match self {
            Speaker::Plain if acks => Ok(Ask::Request(line.to_vec())),
            Speaker::Plain => Ok(Ask::Send(line.to_vec())),
            Speaker::Redis => {
                let args = split_args(line).map_err(|_| "Invalid argument(s)".to_owned())?;
                if args.is_empty() {
                    return Ok(Ask::Skip);
                }
                Ok(Ask::Request(cmd(args)))
            }
            Speaker::Nats(proto, token) => {
                let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
                let text = text.trim_start();
                if text.trim().is_empty() {
                    return Ok(Ask::Skip);
                }
                let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
                let (subject, payload) = rest.split_once(' ').unwrap_or((rest, ""));
                let subject = subject.trim_end();
                let e = |e: redial_core::FrameError| e.to_string();
                match verb.to_ascii_lowercase().as_str() {
                    "pub" => Ok(Ask::Send(
                        nats::publish(subject, payload.as_bytes()).map_err(e)?,
                    )),
                    "req" => {
                        *token += 1;
                        Ok(Ask::Request(
                            proto
                                .request(*token, subject, payload.as_bytes())
                                .map_err(e)?,
                        ))
                    }
                    "sub" if payload.trim().is_empty() && !subject.is_empty() => {
                        Ok(Ask::Subscribe(subject.to_owned()))
                    }
                    "sub" => Err("usage: sub SUBJECT".into()),
                    _ => Err(
                        "expected `pub SUBJECT PAYLOAD`, `sub SUBJECT` or `req SUBJECT PAYLOAD`"
                            .into(),
                    ),
                }
            }
        }
    }

    fn is_nats(&self) -> bool {
        matches!(self, Speaker::Nats(..))
    }
}

/// A reply as printed in text mode: a line server's bytes as they came, the others as text.
fn reply_bytes(preset: Preset, body: &[u8], refused: bool) -> Vec<u8> {
    match preset {
        Preset::Plain => body.to_vec(),
        _ => reply_text(preset, body, refused).into_bytes(),
    }
}

/// A reply as text (redis-cli's rendering for redis; escaped for NATS).
fn reply_text(preset: Preset, body: &[u8], refused: bool) -> String {
    match preset {
        Preset::Redis => match Value::parse(body) {
            Ok((v, _)) => v.to_cli(),
            Err(_) => String::from_utf8_lossy(body).into_owned(),
        },
        Preset::Nats if refused => "(error) no responders".into(),
        Preset::Nats => escape(body),
        Preset::Plain => String::from_utf8_lossy(body).into_owned(),
    }
}

/// Bytes on one line: control characters, backslashes and invalid UTF-8 escaped.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '\r' => s.push_str("\\r"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                c if c.is_control() => {
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

/// A JSON string of bytes: the text when it is UTF-8, else lossy (with `hex` beside it).
fn json_bytes(obj: &mut serde_json::Value, key: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => obj[key] = s.into(),
        Err(_) => {
            obj[key] = String::from_utf8_lossy(bytes).into_owned().into();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            obj[format!("{key}_hex")] = hex.into();
        }
    }
}

fn json_event(e: &SessionEvent) -> String {
    let at = e.at.as_secs_f64() * 1000.0;
    let detail = e.detail.clone();
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    let mut v = match &e.notification {
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
        Notification::PeerSaid {
            epoch,
            text,
            notice,
        } => serde_json::json!({
            "event": "peer_said", "epoch": epoch.get(), "text": Shown(text).to_string(), "notice": notice}),
        Notification::Subscribed { id, epoch } => {
            serde_json::json!({"event": "subscribed", "sub": id.get(), "epoch": epoch.get()})
        }
        Notification::Unsubscribed { id, refused } => {
            serde_json::json!({"event": "unsubscribed", "sub": id.get(), "refused": refused})
        }
        Notification::ReadPaused { epoch } => {
            serde_json::json!({"event": "read_paused", "epoch": epoch.get()})
        }
        Notification::ReadResumed { epoch, paused_for } => serde_json::json!({
            "event": "read_resumed", "epoch": epoch.get(), "paused_ms": paused_for.as_millis() as u64}),
        Notification::GaveUp {
            failures,
            elapsed,
            last_error,
        } => serde_json::json!({
            "event": "gave_up", "failures": failures, "elapsed_ms": elapsed.as_millis() as u64,
            "last_error": last_error.to_string()}),
        other => serde_json::json!({"event": "other", "debug": format!("{other:?}")}),
    };
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

/// A `--record` file whose write errors are kept, to be reported at exit.
struct RecordFile {
    out: std::io::BufWriter<std::fs::File>,
    error: Arc<Mutex<Option<String>>>,
}

impl RecordFile {
    fn keep<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            let mut g = self.error.lock().unwrap_or_else(|p| p.into_inner());
            g.get_or_insert_with(|| e.to_string());
        }
        r
    }
}

impl std::io::Write for RecordFile {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let r = self.out.write(b);
        self.keep(r)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.out.flush();
        self.keep(r)
    }
}

/// One line of stdin waiting for its outcome.
type Pending = BoxFuture<'static, (usize, String, Result<Option<Reply>, Undelivered>)>;

/// Everything the loop shares with its printers.
struct Out {
    tx: mpsc::Sender<Vec<u8>>,
    json: bool,
}

/// Bytes read from stdin at once in `--stdin raw` (each chunk one message).
const RAW_CHUNK: usize = 16 << 10;

/// Reads stdin in chunks, each one message; ends at EOF or an error.
fn read_stdin_raw() -> mpsc::Receiver<StdinLine> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; RAW_CHUNK];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    if tx.send(StdinLine::Line(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("redial: reading stdin: {e}");
                    return;
                }
            }
        }
    });
    rx
}

impl Out {
    /// Queues a line for stdout (bytes: a line server's data is printed as it came, invalid
    /// UTF-8 included); `false` once stdout is gone.
    async fn print(&self, line: impl Into<Vec<u8>>) -> bool {
        self.tx.send(line.into()).await.is_ok()
    }
}

/// The longest stdin line taken (longer ones are reported, not sent).
const MAX_STDIN_LINE: usize = 1 << 20;

/// A line of stdin, as bytes (invalid UTF-8 is data, never an abort).
enum StdinLine {
    Line(Vec<u8>),
    /// A line over [`MAX_STDIN_LINE`]: its start, for the report (the rest is skipped).
    TooLong(Vec<u8>),
}

/// Reads stdin on a task of its own, line by line, each bounded; ends at EOF or an error.
fn read_stdin() -> mpsc::Receiver<StdinLine> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let got = (&mut stdin)
                .take(MAX_STDIN_LINE as u64 + 2)
                .read_until(b'\n', &mut buf)
                .await;
            let line = match got {
                Ok(0) => return,
                Err(e) => {
                    eprintln!("redial: reading stdin: {e}");
                    return;
                }
                Ok(_) if buf.last() == Some(&b'\n') => {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                    if buf.len() > MAX_STDIN_LINE {
                        StdinLine::TooLong(buf[..256].to_vec())
                    } else {
                        StdinLine::Line(std::mem::take(&mut buf))
                    }
                }
                Ok(_) if buf.len() <= MAX_STDIN_LINE => {
                    // The last line, without its newline.
                    StdinLine::Line(std::mem::take(&mut buf))
                }
                Ok(_) => {
                    let start = buf[..256].to_vec();
                    // Skip the rest of it, never holding more than a chunk.
                    loop {
                        buf.clear();
                        match (&mut stdin)
                            .take(64 << 10)
                            .read_until(b'\n', &mut buf)
                            .await
                        {
                            Ok(0) | Err(_) => break,
                            Ok(_) if buf.last() == Some(&b'\n') => break,
                            Ok(_) => {}
                        }
                    }
                    StdinLine::TooLong(start)
                }
            };
            if tx.send(line).await.is_err() {
                return;
            }
        }
    });
    rx
}

async fn pipe<P>(
    args: &PipeArgs,
    cfg: Config,
    protocol: P,
    mut speaker: Speaker,
) -> Result<u8, Box<dyn std::error::Error>>
where
    P: Recordable + Send,
{
    let delivery = match args.delivery {
        DeliveryArg::AtMostOnce => Delivery::AtMostOnce,
        DeliveryArg::AtLeastOnce => Delivery::Idempotent,
    };
    let target = match args.targets.as_slice() {
        [one] => Target::from(one.clone()),
        many => Target::discover(Hosts(many.to_vec())),
    };
    let mut builder = redial_tokio::builder(target).config(cfg).protocol(protocol);
    let record_error = Arc::new(Mutex::new(None::<String>));
    if let Some(path) = &args.record {
        let file = std::fs::File::create(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        builder = builder.record(RecordFile {
            out: std::io::BufWriter::new(file),
            error: record_error.clone(),
        });
    }
    let (handle, inbound, mut events) = builder
        .spawn()
        .map_err(|e| UsageError(format!("invalid configuration: {e}")))?;

    // Lifecycle events on stderr; the session's end is the end of this stream.
    let gave_up = Arc::new(AtomicBool::new(false));
    let (over_tx, mut over_rx) = tokio::sync::oneshot::channel::<()>();
    let ev_task = {
        let gave_up = gave_up.clone();
        let mode = args.events;
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
            let _ = over_tx.send(());
        })
    };

    // One writer owns stdout, through a bounded channel: a stalled stdout stalls the
    // printers, which stop taking inbound data, so the session stops reading its socket.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let stdout_closed = Arc::new(AtomicBool::new(false));
    let (gone_tx, mut stdout_gone) = tokio::sync::oneshot::channel::<()>();
    let newline = args.stdin == StdinArg::Lines || args.output == OutputArg::Json;
    let writer = {
        let closed = stdout_closed.clone();
        tokio::spawn(async move {
            let _gone = gone_tx; // Dropped when the writer ends: wakes the main loop.
            let mut stdout = tokio::io::stdout();
            while let Some(line) = rx.recv().await {
                let r = async {
                    stdout.write_all(&line).await?;
                    if newline {
                        stdout.write_all(b"\n").await?;
                    }
                    stdout.flush().await
                }
                .await;
                if r.is_err() {
                    closed.store(true, Ordering::SeqCst);
                    return;
                }
            }
        })
    };
    let out = Arc::new(Out {
        tx,
        json: args.output == OutputArg::Json,
    });
    let inbound_task = tokio::spawn(print_inbound(inbound, out.clone(), args.preset));
    let mut sub_tasks = Vec::new();

    let json_events = args.events == EventsArg::Json;
    let mut undelivered = 0u64;
    let report = |n: usize, line: &str, why: &str, outcome: Option<&Undelivered>| {
        if json_events {
            eprintln!(
                "{}",
                serde_json::json!({"event": "undelivered", "line": n, "request": line, "outcome": why,
                    "delivery": outcome.map(|u| u.to_string())})
            );
        } else {
            eprintln!("redial: line {n} not delivered ({why}): {line}");
        }
    };

    let mut stdin = match args.stdin {
        StdinArg::Lines => read_stdin(),
        StdinArg::Raw => read_stdin_raw(),
    };
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut n = 0usize;
    let acks = args.ack == Some(AckArg::Reply);
    let signal = shutdown_signal();
    futures::pin_mut!(signal);
    let mut signalled = false;
    let mut stdin_open = true;
    let mut session_over = false;
    while stdin_open && !session_over {
        tokio::select! {
            line = stdin.recv() => {
                let buf = match line {
                    None => {
                        stdin_open = false;
                        continue;
                    }
                    Some(StdinLine::Line(l)) => {
                        n += 1;
                        l
                    }
                    Some(StdinLine::TooLong(prefix)) => {
                        n += 1;
                        undelivered += 1;
                        let why = format!("line over {MAX_STDIN_LINE} bytes");
                        report(n, &Shown(&prefix).to_string(), &why, None);
                        continue;
                    }
                };
                let text = Shown(&buf).to_string();
                match speaker.ask(&buf, acks) {
                    Ok(Ask::Skip) => {}
                    Ok(Ask::Request(m)) => {
                        let r = handle.request(m, delivery);
                        pending.push_back(async move { (n, text, r.await.map(Some)) }.boxed());
                    }
                    Ok(Ask::Send(m)) => {
                        let r = handle.send(m, delivery);
                        pending.push_back(async move { (n, text, r.await.map(|()| None)) }.boxed());
                    }
                    Ok(Ask::Subscribe(subject)) => {
                        let sub = handle.subscribe(nats::subscription(&subject, None));
                        sub_tasks.push(tokio::spawn(print_messages(sub, out.clone(), n, text)));
                    }
                    Err(why) => {
                        undelivered += 1;
                        if speaker.is_nats() || args.preset == Preset::Redis {
                            eprintln!("redial: line {n}: {why}");
                        }
                        report(n, &text, "not sent", None);
                    }
                }
            }
            Some((n, line, r)) = pending.next(), if !pending.is_empty() => {
                if !settle(&out, args.preset, n, &line, r, &report, &mut undelivered).await {
                    break;
                }
            }
            _ = &mut signal => { signalled = true; break }
            _ = &mut over_rx => session_over = true,
            _ = &mut stdout_gone => break,
        }
        if stdout_closed.load(Ordering::SeqCst) {
            break;
        }
    }
    if stdout_closed.load(Ordering::SeqCst) {
        eprintln!("redial: stdout was closed: closing the session");
    }
    // Drain: deliver what is queued, within --drain, then settle every line.
    let close = handle.close(CloseMode::Graceful { drain: args.drain });
    let bound = args.drain + Duration::from_secs(1);
    let second = async {
        if signalled {
            shutdown_signal().await;
        } else {
            signal.await;
        }
    };
    tokio::select! {
        _ = close => {}
        _ = tokio::time::sleep(bound) => eprintln!("redial: the drain did not end in time"),
        _ = second => {
            eprintln!("redial: second signal: exiting now");
            return Ok(EXIT_UNDELIVERED);
        }
    }
    let rest = async {
        while let Some((n, line, r)) = pending.next().await {
            settle(&out, args.preset, n, &line, r, &report, &mut undelivered).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(1), rest)
        .await
        .is_err()
    {
        // Stdout is stalled: the lines are settled, printing them waits no longer.
        eprintln!("redial: stdout is not taking output; exiting");
    }
    drop(handle);
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = ev_task.await;
        let _ = inbound_task.await;
        for t in sub_tasks {
            let _ = t.await;
        }
        let _ = writer.await;
    })
    .await;
    let record_failed = record_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let (Some(e), Some(path)) = (&record_failed, &args.record) {
        eprintln!("redial: recording to {} failed: {e}", path.display());
    }
    let _ = std::io::stderr().flush();
    Ok(if gave_up.load(Ordering::SeqCst) {
        EXIT_GAVE_UP
    } else if undelivered > 0 {
        EXIT_UNDELIVERED
    } else if stdout_closed.load(Ordering::SeqCst) {
        EXIT_STDOUT_CLOSED
    } else if record_failed.is_some() {
        1
    } else {
        0
    })
}

/// Prints a settled line's reply, or reports it undelivered. `false` once stdout is gone.
async fn settle(
    out: &Out,
    preset: Preset,
    n: usize,
    line: &str,
    r: Result<Option<Reply>, Undelivered>,
    report: &impl Fn(usize, &str, &str, Option<&Undelivered>),
    undelivered: &mut u64,
) -> bool {
    match r {
        Ok(None) => true,
        Ok(Some(reply)) => {
            let text = if out.json {
                let mut v = serde_json::json!({"line": n, "request": line, "error": reply.refused});
                match preset {
                    Preset::Redis => {
                        v["reply"] = reply_text(preset, &reply.body, reply.refused).into()
                    }
                    _ => json_bytes(&mut v, "reply", &reply.body),
                }
                v.to_string().into_bytes()
            } else {
                reply_bytes(preset, &reply.body, reply.refused)
            };
            out.print(text).await
        }
        Err(u) => {
            *undelivered += 1;
            report(n, line, &format!("{:?}", u.outcome), Some(&u));
            true
        }
    }
}

/// Prints the messages of one NATS subscription, each on one line.
async fn print_messages(
    mut sub: redial_tokio::Subscription,
    out: Arc<Out>,
    n: usize,
    line: String,
) {
    while let Some(m) = sub.next().await {
        let text = if out.json {
            let mut v = serde_json::json!({"line": n, "request": line});
            json_bytes(&mut v, "subject", &m.topic);
            json_bytes(&mut v, "payload", &m.body);
            if !m.reply_to.is_empty() {
                json_bytes(&mut v, "reply_to", &m.reply_to);
            }
            v.to_string()
        } else {
            format!("{} {}", escape(&m.topic), escape(&m.body))
        };
        if !out.print(text).await {
            return;
        }
    }
}

/// Prints what answers nothing: a line protocol's lines, RESP3 pushes.
async fn print_inbound(mut inbound: Inbound, out: Arc<Out>, preset: Preset) {
    while let Some(body) = inbound.next().await {
        let text = if out.json {
            let mut v = serde_json::json!({"line": null});
            match preset {
                Preset::Redis => v["message"] = reply_text(preset, &body, false).into(),
                _ => json_bytes(&mut v, "message", &body),
            }
            v.to_string().into_bytes()
        } else {
            reply_bytes(preset, &body, false)
        };
        if !out.print(text).await {
            return;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_lines_parse() {
        let mut s = Speaker::Nats(Nats::new().with_inbox("_INBOX.t"), 0);
        assert!(
            matches!(s.ask(b"pub a.b PING", false), Ok(Ask::Send(m)) if m == b"PUB a.b 4\r\nPING\r\n")
        );
        assert!(
            matches!(s.ask(b"pub a.b +OK with spaces", false), Ok(Ask::Send(m)) if m.ends_with(b"+OK with spaces\r\n"))
        );
        assert!(matches!(s.ask(b"sub x.*", false), Ok(Ask::Subscribe(x)) if x == "x.*"));
        assert!(
            matches!(s.ask(b"req svc hi", false), Ok(Ask::Request(m)) if m.starts_with(b"PUB svc _INBOX.t.1 2\r\n"))
        );
        assert!(matches!(s.ask(b"", false), Ok(Ask::Skip)));
        assert!(s.ask(b"frob x", false).is_err());
        assert!(s.ask(b"sub", false).is_err());
    }

    #[test]
    fn redis_lines_split_like_redis_cli() {
        let mut s = Speaker::Redis;
        assert!(
            matches!(s.ask(br#"SET a "x\r\ny""#, false), Ok(Ask::Request(m)) if m == cmd(["SET", "a", "x\r\ny"]))
        );
        assert!(s.ask(br#"SET a "open"#, false).is_err());
        assert!(matches!(s.ask(b"   ", false), Ok(Ask::Skip)));
    }

    #[test]
    fn escape_keeps_one_line() {
        assert_eq!(escape(b"a\r\nb\\\xff"), "a\\r\\nb\\\\\\xff");
    }
}
