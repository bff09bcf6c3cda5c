//! `redial pipe --metrics ADDR`: the session's metrics in the Prometheus text format, served
//! over plain HTTP at `/metrics` (any path but `/` answers 404). The exporter only renders;
//! this room is the whole HTTP server: one short request per connection, bounded in size and
//! time, so a scraper that stalls or lies costs nothing.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The most of a request read before answering; a scraper's GET is far smaller.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often histograms are folded, between scrapes too (their samples wait until then).
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder (before the session is built, so its metrics register
/// there) and serves it on `addr`. Returns the bound address (port 0 picks one).
pub(super) async fn serve(addr: SocketAddr) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics recorder: {e}"))?;
    redial_tokio::metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    tokio::spawn(answer(conn, handle.clone()));
                }
                // Out of descriptors, say: the session matters more than the scrape.
                Err(e) => {
                    eprintln!("redial: metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(bound)
}

/// Reads one request head and answers it; the connection closes after.
async fn answer(mut conn: TcpStream, handle: PrometheusHandle) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let response = match (method, path) {
        (Some(b"GET"), Some(b"/metrics" | b"/")) => {
            handle.run_upkeep();
            let body = handle.render();
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        (Some(b"GET"), Some(_)) => not(404, "Not Found"),
        _ => not(405, "Method Not Allowed"),
    };
    let _ = conn.write_all(response.as_bytes()).await;
    let _ = conn.shutdown().await;
}

fn not(code: u16, why: &str) -> String {
    format!("HTTP/1.1 {code} {why}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}
