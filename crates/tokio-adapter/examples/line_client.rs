//! A reconnecting Redis client on tokio that takes commands from stdin, one per line, like
//! `redis-cli`: each line is split into arguments (redis-cli's quoting: `SET k "a b\r\n"`),
//! sent as one request, and its reply printed in redis-cli's form. Lifecycle events (attempts
//! with their address and OS error, connects, disconnects and why, RTT samples) go to stderr.
//!
//! ```text
//! cargo run -p redial-tokio --example line_client -- 127.0.0.1:6379
//! ```
//!
//! Stop or restart the server while it runs: commands typed meanwhile wait in the queue and
//! are sent, in order, after the reconnect; a command caught in flight when the connection
//! died comes back "in doubt" (sent at most once, so never resent blindly). Replies are matched
//! to their commands by the RESP grammar, so a reply is never printed for the wrong command,
//! and the heartbeat's PINGs never show. End stdin (Ctrl-D) to close gracefully.
//! `RUST_LOG=redial_driver=debug` for more.

use std::io::BufRead;

use futures::channel::mpsc;
use futures::StreamExt;
use redial_tokio::core::proto::resp::{cmd, split_args, Resp, Value};
use redial_tokio::{Delivery, Receipt, Reply};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let target = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6379".into());
    let (handle, _inbound, mut events) = redial_tokio::builder(target)
        .protocol(Resp::new())
        .spawn()?;

    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            eprintln!(
                "[{:?}] {:?} {}",
                e.at,
                e.notification,
                e.detail.unwrap_or_default()
            );
        }
    });

    // Stdin is blocking: read it on a thread, which sends each command and hands its receipt
    // over in order. When stdin ends, the last handle is dropped: the session drains what is
    // queued (a short graceful close), then ends.
    let (receipts, mut ordered) = mpsc::unbounded::<(String, Receipt<Reply>)>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match split_args(line.as_bytes()) {
                Ok(args) if args.is_empty() => continue,
                Ok(args) => {
                    let receipt = handle.request(cmd(args), Delivery::AtMostOnce);
                    if receipts.unbounded_send((line, receipt)).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("{line:?}: {e}"),
            }
        }
    });

    // Replies in the order the commands were typed.
    while let Some((line, receipt)) = ordered.next().await {
        match receipt.await {
            Ok(reply) => match Value::parse(&reply.body) {
                Ok((value, _)) => println!("{}", value.to_cli()),
                Err(e) => eprintln!("{line}: unreadable reply: {e}"),
            },
            Err(u) => eprintln!("{line}: {u}"),
        }
    }
    Ok(())
}
