//! Running a fresh core on a trace and comparing what it does.

use super::*;

/// A read whose replay differs from the recording.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadMismatch {
    /// The trace line (1-based).
    pub line: usize,
    /// `(kept, used, units)` as recorded.
    pub recorded: (usize, usize, usize),
    /// `(kept, used, units)` in the replay.
    pub replayed: (usize, usize, usize),
}

/// The result of [`replay`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Replayed {
    /// The configuration from the `start` line.
    pub config: Config,
    /// The protocol from the `start` line.
    pub protocol: RecordedProtocol,
    /// Every action the fresh session produced, with the time of the poll that produced it.
    pub actions: Vec<(Instant, Action)>,
    /// The actions as recorded (see [`redacted`]), for comparison.
    pub recorded: Vec<String>,
    /// Reads: how many there were, and the first whose bytes used or units decoded differ.
    pub reads: usize,
    /// The first read that decoded differently, if any.
    pub read_mismatch: Option<ReadMismatch>,
    /// Why the recording stopped early, if it did (its `truncated` line).
    pub truncated: Option<String>,
}

impl Replayed {
    /// Index of the first action that differs from the recording (or where one of the two
    /// sequences ends early); `None` when the replay took exactly the recorded decisions.
    pub fn first_mismatch(&self) -> Option<usize> {
        let n = self.actions.len().max(self.recorded.len());
        (0..n).find(|&i| {
            let replayed = self.actions.get(i).map(|(_, a)| redacted(a));
            replayed.as_ref() != self.recorded.get(i)
        })
    }

    /// Whether the replay took exactly the recorded decisions and decoded every read the same.
    pub fn identical(&self) -> bool {
        self.first_mismatch().is_none() && self.read_mismatch.is_none()
    }
}

/// Reads bounded lines: never more than [`MAX_LINE`] per line or [`MAX_TRACE_BYTES`] in all.
pub(super) struct Lines<R> {
    pub(super) reader: R,
    pub(super) buf: Vec<u8>,
    pub(super) n: usize,
    pub(super) total: u64,
}

