//! One readable line per lifecycle notification, shared by `demo`, `pipe` and `replay`.

use std::time::Duration;

use redial_core::proto::Shown;
use redial_core::{Notification, Outcome};

fn delay(next: Option<Duration>, verb: &str) -> String {
    next.map_or("no retry (session over)".into(), |d| {
        format!("{verb} in {} ms", d.as_millis())
    })
}

/// `kind       text` for a notification; `detail` is the OS error text behind it, if any.
/// Every notification has a line; callers skip the kinds they don't want.
pub fn describe(n: &Notification, detail: Option<&str>) -> String {
    let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
    match n {
        Notification::StateChanged { from, to } => format!("state      {from:?} -> {to:?}"),
        Notification::AttemptStarted {
            attempt,
            addr,
            epoch,
        } => {
            format!("dial       attempt {attempt} to {addr} (epoch {epoch})")
        }
        Notification::AttemptFailed {
            attempt,
            addr,
            error,
            next_delay,
            ..
        } => format!(
            "failed     attempt {attempt} to {}: {error}{detail}; {}",
            addr.map_or("(resolve)".into(), |a| a.to_string()),
            delay(*next_delay, "next try")
        ),
        Notification::Connected {
            addr,
            attempt,
            epoch,
        } => {
            format!("connected  to {addr} on attempt {attempt} (epoch {epoch})")
        }
        Notification::Disconnected {
            reason,
            uptime,
            next_delay,
            ..
        } => format!(
            "lost       {reason}{detail} after {:.1}s up; {}",
            uptime.as_secs_f64(),
            delay(*next_delay, "redial")
        ),
        Notification::Rtt { sample, smoothed } => {
            format!("rtt        {sample:?} (smoothed {smoothed:?})")
        }
        Notification::Outcome { id, outcome, .. } => match outcome {
            Outcome::InDoubt => format!("message    {id:?}: IN DOUBT (handed back, not resent)"),
            o => format!("message    {id:?}: {o:?}"),
        },
        Notification::GaveUp {
            failures,
            elapsed,
            last_error,
        } => {
            format!(
                "gave up    after {failures} failures over {:.1}s: {last_error}",
                elapsed.as_secs_f64()
            )
        }
        Notification::PeerSaid { text, notice, .. } => format!(
            "peer said  {}{}",
            Shown(text),
            if *notice { " (the connection goes on)" } else { "" }
        ),
        Notification::Subscribed { id, epoch } => {
            format!("subscribed {id:?} on epoch {epoch}")
        }
        Notification::Unsubscribed { id, refused } => format!(
            "unsubscribed {id:?}{}",
            if *refused { " (refused by the peer)" } else { "" }
        ),
        Notification::ReadPaused { epoch } => format!(
            "paused     reading epoch {epoch}: output is not being taken (the peer's silence is ours)"
        ),
        Notification::ReadResumed { epoch, paused_for } => {
            format!("resumed    reading epoch {epoch} after {paused_for:?}")
        }
        other => format!("{other:?}"),
    }
}
