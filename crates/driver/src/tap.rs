//! The session as the task sees it: every call that changes the core passes through here, so
//! a recorder (feature `record`) sees each one, in order. Without the feature this is a
//! plain newtype whose methods forward.

use std::ops::Deref;

use redial_core::{
    Action, Batch, CloseMode, Delivery, Epoch, FrameError, Handled, Input, Instant, MsgId,
    Protocol, Received, Rejected, Session, SubId,
};

#[cfg(feature = "record")]
use crate::trace::Recorder;

/// A [`Session`] and, when recording, its recorder.
pub(crate) struct Tapped<P> {
    session: Session<P>,
    #[cfg(feature = "record")]
    recorder: Option<Recorder>,
}

impl<P> Deref for Tapped<P> {
    type Target = Session<P>;
    fn deref(&self) -> &Session<P> {
        &self.session
    }
}

/// Runs `$e` on the recorder, if there is one.
macro_rules! rec {
    ($self:ident, $r:ident => $e:expr) => {
        #[cfg(feature = "record")]
        if let Some($r) = &mut $self.recorder {
            $e;
        }
    };
}

impl<P: Protocol> Tapped<P> {
    pub(crate) fn new(session: Session<P>) -> Self {
        Tapped {
            session,
            #[cfg(feature = "record")]
            recorder: None,
        }
    }

    /// Records everything from now on (the `start` line is written at once).
    #[cfg(feature = "record")]
    pub(crate) fn record(&mut self, mut recorder: Recorder) {
        recorder.start(self.session.config());
        self.recorder = Some(recorder);
    }

    /// Frees spare queue capacity; changes nothing a recorder could see.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.session.shrink_to_fit();
    }

    pub(crate) fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Handled {
        rec!(self, r => r.input(now, &input));
        self.session.handle_input(now, input)
    }

    pub(crate) fn handle_read(
        &mut self,
        now: Instant,
        epoch: Epoch,
        buf: &[u8],
        fresh: usize,
        sink: &mut dyn FnMut(Received<'_>),
    ) -> usize {
        #[cfg(feature = "record")]
        if let Some(r) = &mut self.recorder {
            let mut units = 0usize;
            let used = self.session.handle_read(now, epoch, buf, fresh, &mut |u| {
                units += 1;
                sink(u)
            });
            r.read(now, epoch, buf, fresh, used, units);
            return used;
        }
        self.session.handle_read(now, epoch, buf, fresh, sink)
    }

    pub(crate) fn enqueue(
        &mut self,
        now: Instant,
        payload: Vec<u8>,
        delivery: Delivery,
    ) -> Result<MsgId, Rejected> {
        rec!(self, r => r.enqueue(now, &payload, delivery));
        self.session.enqueue(now, payload, delivery)
    }

    pub(crate) fn enqueue_batch(
        &mut self,
        now: Instant,
        batch: Batch,
        delivery: Delivery,
    ) -> Result<MsgId, Rejected> {
        rec!(self, r => r.batch(now, &batch, delivery));
        self.session.enqueue_batch(now, batch, delivery)
    }

    pub(crate) fn subscribe(&mut self, now: Instant, spec: Vec<u8>) -> Result<SubId, FrameError> {
        rec!(self, r => r.subscribe(now, &spec));
        self.session.subscribe(now, spec)
    }

    pub(crate) fn unsubscribe(&mut self, now: Instant, id: SubId) -> bool {
        rec!(self, r => r.unsubscribe(now, id));
        self.session.unsubscribe(now, id)
    }

    pub(crate) fn inbound_taken(&mut self, now: Instant, messages: usize, bytes: usize) {
        rec!(self, r => r.taken(now, messages, bytes));
        self.session.inbound_taken(now, messages, bytes)
    }

    pub(crate) fn close(&mut self, now: Instant, mode: CloseMode) {
        rec!(self, r => r.close(now, mode));
        self.session.close(now, mode)
    }

    pub(crate) fn reconnect_now(&mut self, now: Instant) {
        rec!(self, r => r.reconnect(now));
        self.session.reconnect_now(now)
    }

    pub(crate) fn move_off(&mut self, now: Instant, drain: std::time::Duration) -> bool {
        rec!(self, r => r.move_off(now, drain));
        self.session.move_off(now, drain)
    }

    pub(crate) fn defer_attempt(
        &mut self,
        now: Instant,
        epoch: Epoch,
        retry_in: std::time::Duration,
    ) -> bool {
        rec!(self, r => r.defer(now, epoch, retry_in));
        self.session.defer_attempt(now, epoch, retry_in)
    }

    pub(crate) fn poll(&mut self, now: Instant) -> Action {
        let a = self.session.poll(now);
        rec!(self, r => r.poll(now, &a));
        a
    }

    pub(crate) fn encode_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        rec!(self, r => r.transmit());
        self.session.encode_transmit(out)
    }
}
