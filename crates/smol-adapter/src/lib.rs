//! # redial-smol
//!
//! Reconnecting, heartbeating TCP sessions on smol / async-io: the [`redial_core`](redial_driver::core) state
//! machine driven by the shared [`redial_driver`] loop, with `async-io` sockets and timers and
//! DNS on smol's blocking pool.
//!
//! ## Quick start
//!
//! ```no_run
//! use futures::StreamExt;
//! use redial_smol::{Config, Delivery, LineCodec};
//!
//! redial_smol::block_on(async {
//!     let (handle, mut inbound, mut events) = redial_smol::builder("127.0.0.1:6379")
//!         .config(Config::default())
//!         .codec(LineCodec::redis())
//!         .spawn()
//!         .expect("valid config");
//!
//!     // Queued at once, delivered when connected (across reconnects).
//!     let receipt = handle.send(b"SET greeting hello".to_vec(), Delivery::AtMostOnce);
//!     match receipt.await {
//!         Ok(()) => println!("written"),
//!         Err(undelivered) => println!("{:?}: {} bytes back", undelivered.outcome, undelivered.payload.len()),
//!     }
//!     println!("reply: {:?}", inbound.next().await.map(String::from_utf8));
//!     smol::spawn(async move {
//!         while let Some(e) = events.next().await {
//!             println!("{:?} {:?}", e.notification, e.detail);
//!         }
//!     })
//!     .detach();
//!     handle.close(redial_smol::CloseMode::Graceful { drain: std::time::Duration::from_secs(1) }).await;
//! });
//! ```
//!
//! Everything but [`Smol`], [`builder`] and [`block_on`] is re-exported from
//! [`redial_driver`], so `redial-tokio` has the very same types: switching runtimes changes
//! the imports and the spawn call, nothing else.
//!
//! Sessions are spawned on smol's global executor (`smol::spawn`), which runs on its own
//! threads; [`block_on`] only drives the future you give it.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Instant as StdInstant;

use smol::{Async, Timer};
use socket2::SockRef;

pub use redial_driver::*;

/// The smol / async-io runtime, as the driver sees it. Sessions run on smol's global
/// executor; no runtime context is needed to spawn them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Smol;

/// A session builder on smol: `Builder::new(Smol, target)`.
pub fn builder(target: impl Into<Target>) -> Builder<Smol> {
    Builder::new(Smol, target)
}

/// Runs `fut` to completion on the current thread (`smol::block_on`).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    smol::block_on(fut)
}

/// One half of an async-io TCP stream; the read and write halves share the socket.
pub type Half = smol::net::TcpStream;

fn split(stream: Async<TcpStream>) -> (Half, Half) {
    let s = Half::from(stream);
    (s.clone(), s)
}

impl Runtime for Smol {
    type Reader = Half;
    type Writer = Half;
    type Sleep = Timer;

    fn now(&self) -> StdInstant {
        StdInstant::now()
    }

    fn sleep_until(&self, deadline: StdInstant) -> Timer {
        Timer::at(deadline)
    }

    fn connect(
        &self,
        addr: SocketAddr,
        options: &SocketOptions,
    ) -> impl Future<Output = io::Result<(Half, Half)>> + Send + 'static {
        let options = *options;
        async move {
            let stream = Async::<TcpStream>::connect(addr).await?;
            options.apply(SockRef::from(stream.get_ref()))?;
            Ok(split(stream))
        }
    }

    fn register(&self, stream: TcpStream) -> io::Result<(Half, Half)> {
        Ok(split(Async::new(stream)?))
    }

    fn resolve(
        &self,
        host: String,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static {
        smol::unblock(move || Ok((host.as_str(), port).to_socket_addrs()?.collect()))
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(task).detach();
    }
}
