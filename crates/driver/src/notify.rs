//! Notifications of the core, turned into what the user sees: receipts settled, events with
//! the error text and endpoint behind them, and one `tracing` line each.

use std::time::Duration;

use redial_core::{Addr, DisconnectReason, Epoch, Notification};

use crate::commands::Commands;
use crate::shared::Outbox;
use crate::target::Endpoint;

/// The text behind the next failure or disconnect of an epoch: the OS error, or the peer's
/// own words.
#[derive(Default)]
pub(crate) struct Notify {
    detail: Option<(Epoch, String)>,
}

impl Notify {
    /// The text behind `epoch`'s next failure.
    pub(crate) fn set_detail(&mut self, epoch: Epoch, text: String) {
        self.detail = Some((epoch, text));
    }

    /// One notification: a message outcome settles its receipt; the rest become events.
    pub(crate) fn notification(
        &mut self,
        n: Notification,
        at: Duration,
        endpoint: impl Fn(Addr) -> Option<Endpoint>,
        commands: &mut Commands,
        out: &mut Outbox,
    ) {
        let (detail, about) = match &n {
            Notification::Outcome {
                id,
                outcome,
                payload,
            } => {
                let payload = payload.clone();
                commands.settle(*id, *outcome, payload, out);
                return;
            }
            Notification::Unsubscribed { id, .. } => {
                commands.sub_ended(*id, out);
                (None, None)
            }
            Notification::PeerSaid { epoch, text, .. } => {
                let text = redial_core::proto::Shown(text).to_string();
                self.detail = Some((*epoch, text.clone()));
                (Some(text), None)
            }
            Notification::AttemptFailed { epoch, addr, .. } => {
                (self.detail_of(*epoch), addr.and_then(&endpoint))
            }
            Notification::Disconnected { epoch, .. } => (self.detail_of(*epoch), None),
            Notification::AttemptStarted { addr, .. } | Notification::Connected { addr, .. } => {
                (None, endpoint(*addr))
            }
            _ => (None, None),
        };
        log(&n, detail.as_deref(), about.as_ref());
        out.events.push(crate::received::SessionEvent {
            at,
            notification: n,
            detail,
            endpoint: about,
            missed: 0,
        });
    }

    fn detail_of(&mut self, epoch: Epoch) -> Option<String> {
        match &self.detail {
            Some((e, _)) if *e == epoch => self.detail.take().map(|(_, t)| t),
            _ => None,
        }
    }
}

/// The `tracing` line for a notification.
fn log(n: &Notification, detail: Option<&str>, endpoint: Option<&Endpoint>) {
    let target = endpoint.map(ToString::to_string);
    let target = target.as_deref().unwrap_or("");
    match n {
        Notification::StateChanged { from, to } => {
            tracing::info!(?from, ?to, "state changed");
        }
        Notification::AttemptStarted {
            epoch,
            attempt,
            addr,
        } => tracing::info!(%epoch, attempt, %addr, target, "dialing"),
        Notification::AttemptFailed {
            epoch,
            attempt,
            addr,
            error,
            next_delay,
        } => tracing::warn!(
            %epoch,
            attempt,
            addr = ?addr,
            target,
            %error,
            detail = detail.unwrap_or(""),
            next_delay = ?next_delay,
            "attempt failed"
        ),
        Notification::Connected {
            epoch,
            addr,
            attempt,
        } => tracing::info!(%epoch, %addr, target, attempt, "connected"),
        Notification::Disconnected {
            epoch,
            reason: reason @ DisconnectReason::HeartbeatTimeout { .. },
            next_delay,
            ..
        } => tracing::warn!(%epoch, %reason, next_delay = ?next_delay, "heartbeat timeout"),
        Notification::Disconnected {
            epoch,
            reason,
            uptime,
            next_delay,
        } => tracing::info!(
            %epoch,
            %reason,
            detail = detail.unwrap_or(""),
            uptime = ?uptime,
            next_delay = ?next_delay,
            "disconnected"
        ),
        Notification::PeerSaid { epoch, notice, .. } => {
            tracing::warn!(%epoch, notice, said = detail.unwrap_or(""), "peer said")
        }
        Notification::ReadPaused { epoch } => {
            tracing::debug!(%epoch, "reading paused: the consumer is behind")
        }
        Notification::ReadResumed { epoch, paused_for } => {
            tracing::debug!(%epoch, ?paused_for, "reading resumed")
        }
        Notification::Rtt { sample, smoothed } => {
            tracing::trace!(?sample, ?smoothed, "rtt");
        }
        Notification::GaveUp {
            failures,
            elapsed,
            last_error,
        } => tracing::error!(failures, ?elapsed, %last_error, "gave up"),
        other => tracing::debug!(notification = ?other, "notification"),
    }
}
