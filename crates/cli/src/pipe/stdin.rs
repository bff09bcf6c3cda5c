//! Reading stdin, bounded: lines (invalid UTF-8 is data) or raw chunks.

use super::*;

/// Bytes read from stdin at once in `--stdin raw` (each chunk one message).
pub(super) const RAW_CHUNK: usize = 16 << 10;

/// Reads stdin in chunks, each one message; ends at EOF or an error.
pub(super) fn read_stdin_raw() -> mpsc::Receiver<StdinLine> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; RAW_CHUNK];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    if tx.send(StdinLine::Line(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("redial: reading stdin: {e}");
                    return;
                }
            }
        }
    });
    rx
}

/// The longest stdin line taken (longer ones are reported, not sent).
pub(super) const MAX_STDIN_LINE: usize = 1 << 20;

/// A line of stdin, as bytes (invalid UTF-8 is data, never an abort).
pub(super) enum StdinLine {
    Line(Vec<u8>),
    /// A line over [`MAX_STDIN_LINE`]: its start, for the report (the rest is skipped).
    TooLong(Vec<u8>),
}

/// Reads stdin on a task of its own, line by line, each bounded; ends at EOF or an error.
pub(super) fn read_stdin() -> mpsc::Receiver<StdinLine> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let got = (&mut stdin)
                .take(MAX_STDIN_LINE as u64 + 2)
                .read_until(b'\n', &mut buf)
                .await;
            let line = match got {
                Ok(0) => return,
                Err(e) => {
                    eprintln!("redial: reading stdin: {e}");
                    return;
                }
                Ok(_) if buf.last() == Some(&b'\n') => {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                    if buf.len() > MAX_STDIN_LINE {
                        StdinLine::TooLong(buf[..256].to_vec())
                    } else {
                        StdinLine::Line(std::mem::take(&mut buf))
                    }
                }
                Ok(_) if buf.len() <= MAX_STDIN_LINE => {
                    // The last line, without its newline.
                    StdinLine::Line(std::mem::take(&mut buf))
                }
                Ok(_) => {
                    let start = buf[..256].to_vec();
                    // Skip the rest of it, never holding more than a chunk.
                    loop {
                        buf.clear();
                        match (&mut stdin)
                            .take(64 << 10)
                            .read_until(b'\n', &mut buf)
                            .await
                        {
                            Ok(0) | Err(_) => break,
                            Ok(_) if buf.last() == Some(&b'\n') => break,
                            Ok(_) => {}
                        }
                    }
                    StdinLine::TooLong(start)
                }
            };
            if tx.send(line).await.is_err() {
                return;
            }
        }
    });
    rx
}
