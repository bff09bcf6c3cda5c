//! Writing a trace while the session runs, within its bounds.

use super::*;

/// A recording asked for on the builder, waiting for the session to be built.
pub(crate) struct Pending<P> {
    pub(super) out: Box<dyn Write + Send>,
    pub(super) max_bytes: u64,
    pub(super) describe: fn(&P) -> RecordedProtocol,
}

impl<P: Recordable> Pending<P> {
    pub(crate) fn new(out: Box<dyn Write + Send>, max_bytes: u64) -> Self {
        Pending {
            out,
            max_bytes: max_bytes.min(MAX_TRACE_BYTES),
            describe: P::recorded,
        }
    }
}

impl<P> Pending<P> {
    /// The builder's protocol changed after `record`: the recording cannot describe it.
    pub(crate) fn dropped<Q>(p: Option<Pending<P>>) -> Option<Pending<Q>> {
        if p.is_some() {
            tracing::warn!("Builder::protocol after Builder::record: nothing is recorded");
        }
        None
    }

    pub(crate) fn into_recorder(self, protocol: &P) -> Recorder {
        Recorder {
            out: Some(self.out),
            max_bytes: self.max_bytes,
            written: 0,
            protocol: (self.describe)(protocol),
            line: Vec::new(),
        }
    }
}

/// Writes a trace; used through [`crate::Builder::record`].
pub(crate) struct Recorder {
    pub(super) out: Option<Box<dyn Write + Send>>,
    pub(super) max_bytes: u64,
    pub(super) written: u64,
    pub(super) protocol: RecordedProtocol,
    /// The line being written (kept to reuse its allocation).
    pub(super) line: Vec<u8>,
}

impl Recorder {
    fn line(&mut self, line: &Line) {
        let Some(out) = &mut self.out else { return };
        self.line.clear();
        if let Err(e) = serde_json::to_writer(&mut self.line, line) {
            tracing::warn!(error = %e, "trace recording failed; recording stops");
            self.out = None;
            return;
        }
        self.line.push(b'\n');
        let len = self.line.len() as u64;
        let over_line = self.line.len() > MAX_LINE;
        let over_file = self.written + len + TRUNCATION_RESERVE > self.max_bytes;
        if over_line || over_file {
            let reason = if over_line {
                format!("a line of {len} bytes is over the line limit of {MAX_LINE}")
            } else {
                format!("the trace reached its limit of {} bytes", self.max_bytes)
            };
            self.stop(&reason);
            return;
        }
        let r = out.write_all(&self.line);
        self.written += len;
        if self.line.capacity() > 64 << 10 {
            self.line = Vec::new();
        }
        if let Err(e) = r {
            tracing::warn!(error = %e, "trace recording failed; recording stops");
            self.out = None;
        }
    }

    pub(crate) fn start(&mut self, config: &Config) {
        let protocol = self.protocol.0.clone();
        self.line(&Line::Start {
            version: VERSION,
            config: Box::new(config.into()),
            protocol,
        });
    }

    pub(crate) fn input(&mut self, now: Instant, input: &Input<'_>) {
        match input_rec(input) {
            Some(input) => self.line(&Line::Input {
                t: now.as_nanos(),
                input,
            }),
            None => self.stop(&format!(
                "an input this trace version cannot record: {input:?}"
            )),
        }
    }

    /// Ends the recording with a `truncated` line saying why.
    fn stop(&mut self, reason: &str) {
        if let Some(out) = &mut self.out {
            tracing::warn!(%reason, "trace truncated; recording stops");
            let end = Line::Truncated {
                reason: reason.to_owned(),
            };
            let r = serde_json::to_writer(&mut *out, &end)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
            if let Err(e) = r {
                tracing::warn!(error = %e, "trace recording failed");
            }
            self.out = None;
        }
    }

    pub(crate) fn read(
        &mut self,
        now: Instant,
        epoch: Epoch,
        buf: &[u8],
        fresh: usize,
        used: usize,
        units: usize,
    ) {
        if self.out.is_none() {
            return;
        }
        let fresh = fresh.min(buf.len());
        let kept = buf.len() - fresh;
        self.line(&Line::Read {
            t: now.as_nanos(),
            epoch: epoch.get(),
            kept,
            data: hex(&buf[kept..]),
            used,
            units,
        });
    }

    pub(crate) fn transmit(&mut self) {
        self.line(&Line::Transmit);
    }

    pub(crate) fn enqueue(&mut self, now: Instant, payload: &[u8], delivery: Delivery) {
        if self.out.is_none() {
            return;
        }
        self.line(&Line::Enqueue {
            t: now.as_nanos(),
            data: hex(payload),
            delivery: delivery.into(),
        });
    }

    pub(crate) fn batch(&mut self, now: Instant, batch: &Batch, delivery: Delivery) {
        if self.out.is_none() {
            return;
        }
        self.line(&Line::Batch {
            t: now.as_nanos(),
            msgs: batch.iter().map(hex).collect(),
            delivery: delivery.into(),
        });
    }

    pub(crate) fn subscribe(&mut self, now: Instant, spec: &[u8]) {
        self.line(&Line::Subscribe {
            t: now.as_nanos(),
            spec: hex(spec),
        });
    }

    pub(crate) fn unsubscribe(&mut self, now: Instant, id: SubId) {
        self.line(&Line::Unsubscribe {
            t: now.as_nanos(),
            id: id.get(),
        });
    }

    pub(crate) fn taken(&mut self, now: Instant, messages: usize, bytes: usize) {
        self.line(&Line::Taken {
            t: now.as_nanos(),
            messages,
            bytes,
        });
    }

    pub(crate) fn close(&mut self, now: Instant, mode: CloseMode) {
        let mode = match mode {
            CloseMode::Immediate => CloseRec::Immediate,
            CloseMode::Graceful { drain } => CloseRec::Graceful {
                graceful_ns: ns(drain),
            },
        };
        self.line(&Line::Close {
            t: now.as_nanos(),
            mode,
        });
    }

    pub(crate) fn reconnect(&mut self, now: Instant) {
        self.line(&Line::Reconnect { t: now.as_nanos() });
    }

    pub(crate) fn move_off(&mut self, now: Instant, drain: std::time::Duration) {
        self.line(&Line::Move {
            t: now.as_nanos(),
            drain_ns: u64::try_from(drain.as_nanos()).unwrap_or(u64::MAX),
        });
    }

    pub(crate) fn defer(&mut self, now: Instant, epoch: Epoch, retry_in: std::time::Duration) {
        self.line(&Line::Defer {
            t: now.as_nanos(),
            epoch: epoch.get(),
            retry_ns: u64::try_from(retry_in.as_nanos()).unwrap_or(u64::MAX),
        });
    }

    pub(crate) fn poll(&mut self, now: Instant, action: &Action) {
        self.line(&Line::Poll {
            t: now.as_nanos(),
            a: redacted(action),
        });
        if matches!(action, Action::Wait { .. }) {
            // One flush per round keeps a crashed process's trace whole up to its last round.
            if let Some(Err(e)) = self.out.as_mut().map(|o| o.flush()) {
                tracing::warn!(error = %e, "trace flush failed; recording stops");
                self.out = None;
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(Err(e)) = self.out.as_mut().map(|o| o.flush()) {
            tracing::warn!(error = %e, "trace flush failed");
        }
    }
}

// ----- replay -----
