//! A reconnecting line client on smol: stdin lines go out, server lines come back, lifecycle
//! events go to stderr. Against Redis (inline protocol, `PING` → `+PONG` heartbeat):
//!
//! ```text
//! cargo run -p redial-smol --example smol_line_client -- 127.0.0.1:6379
//! ```
//!
//! Stop or restart the server while it runs: queued lines are delivered after the reconnect,
//! lines caught in flight come back "in doubt". `RUST_LOG=redial_driver=debug` for more.

use std::io::BufRead;

use futures::StreamExt;
use redial_smol::{Delivery, LineCodec};
use tracing_subscriber::EnvFilter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let target = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6379".into());
    redial_smol::block_on(async {
        let (handle, mut inbound, mut events) = redial_smol::builder(target)
            .codec(LineCodec::redis())
            .spawn()?;

        smol::spawn(async move {
            while let Some(e) = events.next().await {
                eprintln!(
                    "[{:?}] {:?} {}",
                    e.at,
                    e.notification,
                    e.detail.unwrap_or_default()
                );
            }
        })
        .detach();

        // Stdin is blocking: read it on a thread. When it ends, the last handle is dropped
        // and the session closes gracefully, which ends `inbound`.
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let receipt = handle.send(line.into_bytes(), Delivery::AtMostOnce);
                smol::spawn(async move {
                    if let Err(u) = receipt.await {
                        eprintln!(
                            "not delivered: {:?} {:?}",
                            u.outcome,
                            String::from_utf8_lossy(&u.payload)
                        );
                    }
                })
                .detach();
            }
        });

        while let Some(line) = inbound.next().await {
            println!("{}", String::from_utf8_lossy(&line));
        }
        Ok(())
    })
}
