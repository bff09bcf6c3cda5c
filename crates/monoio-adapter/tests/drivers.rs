//! A session exchanges data on each monoio driver: io_uring and epoll.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use futures::StreamExt;
use redial_monoio::{CloseMode, Delivery, Driver};

/// Echoes one connection's lines back, prefixed.
fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        let mut w = sock.try_clone().expect("clone");
        for line in BufReader::new(sock).lines() {
            let Ok(line) = line else { break };
            if writeln!(w, "echo:{line}").is_err() {
                break;
            }
        }
    });
    addr
}

async fn exchange(addr: std::net::SocketAddr) {
    let (handle, mut inbound, _events) =
        redial_monoio::builder(addr).spawn_local().expect("config");
    handle
        .send(b"CR\r inside".to_vec(), Delivery::AtMostOnce)
        .await
        .expect_err("a line codec refuses a bare CR inside a line");
    handle
        .send(b"hello".to_vec(), Delivery::AtMostOnce)
        .await
        .expect("delivered");
    let got = monoio::time::timeout(Duration::from_secs(10), inbound.next())
        .await
        .expect("echo in time");
    assert_eq!(got.as_deref(), Some(&b"echo:hello"[..]));
    handle.close(CloseMode::Immediate).await;
}

#[test]
fn epoll_driver() {
    redial_monoio::block_on_with(Driver::Epoll, exchange(echo_server())).expect("epoll runtime");
}

#[test]
fn io_uring_driver() {
    match redial_monoio::block_on_with(Driver::IoUring, exchange(echo_server())) {
        Ok(()) => {}
        // Where the kernel (or a sandbox) refuses io_uring, only epoll can be tested; CI's
        // machines allow it, so there this is a failure.
        Err(e) if std::env::var_os("REDIAL_REQUIRE_REAL").is_none() => {
            println!("SKIPPED: io_uring unavailable here: {e}");
        }
        Err(e) => panic!("io_uring runtime: {e}"),
    }
}
