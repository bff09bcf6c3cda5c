//! `redial pipe`: stdin lines to a server, its replies and messages to stdout, through a
//! reconnecting, heartbeating session; lifecycle events and undelivered lines on stderr.
//!
//! Three presets: `plain` (a line protocol: each line a message, the server's lines printed),
//! `redis` (each line a command split as redis-cli splits it, each reply printed as redis-cli
//! prints it) and `nats` (`pub`, `sub` and `req` lines; every message and reply on one line).
//! A `ws://` or `wss://` target speaks WebSocket: each line a text message, each message
//! received one (escaped) line.

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
use redial_core::proto::ws::WebSocket;
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

mod args;
mod metrics;
mod print;
mod speak;
mod stdin;

pub use args::PipeArgs;
use args::*;
use print::*;
use speak::*;
use stdin::*;

/// Runs the pipe. Returns the process exit code on a normal end.
pub fn run(mut args: PipeArgs) -> Result<u8, Box<dyn std::error::Error>> {
    let ws = args.websocket()?;
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
            Preset::Ws => match ws {
                Some(p) => pipe(&args, cfg, p, Speaker::Plain).await,
                None => Err(usage("--preset ws is chosen by a ws:// or wss:// target")),
            },
        }
    });
    // tokio reads stdin on a blocking thread that only returns at the next line: do not wait.
    rt.shutdown_background();
    code
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
        [one] if one.starts_with("etcd://") => crate::registry::target(one)?,
        [one] => Target::from(one.clone()),
        many => Target::discover(Hosts(many.to_vec())),
    };
    let handshake = match args.preset {
        // nats-server sends INFO in plaintext, then expects TLS.
        Preset::Nats => {
            crate::tls_args::Handshake::AfterGreeting(crate::tls_args::Greeting::default())
        }
        _ => crate::tls_args::Handshake::Immediate,
    };
    let connector = args
        .tls
        .connector(handshake)
        .map_err(|e| UsageError(e.to_string()))?;
    if let Some(addr) = args.metrics {
        let bound = metrics::serve(addr).await?;
        match args.events {
            EventsArg::Json => eprintln!(
                "{}",
                serde_json::json!({"event": "metrics", "addr": bound.to_string()})
            ),
            _ => eprintln!("redial: metrics on http://{bound}/metrics"),
        }
    }
    let mut builder = redial_tokio::builder(target)
        .connector(connector)
        .config(cfg)
        .protocol(protocol)
        .metrics_name("pipe");
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
