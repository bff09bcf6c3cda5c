//! The blocking waits against a real socket: a receipt or a stream wait that times out gives
//! back (or takes) nothing, and what it waited for still arrives.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use redial_blocking::{CloseMode, Config, Delivery, Outcome, TimedOut, Wait, WaitNext};

/// Accepts one connection; hands back the lines it reads, and writes each line it is given
/// (when the test says, so the session is idle then: only the socket's readiness can wake it).
fn line_server() -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Sender<&'static str>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (read_tx, read_rx) = std::sync::mpsc::channel();
    let (write_tx, write_rx) = std::sync::mpsc::channel::<&'static str>();
    std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        let mut w = sock.try_clone().expect("clone");
        std::thread::spawn(move || {
            for line in write_rx {
                if w.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        });
        for line in BufReader::new(sock).lines() {
            let Ok(line) = line else { break };
            if read_tx.send(line).is_err() {
                break;
            }
        }
    });
    (addr, read_rx, write_tx)
}

#[test]
fn send_wait_and_receive_with_timeouts() {
    let (addr, lines, say) = line_server();
    // No heartbeat: no timer wakes the session, only its socket and its handles.
    let (handle, mut inbound, _events) = redial_blocking::builder(addr)
        .config(Config::default().with_heartbeat(None))
        .spawn()
        .expect("config");

    // Nothing has been sent, so nothing can arrive: the wait times out and takes nothing.
    let t = Instant::now();
    assert_eq!(
        inbound.next_timeout(Duration::from_millis(50)),
        Err(TimedOut)
    );
    assert!(t.elapsed() >= Duration::from_millis(50));

    handle
        .send(b"first".to_vec(), Delivery::AtMostOnce)
        .wait_timeout(Duration::from_secs(10))
        .expect("settled in time")
        .expect("delivered");
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(10)).expect("line"),
        "first"
    );
    // Idle now (nothing to write, no deadline): the server's line must wake it.
    assert_eq!(
        inbound.next_timeout(Duration::from_millis(50)),
        Err(TimedOut)
    );
    say.send("hello from the server\n").expect("server");
    // Bounded below the session's next timer wake-up (5 s after the start: the connect
    // deadline, which the driver's timer keeps armed rather than re-arm), so only the
    // socket's readiness can deliver it in time.
    let got = inbound
        .next_timeout(Duration::from_secs(3))
        .expect("in time")
        .expect("the stream is open");
    assert_eq!(got, b"hello from the server");
    handle.close(CloseMode::Immediate).wait();
    assert_eq!(
        inbound.next_blocking(),
        None,
        "the stream ends with the session"
    );
}

#[test]
fn a_receipt_that_times_out_comes_back_and_still_settles() {
    // Nobody listens here: the message waits in the queue across attempts.
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = dead.local_addr().expect("addr");
    drop(dead);
    let (handle, _inbound, _events) = redial_blocking::builder(addr).spawn().expect("config");
    let receipt = handle.send(b"queued".to_vec(), Delivery::AtMostOnce);
    let receipt = match receipt.wait_timeout(Duration::from_millis(100)) {
        Err(receipt) => receipt,
        Ok(r) => panic!("settled without a server: {r:?}"),
    };
    // Closing abandons what was never written: the returned receipt says so, with the payload.
    handle.close(CloseMode::Immediate).wait();
    let undelivered = receipt.wait().expect_err("never delivered");
    assert_eq!(
        undelivered.outcome,
        Outcome::Abandoned(redial_blocking::AbandonReason::Closed)
    );
    assert_eq!(undelivered.payload, b"queued");
}
