//! Fan-out from the background client to its users: the current set, the sessions' watch
//! streams, the event streams, and resolutions waiting for the first set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;

use futures::channel::mpsc;
use redial_driver::Endpoint;

use crate::event::{self, RegistryEvent};

/// Events kept for a reader that lags; later ones are dropped (they are logged either way).
const EVENT_BACKLOG: usize = 256;

#[derive(Default)]
struct Inner {
    /// The endpoint set by key, once known.
    set: Option<BTreeMap<String, Endpoint>>,
    /// The first attempt to read it has ended (in success or not).
    tried: bool,
    watchers: Vec<mpsc::UnboundedSender<Vec<Endpoint>>>,
    listeners: Vec<mpsc::Sender<RegistryEvent>>,
    waiting: Vec<Waker>,
}

/// Shared between the background client and every user handle.
#[derive(Clone, Default)]
pub(crate) struct Hub(Arc<Mutex<Inner>>);

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current set (`None` before the first read), or whether the first read failed.
    pub(crate) fn current(&self, waker: Option<&Waker>) -> Result<Vec<Endpoint>, bool> {
        let mut g = self.lock();
        match &g.set {
            Some(set) => Ok(set.values().cloned().collect()),
            None => {
                if let Some(w) = waker {
                    g.waiting.push(w.clone());
                }
                Err(g.tried)
            }
        }
    }

    /// A new session watch: it gets the current set at once, if known.
    pub(crate) fn watch(&self) -> mpsc::UnboundedReceiver<Vec<Endpoint>> {
        let (tx, rx) = mpsc::unbounded();
        let mut g = self.lock();
        if let Some(set) = &g.set {
            let _ = tx.unbounded_send(set.values().cloned().collect());
        }
        g.watchers.push(tx);
        rx
    }

    pub(crate) fn events(&self) -> mpsc::Receiver<RegistryEvent> {
        let (tx, rx) = mpsc::channel(EVENT_BACKLOG);
        self.lock().listeners.push(tx);
        rx
    }

    /// Logs `e` and hands it to every listener.
    pub(crate) fn emit(&self, e: RegistryEvent) {
        event::log(&e);
        let mut g = self.lock();
        g.listeners
            .retain_mut(|l| !matches!(l.try_send(e.clone()), Err(x) if x.is_disconnected()));
    }

    /// The first read failed: waiting resolutions fail (and retry with their backoff).
    pub(crate) fn tried(&self) {
        let mut g = self.lock();
        g.tried = true;
        for w in g.waiting.drain(..) {
            w.wake();
        }
    }

    /// Replaces the whole set; returns (added, removed).
    pub(crate) fn replace(
        &self,
        set: BTreeMap<String, Endpoint>,
    ) -> (Vec<Endpoint>, Vec<Endpoint>) {
        let mut g = self.lock();
        let old = g.set.take().unwrap_or_default();
        let added = set
            .iter()
            .filter(|(k, _)| !old.contains_key(*k))
            .map(|(_, e)| e.clone())
            .collect();
        let removed = old
            .iter()
            .filter(|(k, _)| !set.contains_key(*k))
            .map(|(_, e)| e.clone())
            .collect();
        g.set = Some(set);
        publish(&mut g);
        (added, removed)
    }

    /// Applies one batch of changes (`Some`: put, `None`: delete); returns (added, removed).
    pub(crate) fn apply(
        &self,
        changes: Vec<(String, Option<Endpoint>)>,
    ) -> (Vec<Endpoint>, Vec<Endpoint>) {
        let mut g = self.lock();
        let set = g.set.get_or_insert_with(BTreeMap::new);
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for (key, e) in changes {
            match e {
                Some(e) => {
                    if set.insert(key, e.clone()).as_ref() != Some(&e) {
                        added.push(e);
                    }
                }
                None => removed.extend(set.remove(&key)),
            }
        }
        if !added.is_empty() || !removed.is_empty() {
            publish(&mut g);
        }
        (added, removed)
    }
}

fn publish(g: &mut Inner) {
    let set: Vec<Endpoint> = g.set.iter().flat_map(|s| s.values().cloned()).collect();
    g.watchers.retain(|w| w.unbounded_send(set.clone()).is_ok());
    g.tried = true;
    for w in g.waiting.drain(..) {
        w.wake();
    }
}
