//! Driving the core yourself: a blocking std loop against Redis, no async runtime, no driver.
//!
//! ```text
//! cargo run -p redial-core --example blocking -- 127.0.0.1:6379 [KEY]
//! ```
//!
//! The host does only I/O; every decision is the core's. The loop is the whole contract:
//!
//! 1. `poll(now)` until it says `Wait { until }`, doing what each action asks and reporting
//!    back with `handle_input` (each input carries the action's epoch, so a late answer about
//!    an old socket is ignored by the core, never misapplied);
//! 2. `Transmit`: `encode_transmit` into your buffer, write all of it, then `Written`;
//! 3. while waiting: read with a timeout of `until - now`; give every read to `handle_read`
//!    (it decodes, attributes replies to their requests, answers heartbeats) and keep the
//!    bytes it did not use, in front of the next read's;
//! 4. errors go in as `NetError::from_io(&e)`: the core classifies and decides.
//!
//! A read blocks this thread, so a write the core asks for while we read waits for the read
//! timeout (at most until the core's next deadline). A program that must write at any moment
//! uses the driver (`redial-blocking` for threads, or an async adapter).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant as StdInstant};

use redial_core::proto::resp::{cmd, Resp, Value};
use redial_core::proto::Protocol;
use redial_core::{
    Action, Addr, CloseMode, Config, Delivery, Epoch, Handled, Input, Instant, NetError,
    Notification, Received, Session, State,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "127.0.0.1:6379".into());
    let key = args.next().unwrap_or_else(|| "redial:example".into());
    let origin = StdInstant::now();
    let now = || Instant::from_std(origin, StdInstant::now());

    let mut s = Session::new(Config::default(), Resp::new(), now()).expect("valid config");
    // Queued before any connection exists: sent once connected. The value is hostile on
    // purpose: it looks like a RESP reply, and is data all the same.
    let requests = [
        cmd(["SET", key.as_str(), "+PONG\r\n:1\r\n"]),
        cmd(["GET", key.as_str()]),
        cmd(["INCR", &format!("{key}:n")]),
        cmd(["DEL", key.as_str(), &format!("{key}:n")]),
    ];
    let mut pending = Vec::new();
    for r in requests {
        let id = s.enqueue(now(), r, Delivery::AtMostOnce).expect("queued");
        pending.push(id);
    }

    let mut conn: Option<(Epoch, TcpStream)> = None;
    let mut wire = Vec::new();
    let mut rx = vec![0u8; 16 << 10];
    let mut kept = 0usize;
    loop {
        match s.poll(now()) {
            Action::Resolve { epoch } => {
                let input = match target.to_socket_addrs() {
                    Ok(a) => {
                        let addrs: Vec<Addr> = a.map(Addr::from).collect();
                        apply(
                            &mut s,
                            now(),
                            Input::Resolved {
                                epoch,
                                addrs: &addrs,
                            },
                        );
                        continue;
                    }
                    Err(e) => Input::ResolveFailed {
                        epoch,
                        error: NetError::from_resolve_io(&e),
                    },
                };
                apply(&mut s, now(), input);
            }
            Action::Dial { epoch, addr, .. } => {
                let Some(ip) = addr.ip() else { continue };
                let timeout = s.config().connect_timeout;
                let input = match TcpStream::connect_timeout(&ip, timeout) {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        conn = Some((epoch, stream));
                        kept = 0;
                        Input::DialOk { epoch }
                    }
                    Err(e) => {
                        eprintln!("dial {ip}: {e}");
                        Input::DialFailed {
                            epoch,
                            error: NetError::from_io(&e),
                        }
                    }
                };
                apply(&mut s, now(), input);
            }
            Action::Transmit { epoch } => {
                wire.clear();
                s.encode_transmit(&mut wire);
                let input = match &mut conn {
                    Some((e, stream)) if *e == epoch => match stream.write_all(&wire) {
                        Ok(()) => Input::Written { epoch },
                        Err(e) => Input::IoError {
                            epoch,
                            error: NetError::from_io(&e),
                        },
                    },
                    _ => Input::IoError {
                        epoch,
                        error: NetError::Aborted,
                    },
                };
                apply(&mut s, now(), input);
            }
            Action::Close { epoch, .. } => {
                if conn.as_ref().is_some_and(|(e, _)| *e == epoch) {
                    conn = None;
                }
                apply(&mut s, now(), Input::Closed { epoch });
            }
            Action::Notify(Notification::Outcome { id, outcome, .. }) => {
                println!("message {id:?}: {outcome:?}");
                pending.retain(|p| *p != id);
                if pending.is_empty() && s.state() == State::Connected {
                    s.close(
                        now(),
                        CloseMode::Graceful {
                            drain: Duration::from_secs(1),
                        },
                    );
                }
            }
            Action::Notify(n) => eprintln!("event: {n:?}"),
            Action::Wait { until } => {
                if s.state() == State::Closed {
                    break;
                }
                let wait = until.map(|u| u.saturating_duration_since(now()));
                read(&mut s, &mut conn, &mut rx, &mut kept, wait, now());
                if conn.is_none() {
                    // Nothing to read: wait out the core's deadline (a backoff delay).
                    std::thread::sleep(wait.unwrap_or(Duration::from_millis(100)));
                }
            }
            other => eprintln!("action not handled here: {other:?}"),
        }
    }
    println!("closed: {:?}", s.stats());
}

