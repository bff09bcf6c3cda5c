//! `redial pipe`'s arguments: what they mean for the session's configuration, and the
//! combinations refused before anything runs.

use super::*;

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
    /// WebSocket (chosen by a `ws://` or `wss://` target): one text message per line, one
    /// line (escaped) per message received.
    Ws,
}

/// `--header 'Name: value'`: kept as given and checked by the pipe, so a malformed one is
/// refused without its value ever being printed (clap would echo it).
#[derive(Clone)]
pub struct HeaderArg(pub(super) String);

impl std::fmt::Debug for HeaderArg {
    // Headers carry credentials: only the name is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.0.split_once(':').map_or("?", |(n, _)| n.trim());
        write!(f, "HeaderArg({name}: <redacted>)")
    }
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
    /// Server addresses (`host:port`), resolved afresh on every attempt, tried in rotation;
    /// or one `etcd://HOST:PORT/PREFIX`: the endpoints registered under the prefix, watched
    /// (the session moves off one that leaves); or one `ws://HOST[:PORT]/PATH` or `wss://…`
    /// URL (WebSocket).
    #[arg(required = true, value_name = "HOST:PORT")]
    pub(super) targets: Vec<String>,
    /// What the server speaks.
    #[arg(long, value_enum, default_value = "plain")]
    pub(super) preset: Preset,
    /// The heartbeat line to send (plain only).
    #[arg(long)]
    pub(super) ping: Option<String>,
    /// The line that answers it (plain only).
    #[arg(long)]
    pub(super) pong: Option<String>,
    /// Read silence before a PING.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(super) interval: Duration,
    /// Further silence before the connection is declared dead.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(super) timeout: Duration,
    /// Disable the heartbeat.
    #[arg(long)]
    pub(super) no_heartbeat: bool,
    #[command(flatten)]
    pub(super) backoff: BackoffArgs,
    /// Backoff jitter: full, none, equal, decorrelated, or a fraction for proportional.
    #[arg(long, default_value = "full", value_parser = parse_jitter)]
    pub(super) jitter: Jitter,
    /// Give up after this many consecutive failures (0: no limit). Given alone, it alone
    /// decides; with neither limit given: 10 failures and 5 minutes, both reached.
    #[arg(long)]
    pub(super) max_failures: Option<u32>,
    /// Give up after failing for this long (0s: no limit). Given alone, it alone decides.
    #[arg(long, value_parser = parse_duration)]
    pub(super) max_elapsed: Option<Duration>,
    /// With both limits given: give up when either is reached (default: both).
    #[arg(long)]
    pub(super) give_up_either: bool,
    /// Per-attempt connect deadline.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(super) connect_timeout: Duration,
    /// A connection must stay up this long to reset the backoff.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(super) stable_after: Duration,
    /// Lines held while disconnected (more are rejected and reported).
    #[arg(long, default_value_t = 1024)]
    pub(super) queue: usize,
    /// Replay policy for unconfirmed lines.
    #[arg(long, value_enum, default_value = "at-most-once")]
    pub(super) delivery: DeliveryArg,
    /// How lines are confirmed: plain defaults to `none`; redis and nats replies always
    /// confirm their requests.
    #[arg(long, value_enum)]
    pub(super) ack: Option<AckArg>,
    /// RESP3 (`HELLO 3`) instead of RESP2 (redis only).
    #[arg(long)]
    pub(super) resp3: bool,
    /// Lifecycle events on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub(super) events: EventsArg,
    /// How replies and messages are printed on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub(super) output: OutputArg,
    /// Record every call into the core as JSON lines in FILE (for `redial replay`).
    #[arg(long, value_name = "FILE")]
    pub(super) record: Option<PathBuf>,
    #[command(flatten)]
    pub(super) tls: crate::tls_args::TlsArgs,
    /// What stdin holds.
    #[arg(long, value_enum, default_value = "lines")]
    pub(super) stdin: StdinArg,
    /// Serve the session's metrics in the Prometheus text format over HTTP on ADDR
    /// (`GET /metrics`; port 0 picks one, printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub(super) metrics: Option<std::net::SocketAddr>,
    /// A header for the WebSocket Upgrade request, `'Name: value'` (repeatable). Its value
    /// never appears in events, logs, records or errors.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = |s: &str| Ok::<_, std::convert::Infallible>(HeaderArg(s.to_owned())))]
    pub(super) headers: Vec<HeaderArg>,
    /// A WebSocket subprotocol to offer (repeatable, in order of preference).
    #[arg(long = "subprotocol", value_name = "P")]
    pub(super) subprotocols: Vec<String>,
    /// Send WebSocket messages as binary frames instead of text.
    #[arg(long)]
    pub(super) binary: bool,
    /// How long to keep delivering after stdin ends or a signal arrives.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(super) drain: Duration,
}

