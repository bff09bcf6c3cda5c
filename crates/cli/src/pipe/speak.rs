//! What a stdin line asks for in each preset, and how replies, messages and events are
//! shown.

use super::*;

/// A fresh inbox prefix for this process's NATS requests.
pub(super) fn inbox() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = t ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    // splitmix64: spread the bits.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("_INBOX.{:016x}", x ^ (x >> 31))
}

/// Turns stdin lines into what the protocol sends, and replies into what is printed.
pub(super) enum Speaker {
    Plain,
    Redis,
    /// The protocol (for request encoding) and the next request token.
    Nats(Nats, u64),
}

/// What one stdin line asks for.
pub(super) enum Ask {
    /// Nothing (a blank line).
    Skip,
    /// A message whose reply is printed.
    Request(Vec<u8>),
    /// A message with no reply.
    Send(Vec<u8>),
    /// A NATS subscription.
    Subscribe(String),
}

impl Speaker {
    pub(super) fn ask(&mut self, line: &[u8], acks: bool) -> Result<Ask, String> {
        match self {
            Speaker::Plain if acks => Ok(Ask::Request(line.to_vec())),
            Speaker::Plain => Ok(Ask::Send(line.to_vec())),
            Speaker::Redis => {
                let args = split_args(line).map_err(|_| "Invalid argument(s)".to_owned())?;
                if args.is_empty() {
                    return Ok(Ask::Skip);
                }
                Ok(Ask::Request(cmd(args)))
            }
            Speaker::Nats(proto, token) => {
                let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
                let text = text.trim_start();
                if text.trim().is_empty() {
                    return Ok(Ask::Skip);
                }
                let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
                let (subject, payload) = rest.split_once(' ').unwrap_or((rest, ""));
                let subject = subject.trim_end();
                let e = |e: redial_core::FrameError| e.to_string();
                match verb.to_ascii_lowercase().as_str() {
                    "pub" => Ok(Ask::Send(
                        nats::publish(subject, payload.as_bytes()).map_err(e)?,
                    )),
                    "req" => {
                        *token += 1;
                        Ok(Ask::Request(
                            proto
                                .request(*token, subject, payload.as_bytes())
                                .map_err(e)?,
                        ))
                    }
                    "sub" if payload.trim().is_empty() && !subject.is_empty() => {
                        Ok(Ask::Subscribe(subject.to_owned()))
                    }
                    "sub" => Err("usage: sub SUBJECT".into()),
                    _ => Err(
                        "expected `pub SUBJECT PAYLOAD`, `sub SUBJECT` or `req SUBJECT PAYLOAD`"
                            .into(),
                    ),
                }
            }
        }
    }

    pub(super) fn is_nats(&self) -> bool {
        matches!(self, Speaker::Nats(..))
    }
}

/// A reply as printed in text mode: a line server's bytes as they came, the others as text.
pub(super) fn reply_bytes(preset: Preset, body: &[u8], refused: bool) -> Vec<u8> {
    match preset {
        Preset::Plain => body.to_vec(),
        _ => reply_text(preset, body, refused).into_bytes(),
    }
}

/// A reply as text (redis-cli's rendering for redis; escaped for NATS).
pub(super) fn reply_text(preset: Preset, body: &[u8], refused: bool) -> String {
    match preset {
        Preset::Redis => match Value::parse(body) {
            Ok((v, _)) => v.to_cli(),
            Err(_) => String::from_utf8_lossy(body).into_owned(),
        },
        Preset::Nats if refused => "(error) no responders".into(),
        Preset::Nats | Preset::Ws => escape(body),
        Preset::Plain => String::from_utf8_lossy(body).into_owned(),
    }
}

