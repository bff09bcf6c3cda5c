//! [`EtcdDiscover`]: the endpoints under a key prefix, read once, then watched; a
//! [`Discover`] that pushes changes to every session.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use redial_driver::{Discover, Endpoint};

use crate::config::EtcdConfig;
use crate::event::RegistryEvent;
use crate::hub::Hub;
use crate::worker::{Retry, Worker};

/// The endpoints of a service, from the keys under a prefix in etcd. Every key under
/// `prefix/` whose value is an `ip:port` is an endpoint.
///
/// A background client reads the whole set, then watches the prefix from the revision after
/// that read; after a reconnect the watch resumes from the revision after the last change it
/// saw, so no change is missed (if etcd compacted that far, the set is read afresh). Its own
/// connection to etcd retries with redial's backoff. **While etcd is unreachable the last
/// known set stays in use**: sessions keep their connections and keep dialing known
/// endpoints; the trouble is logged and is a [`RegistryEvent`].
///
/// Clones share one client; it stops when the last clone is dropped. Use it as a target:
/// `Target::discover(etcd)`, for any adapter.
#[derive(Clone)]
pub struct EtcdDiscover {
    hub: Hub,
    shown: Arc<str>,
    _worker: Arc<Worker>,
}

impl std::fmt::Debug for EtcdDiscover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EtcdDiscover({})", self.shown)
    }
}

impl EtcdDiscover {
    /// Starts the background client (a thread of its own). Returns at once: sessions that
    /// resolve before the first read wait for it, and fail (then retry with their backoff)
    /// if etcd cannot be reached.
    pub fn start(config: EtcdConfig) -> io::Result<Self> {
        let hub = Hub::default();
        let shown: Arc<str> = config.to_string().into();
        let h = hub.clone();
        let worker = Worker::spawn("redial-etcd-watch", move || follow(config, h))?;
        Ok(EtcdDiscover {
            hub,
            shown,
            _worker: Arc::new(worker),
        })
    }

    /// The last known set (`None` before the first read).
    pub fn endpoints(&self) -> Option<Vec<Endpoint>> {
        self.hub.current(None).ok()
    }

    /// The registry's events from now on (a reader that lags loses the newest beyond a
    /// backlog of 256; every event is logged either way).
    pub fn events(&self) -> BoxStream<'static, RegistryEvent> {
        self.hub.events().boxed()
    }
}

impl Discover for EtcdDiscover {
    fn discover(&self) -> BoxFuture<'static, io::Result<Vec<Endpoint>>> {
        let hub = self.hub.clone();
        Box::pin(poll_fn(move |cx| match hub.current(Some(cx.waker())) {
            Ok(set) => Poll::Ready(Ok(set)),
            Err(true) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the registry has not been reached yet",
            ))),
            Err(false) => Poll::Pending,
        }))
    }

    fn watch(&self) -> Option<BoxStream<'static, Vec<Endpoint>>> {
        Some(self.hub.watch().boxed())
    }

    fn spread(&self) -> bool {
        true
    }
}

/// Reads and watches until dropped, reconnecting with backoff.
async fn follow(config: EtcdConfig, hub: Hub) {
    let mut retry = Retry::new(config.backoff, config.seed);
    // The last revision applied (0: read the whole set on the next connection).
    let mut revision = 0i64;
    loop {
        let error = watch_once(&config, &hub, &mut revision, &mut retry).await;
        let next_delay = retry.failed();
        hub.tried();
        hub.emit(RegistryEvent::Unreachable {
            error,
            attempt: retry.failures,
            next_delay,
        });
        tokio::time::sleep(next_delay).await;
    }
}

/// One connection: read (or resume), then watch until something breaks. Returns what broke.
async fn watch_once(
    config: &EtcdConfig,
    hub: &Hub,
    revision: &mut i64,
    retry: &mut Retry,
) -> String {
    let connect = Client::connect(&config.endpoints, Some(config.options()));
    let mut client = match tokio::time::timeout(config.timeout, connect).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return e.to_string(),
        Err(_) => return "connect timed out".into(),
    };
    let prefix = config.watched_prefix();
    if *revision == 0 {
        let got = client
            .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await;
        let resp = match got {
            Ok(r) => r,
            Err(e) => return e.to_string(),
        };
        let mut set = BTreeMap::new();
        for kv in resp.kvs() {
            if let Some((key, e)) = parse(kv, hub) {
                set.insert(key, e);
            }
        }
        let at = resp.header().map_or(0, |h| h.revision());
        // Told before the sessions can use it.
        hub.emit(RegistryEvent::Loaded {
            endpoints: set.len(),
            revision: at,
        });
        let (added, removed) = hub.replace(set);
        if !removed.is_empty() {
            // A read after a lost watch: report what changed meanwhile.
            hub.emit(RegistryEvent::Changed {
                added,
                removed,
                revision: at,
            });
        }
        *revision = at;
    } else {
        hub.emit(RegistryEvent::Resumed {
            from_revision: *revision + 1,
        });
    }
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(*revision + 1)
        .with_progress_notify();
    let mut stream = match client.watch(prefix, Some(options)).await {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    loop {
        let resp = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return "the watch stream ended".into(),
            Err(e) => return e.to_string(),
        };
        if resp.compact_revision() > 0 {
            // Too far behind to resume: read the whole set again.
            *revision = 0;
            return format!("revision {} compacted", resp.compact_revision());
        }
        if resp.canceled() {
            return format!("watch canceled: {}", resp.cancel_reason());
        }
        if resp.created() {
            retry.reset();
            continue;
        }
        let mut changes = Vec::new();
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            *revision = (*revision).max(kv.mod_revision());
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            match ev.event_type() {
                EventType::Put => changes.push((key, parse(kv, hub).map(|(_, e)| e))),
                EventType::Delete => changes.push((key, None)),
            }
        }
        if resp.events().is_empty() {
            // A progress notification: every change up to its revision has been sent.
            if let Some(h) = resp.header() {
                *revision = (*revision).max(h.revision());
            }
            continue;
        }
        let (added, removed) = hub.apply(changes);
        if !added.is_empty() || !removed.is_empty() {
            hub.emit(RegistryEvent::Changed {
                added,
                removed,
                revision: *revision,
            });
        }
    }
}

/// A key and its endpoint, if the value is an `ip:port`.
fn parse(kv: &KeyValue, hub: &Hub) -> Option<(String, Endpoint)> {
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    let addr = std::str::from_utf8(kv.value())
        .ok()
        .and_then(|v| v.trim().parse::<SocketAddr>().ok());
    match addr {
        Some(a) => Some((key, Endpoint::ip(a))),
        None => {
            hub.emit(RegistryEvent::Ignored { key });
            None
        }
    }
}