/// Resolves every `host:port` afresh on each attempt.
pub(super) struct Hosts(pub(super) Vec<String>);

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

pub(super) fn usage(msg: impl Into<String>) -> Box<dyn std::error::Error> {
    Box::new(UsageError(msg.into()))
}

impl PipeArgs {
    pub(super) fn config(&self) -> Result<Config, UsageError> {
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
    pub(super) fn give_up(&self) -> GiveUp {
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

    /// A `ws://HOST[:PORT]/PATH` or `wss://…` target: the WebSocket protocol for it, with the
    /// target rewritten to `HOST:PORT` for the dialer (and TLS switched on for `wss`).
    /// `None` for other targets.
    pub(super) fn websocket(&mut self) -> Result<Option<WebSocket>, Box<dyn std::error::Error>> {
        let Some(first) = self.targets.first() else {
            return Ok(None);
        };
        let (tls, rest) = if let Some(r) = first.strip_prefix("ws://") {
            (false, r)
        } else if let Some(r) = first.strip_prefix("wss://") {
            (true, r)
        } else {
            if !self.headers.is_empty() || !self.subprotocols.is_empty() || self.binary {
                return Err(usage(
                    "--header, --subprotocol and --binary are for ws:// and wss:// targets",
                ));
            }
            return Ok(None);
        };
        if self.targets.len() > 1 {
            return Err(usage("one ws:// or wss:// target at a time"));
        }
        if !matches!(self.preset, Preset::Plain | Preset::Ws) {
            return Err(usage("a ws:// target speaks WebSocket: no --preset"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(usage(format!(
                "target \"{}\" has no host (credentials in the URL are not supported: use --header)",
                Shown(first.split('@').next_back().unwrap_or("").as_bytes())
            )));
        }
        // A port is explicit after the last colon, outside IPv6 brackets.
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(h, p)| !p.contains(']') && (!h.contains('[') || h.ends_with(']')));
        let dial = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        let mut ws = WebSocket::new(authority, path);
        for h in &self.headers {
            let Some((name, value)) = h.0.split_once(':') else {
                return Err(usage("--header must be 'Name: value' (value not shown)"));
            };
            ws = ws.with_header(name.trim(), value.trim());
        }
        for p in &self.subprotocols {
            ws = ws.with_subprotocol(p.clone());
        }
        if self.binary {
            ws = ws.binary();
        }
        redial_core::proto::Protocol::validate(&ws)
            .map_err(|e| usage(format!("invalid WebSocket settings: {e}")))?;
        self.targets = vec![dial];
        self.preset = Preset::Ws;
        if tls {
            self.tls.tls = true;
        }
        Ok(Some(ws))
    }

    /// Flags that parse but do not fit the preset.
    pub(super) fn check(&self) -> Result<(), Box<dyn std::error::Error>> {
        for t in &self.targets {
            if t.starts_with("etcd://") {
                if self.targets.len() > 1 {
                    return Err(usage("an etcd:// target stands alone".to_string()));
                }
                redial_etcd::EtcdConfig::from_url(t)
                    .map_err(|e| usage(format!("target {}: {e}", crate::registry::shown(t))))?;
                continue;
            }
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
        if self.preset == Preset::Ws
            && (self.ping.is_some()
                || self.pong.is_some()
                || self.ack.is_some()
                || self.stdin == StdinArg::Raw)
        {
            return Err(usage(
                "WebSocket has its own heartbeat and framing: no --ping, --pong, --ack or --stdin raw",
            ));
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

    pub(super) fn line_protocol(&self) -> Framed<LineCodec> {
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
