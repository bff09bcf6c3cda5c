//! The live connection: its stream, the bytes kept back for the next read, and the write in
//! progress.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};
use redial_core::Epoch;

/// Bytes read at most per read into the heap buffer.
const READ_CHUNK: usize = 64 << 10;
/// The stack buffer an idle connection reads into: an idle session owns no read buffer.
pub(crate) const STACK_READ: usize = 4 << 10;
/// A write buffer larger than this is freed once written, so a burst does not pin memory.
const WRITE_KEEP: usize = 256 << 10;

/// What a read produced.
pub(crate) enum Read {
    /// `n` new bytes (in `stack[..n]` when `in_stack`, else at the end of the kept bytes).
    Bytes {
        n: usize,
        in_stack: bool,
    },
    /// The peer closed its side.
    Eof,
    Failed(io::Error),
}

pub(crate) struct Conn<S> {
    pub(crate) epoch: Epoch,
    stream: S,
    /// The heap read buffer (zeroed once when it grows); `rx[..kept]` are bytes read but not
    /// used yet (a partial unit, or units the session could not take).
    rx: Vec<u8>,
    kept: usize,
    /// The last read filled its buffer: more is waiting, read into a large buffer.
    busy: bool,
    /// The write in progress: its bytes and how many are written.
    pub(crate) tx: Vec<u8>,
    tx_pos: Option<usize>,
    /// Reading ended (EOF or an error).
    pub(crate) read_done: bool,
    /// The kept bytes wait for the session to want more (reading paused).
    pub(crate) stalled: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub(crate) fn new(epoch: Epoch, stream: S) -> Self {
        Conn {
            epoch,
            stream,
            rx: Vec::new(),
            kept: 0,
            busy: false,
            tx: Vec::new(),
            tx_pos: None,
            read_done: false,
            stalled: false,
        }
    }

    pub(crate) fn writing(&self) -> bool {
        self.tx_pos.is_some()
    }

    /// Starts writing `tx` (filled by the session's `encode_transmit`).
    pub(crate) fn start_write(&mut self) {
        self.tx_pos = Some(0);
    }

    /// Writes the transmit in progress and flushes: `Ready` when done (or failed).
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(pos) = &mut self.tx_pos else {
            return Poll::Pending;
        };
        while *pos < self.tx.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.tx[*pos..]) {
                Poll::Ready(Ok(0)) => {
                    return self.write_ended(Err(io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => *pos += n,
                Poll::Ready(Err(e)) => return self.write_ended(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(r) => self.write_ended(r),
            Poll::Pending => Poll::Pending,
        }
    }

    fn write_ended(&mut self, r: io::Result<()>) -> Poll<io::Result<()>> {
        self.tx_pos = None;
        self.tx.clear();
        if self.tx.capacity() > WRITE_KEEP {
            self.tx = Vec::new();
        }
        Poll::Ready(r)
    }

    /// The bytes kept from earlier reads.
    pub(crate) fn kept(&self) -> &[u8] {
        &self.rx[..self.kept]
    }

    /// Reads what is there: into `stack` when nothing is kept and the connection is not busy
    /// (an idle session keeps no heap buffer), else after the kept bytes.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        stack: &mut [u8; STACK_READ],
        max: usize,
    ) -> Poll<Read> {
        let in_stack = self.kept == 0 && !self.busy;
        let r = if in_stack {
            Pin::new(&mut self.stream).poll_read(cx, stack)
        } else {
            // Room for one more chunk, never far beyond the protocol's largest unit (the
            // session refuses a unit over it before the buffer gets there).
            let want = (self.kept + READ_CHUNK).min(max.saturating_add(64 + STACK_READ));
            if self.rx.len() < want.max(self.kept + 1) {
                self.rx.resize(want.max(self.kept + 1), 0);
            }
            let r = Pin::new(&mut self.stream).poll_read(cx, &mut self.rx[self.kept..]);
            if let Poll::Ready(Ok(n)) = &r {
                self.kept += n;
            }
            r
        };
        match r {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) => {
                self.read_done = true;
                Poll::Ready(Read::Eof)
            }
            Poll::Ready(Ok(n)) => {
                // A read that filled its buffer: more is probably waiting.
                self.busy = if in_stack {
                    n == STACK_READ
                } else {
                    n >= READ_CHUNK / 2
                };
                Poll::Ready(Read::Bytes { n, in_stack })
            }
            Poll::Ready(Err(e)) => {
                self.read_done = true;
                Poll::Ready(Read::Failed(e))
            }
        }
    }

    /// Keeps `bytes` (the unused rest of a stack read) for the next read.
    pub(crate) fn keep(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let end = self.kept + bytes.len();
        if self.rx.len() < end {
            self.rx.resize(end.max(2 * STACK_READ), 0);
        }
        self.rx[self.kept..end].copy_from_slice(bytes);
        self.kept = end;
    }

    /// The session used `used` of the kept bytes.
    pub(crate) fn consume(&mut self, used: usize) {
        let used = used.min(self.kept);
        self.rx.copy_within(used..self.kept, 0);
        self.kept -= used;
        if self.kept == 0 && !self.busy {
            // Idle again: no buffer held.
            self.rx = Vec::new();
        }
    }
}
