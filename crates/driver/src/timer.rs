//! The one timer: a sleep, the instant it is armed for, and when to re-arm it.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Instant as StdInstant;

use redial_core::Instant;

use crate::runtime::Runtime;

pin_project_lite::pin_project! {
    /// The session's only timer, kept inline in its task.
    pub(crate) struct Timer<R: Runtime> {
        #[pin]
        sleep: Option<R::Sleep>,
        // The core instant it is armed for.
        at: Option<Instant>,
    }
}

impl<R: Runtime> Timer<R> {
    pub(crate) fn new() -> Self {
        Timer {
            sleep: None,
            at: None,
        }
    }

    /// Arms the timer for the core's next deadline, re-arming only when it must: a timer armed
    /// for an earlier instant is kept (it fires, the session finds nothing due, and the timer
    /// is armed again for the later deadline), so a deadline that moves later on every read,
    /// or comes and goes with every write, costs nothing.
    pub(crate) fn arm(self: Pin<&mut Self>, rt: &R, origin: StdInstant, until: Option<Instant>) {
        let mut this = self.project();
        let keep = match (*this.at, until) {
            (Some(armed), Some(want)) => armed <= want,
            (Some(_), None) => true,
            (None, None) => true,
            (None, Some(_)) => false,
        };
        if keep {
            return;
        }
        let deadline = until.and_then(|t| t.to_std(origin));
        *this.at = until;
        this.sleep.set(deadline.map(|d| rt.sleep_until(d)));
    }

    /// Whether it fired (it is then disarmed).
    pub(crate) fn poll_fired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let mut this = self.project();
        let Some(sleep) = this.sleep.as_mut().as_pin_mut() else {
            return false;
        };
        if sleep.poll(cx).is_pending() {
            return false;
        }
        this.sleep.set(None);
        *this.at = None;
        true
    }

    /// Disarms it (the session ended).
    pub(crate) fn stop(self: Pin<&mut Self>) {
        let mut this = self.project();
        this.sleep.set(None);
        *this.at = None;
    }
}
