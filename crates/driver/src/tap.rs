//! A hook on every input of the core, used by the recorder.

use redial_core::{Action, CloseMode, Config, Delivery, Event, Instant};

/// Sees every call the driver makes into the core, in order.
pub(crate) trait Tap: Send {
    fn start(&mut self, config: &Config);
    fn event(&mut self, now: Instant, event: &Event<'_>);
    /// `batch`: the message count and largest message of a batch (whose records are `len`
    /// bytes), `None` for one message.
    fn enqueue(
        &mut self,
        now: Instant,
        len: usize,
        batch: Option<(usize, usize)>,
        delivery: Delivery,
    );
    fn close(&mut self, now: Instant, mode: CloseMode);
    fn reconnect(&mut self, now: Instant);
    fn round(&mut self, now: Instant);
    fn action(&mut self, action: &Action);
}