impl<R: BufRead> Lines<R> {
    /// The next non-blank line and its number, or `None` at the end.
    fn next(&mut self) -> Result<Option<(usize, &str)>, TraceError> {
        loop {
            self.buf.clear();
            self.n += 1;
            let limit = (MAX_LINE + 1) as u64;
            let got = <&mut R as io::Read>::take(&mut self.reader, limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(TraceError::Io)?;
            if got == 0 {
                return Ok(None);
            }
            self.total += got as u64;
            if self.total > MAX_TRACE_BYTES {
                return Err(TraceError::TooLarge {
                    max: MAX_TRACE_BYTES,
                });
            }
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
            } else if self.buf.len() > MAX_LINE {
                return Err(TraceError::LineTooLong {
                    line: self.n,
                    max: MAX_LINE,
                });
            }
            if self.buf.len() > MAX_LINE {
                return Err(TraceError::LineTooLong {
                    line: self.n,
                    max: MAX_LINE,
                });
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = self.n;
            let text = std::str::from_utf8(&self.buf).map_err(|_| TraceError::Invalid {
                line,
                reason: "not UTF-8".into(),
            })?;
            return Ok(Some((line, text)));
        }
    }
}

pub(super) fn parse(n: usize, text: &str) -> Result<Line, TraceError> {
    serde_json::from_str(text).map_err(|error| {
        // An unknown kind is its own error; anything else is malformed JSON for its kind.
        #[derive(Deserialize)]
        struct Kind {
            k: String,
        }
        match serde_json::from_str::<Kind>(text) {
            Ok(Kind { k }) if !KINDS.contains(&k.as_str()) => TraceError::UnknownKind {
                line: n,
                kind: cut(&k),
            },
            _ => TraceError::Json { line: n, error },
        }
    })
}

/// Runs a fresh [`Session`] on a recorded trace and returns the actions it produced.
pub fn replay(reader: impl BufRead) -> Result<Replayed, TraceError> {
    let mut lines = Lines {
        reader,
        buf: Vec::new(),
        n: 0,
        total: 0,
    };
    let Some((n, text)) = lines.next()? else {
        return Err(TraceError::Invalid {
            line: 0,
            reason: "empty trace".into(),
        });
    };
    let invalid = |reason: String| TraceError::Invalid { line: n, reason };
    let Line::Start {
        version,
        config,
        protocol,
    } = parse(n, text)?
    else {
        return Err(invalid("the first line must be `start`".into()));
    };
    if version != VERSION {
        return Err(invalid(format!(
            "trace version {version}, expected {VERSION}"
        )));
    }
    let config = config.to_config().map_err(invalid)?;
    let recorded = RecordedProtocol(protocol.clone());
    let mut out = Replayed {
        config: config.clone(),
        protocol: recorded,
        actions: Vec::new(),
        recorded: Vec::new(),
        reads: 0,
        read_mismatch: None,
        truncated: None,
    };
    let bad_config =
        |e: redial_core::ConfigError| invalid(format!("recorded config is invalid: {e}"));
    match &protocol {
        ProtoRec::Line { .. } => {
            let p = protocol.line().map_err(invalid)?;
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
        ProtoRec::Length {
            max_payload,
            acks_in_order,
        } => {
            let p = Framed::new(LengthCodec::new(*max_payload)).with_acks(acks(*acks_in_order));
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
        ProtoRec::Raw { max } => {
            let p = Framed::new(RawCodec::new(*max));
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
        ProtoRec::Resp { .. } => {
            let p = protocol.resp().map_err(invalid)?;
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
        ProtoRec::Nats { .. } => {
            let p = protocol.nats().map_err(invalid)?;
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
        ProtoRec::Ws { .. } => {
            let p = protocol.ws().map_err(invalid)?;
            let s = Session::new(config, p, Instant::ZERO).map_err(bad_config)?;
            run(s, &mut lines, &mut out)?;
        }
    }
    Ok(out)
}

/// The replay proper, on a session of the recorded protocol.
pub(super) fn run<P: Protocol, R: BufRead>(
    mut s: Session<P>,
    lines: &mut Lines<R>,
    out: &mut Replayed,
) -> Result<(), TraceError> {
    // The driver's read buffer: what the last read left unused, on the connection it came from.
    let mut kept: Vec<u8> = Vec::new();
    let mut kept_epoch = Epoch::NONE;
    let mut scratch = Vec::new();
    while let Some((n, text)) = lines.next()? {
        let line = parse(n, text)?;
        let invalid = |reason: String| TraceError::Invalid { line: n, reason };
        let at = Instant::from_nanos;
        match line {
            Line::Start { .. } => return Err(invalid("a second `start` line".into())),
            Line::Poll { t, a } => {
                let action = s.poll(at(t));
                out.actions.push((at(t), action));
                out.recorded.push(a);
            }
            Line::Input { t, input } => {
                let e = Epoch::from_raw;
                let addrs: Vec<Addr>;
                let input = match &input {
                    InputRec::Resolved { epoch, addrs: a } => {
                        addrs = a
                            .iter()
                            .map(|a| match *a {
                                AddrRec::Ip(s) => Addr::Ip(s),
                                AddrRec::Local(n) => Addr::Local(n),
                            })
                            .collect();
                        Input::Resolved {
                            epoch: e(*epoch),
                            addrs: &addrs,
                        }
                    }
                    InputRec::ResolveFailed { epoch, error } => Input::ResolveFailed {
                        epoch: e(*epoch),
                        error: parse_net(error).map_err(invalid)?,
                    },
                    InputRec::DialOk { epoch } => Input::DialOk { epoch: e(*epoch) },
                    InputRec::DialFailed { epoch, error } => Input::DialFailed {
                        epoch: e(*epoch),
                        error: parse_net(error).map_err(invalid)?,
                    },
                    InputRec::Written { epoch } => Input::Written { epoch: e(*epoch) },
                    InputRec::Eof { epoch } => Input::Eof { epoch: e(*epoch) },
                    InputRec::IoError { epoch, error } => Input::IoError {
                        epoch: e(*epoch),
                        error: parse_net(error).map_err(invalid)?,
                    },
                    InputRec::Closed { epoch } => Input::Closed { epoch: e(*epoch) },
                };
                let _ = s.handle_input(at(t), input);
            }
            Line::Read {
                t,
                epoch,
                kept: rec_kept,
                data,
                used,
                units,
            } => {
                let epoch = Epoch::from_raw(epoch);
                if epoch != kept_epoch {
                    // A new connection starts with an empty buffer.
                    kept.clear();
                    kept_epoch = epoch;
                }
                let fresh = unhex(&data).map_err(invalid)?;
                let had = kept.len();
                kept.extend_from_slice(&fresh);
                let mut got = 0usize;
                let u = s.handle_read(at(t), epoch, &kept, fresh.len(), &mut |_| got += 1);
                let u = u.min(kept.len());
                kept.drain(..u);
                out.reads += 1;
                if out.read_mismatch.is_none() && (had, u, got) != (rec_kept, used, units) {
                    out.read_mismatch = Some(ReadMismatch {
                        line: n,
                        recorded: (rec_kept, used, units),
                        replayed: (had, u, got),
                    });
                }
            }
            Line::Transmit => {
                scratch.clear();
                s.encode_transmit(&mut scratch);
                if scratch.capacity() > 1 << 20 {
                    scratch = Vec::new();
                }
            }
            Line::Enqueue { t, data, delivery } => {
                let data = unhex(&data).map_err(invalid)?;
                let _ = s.enqueue(at(t), data, delivery.into());
            }
            Line::Batch { t, msgs, delivery } => {
                let mut b = Batch::new();
                for m in &msgs {
                    b.push(&unhex(m).map_err(invalid)?);
                }
                let _ = s.enqueue_batch(at(t), b, delivery.into());
            }
            Line::Subscribe { t, spec } => {
                let spec = unhex(&spec).map_err(invalid)?;
                let _ = s.subscribe(at(t), spec);
            }
            Line::Unsubscribe { t, id } => {
                let _ = s.unsubscribe(at(t), SubId::from_raw(id));
            }
            Line::Taken { t, messages, bytes } => s.inbound_taken(at(t), messages, bytes),
            Line::Close { t, mode } => {
                let mode = match mode {
                    CloseRec::Immediate => CloseMode::Immediate,
                    CloseRec::Graceful { graceful_ns } => CloseMode::Graceful {
                        drain: dur(graceful_ns),
                    },
                };
                s.close(at(t), mode);
            }
            Line::Reconnect { t } => s.reconnect_now(at(t)),
            Line::Move { t, drain_ns } => {
                let _ = s.move_off(at(t), dur(drain_ns));
            }
            Line::Defer { t, epoch, retry_ns } => {
                let _ = s.defer_attempt(at(t), Epoch::from_raw(epoch), dur(retry_ns));
            }
            Line::Truncated { reason } => {
                out.truncated = Some(cut(&reason));
                break;
            }
        }
    }
    Ok(())
}
