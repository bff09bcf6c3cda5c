//! Test your reconnect handling against real faults.
//!
//! redial's own test suites run on these pieces; they work just as well for any client that
//! must survive a network that misbehaves, whatever library it uses:
//!
//! - [`proxy::FaultProxy`]: a TCP proxy on loopback whose [`Mode`](proxy::Mode) switches
//!   while connections are live: pass-through, blackhole (the half-open case: nothing flows,
//!   nothing closes), refuse new connects, reset or close every connection, added latency;
//! - [`servers::LineServer`] and [`servers::LenServer`]: scriptable in-process servers
//!   (newline-delimited text and length-prefixed frames) that log what they received, answer
//!   PINGs, reply, go silent, kill connections, stop and come back on the same port;
//! - [`servers::RedisServer`], [`servers::NatsServer`] and [`etcd::EtcdServer`]: real
//!   `redis-server`, `nats-server` and `etcd` child processes on free ports, restarted,
//!   frozen (SIGSTOP) and killed on demand, reaped on drop;
//! - [`netns::NetnsPair`]: two network namespaces joined by a veth pair, cut by link down or
//!   ingress drops, so the kernel itself sees a partition (needs root);
//! - [`wait`]: bounded condition waits, so a test never sleeps for a fixed time.
//!
//! Everything is controlled with plain blocking calls (each server and the proxy run on a
//! thread of their own, with a private tokio runtime), so the same test drives a client on
//! tokio, smol, or plain threads.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! use redial_testkit::proxy::{FaultProxy, Mode};
//! use redial_testkit::servers::LineServer;
//! use redial_testkit::wait::wait_until;
//!
//! let server = LineServer::start();
//! server.set_reply(Some("+OK "));
//! let proxy = FaultProxy::start(server.addr());
//!
//! // The client under test connects through the proxy...
//! let mut client = TcpStream::connect(proxy.addr()).unwrap();
//! client.write_all(b"hello\n").unwrap();
//! let mut line = String::new();
//! BufReader::new(&client).read_line(&mut line).unwrap();
//! assert_eq!(line, "+OK hello\r\n");
//!
//! // ...then the network goes half-open: the socket stays up, nothing arrives.
//! proxy.set_mode(Mode::Blackhole);
//! client.write_all(b"lost?\n").unwrap();
//! // (your client's heartbeat should notice now)
//! proxy.set_mode(Mode::PassThrough);
//! wait_until(Duration::from_secs(5), "the held line arrives after the heal", || {
//!     server.received().contains(&"lost?".to_string())
//! });
//! ```
//!
//! # Requirements
//!
//! The in-process pieces need nothing. The launchers need the programs (`redis-server`,
//! `nats-server`, `etcd`; Debian: `apt-get install redis-server nats-server etcd-server`)
//! and return [`servers::Unavailable`] without them; [`servers::skip_or_fail`] turns that
//! into a skip, or a failure when `REDIAL_REQUIRE_REAL=1` (set it in CI so nothing skips
//! silently). Network namespaces need root and `iproute2` (plus `iptables` or `nft` for
//! ingress drops). Unix only.
//!
//! # Features
//!
//! This crate has no cargo features.

pub mod etcd;
pub mod netns;
pub mod proxy;
pub mod servers;
pub mod wait;