/// Bytes on one line: control characters, backslashes and invalid UTF-8 escaped.
pub(super) fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '\r' => s.push_str("\\r"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                c if c.is_control() => {
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

/// A JSON string of bytes: the text when it is UTF-8, else lossy (with `hex` beside it).
pub(super) fn json_bytes(obj: &mut serde_json::Value, key: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => obj[key] = s.into(),
        Err(_) => {
            obj[key] = String::from_utf8_lossy(bytes).into_owned().into();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            obj[format!("{key}_hex")] = hex.into();
        }
    }
}

pub(super) fn json_event(e: &SessionEvent) -> String {
    let at = e.at.as_secs_f64() * 1000.0;
    let detail = e.detail.clone();
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    let mut v = match &e.notification {
        Notification::StateChanged { from, to } => {
            serde_json::json!({"event": "state", "from": format!("{from:?}"), "to": format!("{to:?}")})
        }
        Notification::AttemptStarted {
            epoch,
            attempt,
            addr,
        } => {
            serde_json::json!({"event": "attempt", "epoch": epoch.get(), "attempt": attempt, "addr": addr.to_string()})
        }
        Notification::AttemptFailed {
            epoch,
            attempt,
            addr,
            error,
            next_delay,
        } => serde_json::json!({
            "event": "attempt_failed", "epoch": epoch.get(), "attempt": attempt,
            "addr": addr.map(|a| a.to_string()), "error": error.to_string(), "detail": detail,
            "next_delay_ms": ms(*next_delay)}),
        Notification::Connected {
            epoch,
            addr,
            attempt,
        } => {
            serde_json::json!({"event": "connected", "epoch": epoch.get(), "addr": addr.to_string(), "attempt": attempt})
        }
        Notification::Disconnected {
            epoch,
            reason,
            uptime,
            next_delay,
        } => serde_json::json!({
            "event": "disconnected", "epoch": epoch.get(), "reason": reason.to_string(), "detail": detail,
            "uptime_ms": uptime.as_millis() as u64, "next_delay_ms": ms(*next_delay)}),
        Notification::Rtt { sample, smoothed } => serde_json::json!({
            "event": "rtt", "sample_us": sample.as_micros() as u64, "smoothed_us": smoothed.as_micros() as u64}),
        Notification::PeerSaid {
            epoch,
            text,
            notice,
        } => serde_json::json!({
            "event": "peer_said", "epoch": epoch.get(), "text": Shown(text).to_string(), "notice": notice}),
        Notification::Subscribed { id, epoch } => {
            serde_json::json!({"event": "subscribed", "sub": id.get(), "epoch": epoch.get()})
        }
        Notification::Unsubscribed { id, refused } => {
            serde_json::json!({"event": "unsubscribed", "sub": id.get(), "refused": refused})
        }
        Notification::ReadPaused { epoch } => {
            serde_json::json!({"event": "read_paused", "epoch": epoch.get()})
        }
        Notification::ReadResumed { epoch, paused_for } => serde_json::json!({
            "event": "read_resumed", "epoch": epoch.get(), "paused_ms": paused_for.as_millis() as u64}),
        Notification::GaveUp {
            failures,
            elapsed,
            last_error,
        } => serde_json::json!({
            "event": "gave_up", "failures": failures, "elapsed_ms": elapsed.as_millis() as u64,
            "last_error": last_error.to_string()}),
        other => serde_json::json!({"event": "other", "debug": format!("{other:?}")}),
    };
    v["at_ms"] = serde_json::json!(at);
    if e.missed > 0 {
        // The event stream was full: this many older events were dropped.
        v["missed"] = serde_json::json!(e.missed);
    }
    v.to_string()
}

pub(super) fn human_event(e: &SessionEvent) -> Option<String> {
    if matches!(e.notification, Notification::Rtt { .. }) {
        return None;
    }
    let line = describe(&e.notification, e.detail.as_deref());
    let missed = match e.missed {
        0 => String::new(),
        n => format!(" ({n} earlier events missed)"),
    };
    Some(format!("redial: {:.3}s {line}{missed}", e.at.as_secs_f64()))
}