/// Reports an input; one about a socket the core has moved on from is only worth a log line.
fn apply(s: &mut Session<Resp>, now: Instant, input: Input<'_>) {
    if s.handle_input(now, input) == Handled::Stale {
        eprintln!("stale input ignored: {input:?}");
    }
}

/// One read with a timeout, handed to the core: frames decoded and attributed, the rest kept.
fn read(
    s: &mut Session<Resp>,
    conn: &mut Option<(Epoch, TcpStream)>,
    rx: &mut Vec<u8>,
    kept: &mut usize,
    wait: Option<Duration>,
    now: Instant,
) {
    let Some((epoch, stream)) = conn.as_mut() else {
        return;
    };
    let epoch = *epoch;
    // A zero timeout means "block forever" to std: a deadline due now gets the shortest wait.
    let timeout = wait.map(|w| w.max(Duration::from_millis(1)));
    let _ = stream.set_read_timeout(timeout);
    if *kept == rx.len() {
        // A frame longer than the buffer: grow it, up to what the protocol accepts (past
        // that the core has already refused the frame and closed the connection).
        let max = s.protocol().max_frame().max(rx.len());
        rx.resize((rx.len() * 2).min(max).max(rx.len() + 1), 0);
    }
    match stream.read(&mut rx[*kept..]) {
        Ok(0) => {
            apply(s, now, Input::Eof { epoch });
        }
        Ok(n) => {
            let end = *kept + n;
            let (mut units, mut bytes) = (0, 0);
            let used = s.handle_read(now, epoch, &rx[..end], n, &mut |r| {
                units += 1;
                bytes += r.len();
                match r {
                    Received::Reply { id, body, refused } => {
                        let shown = Value::parse(body).map(|(v, _)| v.to_cli());
                        println!("reply to {id:?} (refused: {refused}): {shown:?}");
                    }
                    Received::Message { body, .. } => println!("pushed: {} bytes", body.len()),
                    _ => {}
                }
            });
            // Handed out, not held: the inbound bound's credit comes back at once (a host
            // that queues them gives it back as its consumer takes them).
            if units > 0 {
                s.inbound_taken(now, units, bytes);
            }
            rx.copy_within(used.min(end)..end, 0);
            *kept = end - used.min(end);
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        Err(e) => {
            apply(
                s,
                now,
                Input::IoError {
                    epoch,
                    error: NetError::from_io(&e),
                },
            );
        }
    }
}
