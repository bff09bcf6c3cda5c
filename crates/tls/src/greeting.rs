//! A plaintext greeting line before TLS: NATS servers send `INFO` first, then expect the
//! client to start TLS. The line is kept and handed to the protocol after the handshake.

use std::io;

use futures::io::{AsyncRead, AsyncReadExt};
use redial_driver::{ConnectError, NetError};

/// The default bound of a greeting line: NATS's default maximum control line (4 KiB) is far
/// below it; an `INFO` listing a large cluster's URLs still fits.
pub const DEFAULT_MAX_GREETING: usize = 64 << 10;

/// A plaintext greeting line (ending in `\n`), at most `max_len` bytes long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// The longest line accepted; a longer one fails the attempt (a protocol error).
    pub max_len: usize,
}

impl Default for Greeting {
    fn default() -> Self {
        Greeting {
            max_len: DEFAULT_MAX_GREETING,
        }
    }
}

/// Reads one plaintext line (through its `\n`) from `stream`, before TLS starts.
///
/// The server must then wait for our handshake: bytes after the line (which would belong to
/// neither the greeting nor TLS) are a protocol error, as is a line over `greeting.max_len`.
///
/// # Errors
/// EOF or an I/O error (retryable, classified as I/O), or a protocol error (retryable).
pub async fn read_greeting_line<S: AsyncRead + Unpin>(
    stream: &mut S,
    greeting: Greeting,
) -> Result<Vec<u8>, ConnectError> {
    let protocol = |what: String| {
        ConnectError::new(
            NetError::Protocol,
            io::Error::new(io::ErrorKind::InvalidData, what),
        )
    };
    let mut line = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before its greeting line ended",
            )
            .into());
        }
        let got = &chunk[..n];
        if let Some(end) = got.iter().position(|&b| b == b'\n') {
            if end + 1 != n {
                return Err(protocol(format!(
                    "the server sent {} bytes after its greeting line, before TLS started",
                    n - end - 1
                )));
            }
            line.extend_from_slice(got);
            return Ok(line);
        }
        line.extend_from_slice(got);
        if line.len() > greeting.max_len {
            return Err(protocol(format!(
                "greeting line longer than {} bytes before TLS",
                greeting.max_len
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn reads_one_line_and_refuses_more() {
        let mut s: &[u8] = b"INFO {\"tls_required\":true}\r\n";
        let line = block_on(read_greeting_line(&mut s, Greeting::default())).unwrap();
        assert_eq!(line, b"INFO {\"tls_required\":true}\r\n");
        let mut s: &[u8] = b"INFO {}\r\nPING\r\n";
        let e = block_on(read_greeting_line(&mut s, Greeting::default())).unwrap_err();
        assert_eq!(e.class, NetError::Protocol);
        let mut s: &[u8] = b"INFO {";
        let e = block_on(read_greeting_line(&mut s, Greeting::default())).unwrap_err();
        assert!(e.class.is_retryable(), "{e}");
        let long = vec![b'x'; 5000];
        let mut s: &[u8] = &long;
        let e = block_on(read_greeting_line(&mut s, Greeting { max_len: 4096 })).unwrap_err();
        assert_eq!(e.class, NetError::Protocol);
    }
}
