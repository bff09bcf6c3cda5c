//! [`Registration`]: a server announces its address under the prefix, on a lease kept alive
//! in the background, so a server that dies disappears from every session's set after its
//! TTL.

use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

use etcd_client::{Client, PutOptions};
use futures::channel::oneshot;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::config::EtcdConfig;
use crate::event::RegistryEvent;
use crate::hub::Hub;
use crate::worker::{Retry, Worker};

#[derive(Default)]
struct Status {
    lease: Option<i64>,
    waiting: Vec<Waker>,
}

/// An address registered under `prefix/ADDR` with a lease: kept alive (every third of the
/// TTL) by a background client that reconnects with redial's backoff, and registered again if
/// the lease expired while etcd was unreachable.
///
/// [`Registration::revoke`] removes the key at once; dropping the registration only stops the
/// keep-alive, so the key expires after its TTL (what happens when the server dies).
pub struct Registration {
    key: String,
    status: Arc<Mutex<Status>>,
    hub: Hub,
    revoke: Option<oneshot::Sender<oneshot::Sender<bool>>>,
    _worker: Worker,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.key)
            .field("lease", &self.lease())
            .finish()
    }
}

impl Registration {
    /// Starts registering `addr` (an `ip:port`) under the config's prefix with a lease of
    /// `ttl` (whole seconds, at least 1). Returns at once; see [`Registration::registered`].
    pub fn start(config: EtcdConfig, addr: &str, ttl: Duration) -> io::Result<Self> {
        let key = config.key_of(addr);
        let status = Arc::new(Mutex::new(Status::default()));
        let hub = Hub::default();
        let (tx, rx) = oneshot::channel();
        let job = Job {
            ttl: i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX),
            key: key.clone(),
            value: addr.to_owned(),
            config,
            status: Arc::clone(&status),
            hub: hub.clone(),
        };
        let worker = Worker::spawn("redial-etcd-lease", move || job.run(rx))?;
        Ok(Registration {
            key,
            status,
            hub,
            revoke: Some(tx),
            _worker: worker,
        })
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease in force, once registered.
    pub fn lease(&self) -> Option<i64> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lease
    }

    /// Waits until the key is in place (at once if it is).
    pub async fn registered(&self) {
        poll_fn(|cx| {
            let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            if s.lease.is_some() {
                Poll::Ready(())
            } else {
                s.waiting.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// This registration's events from now on.
    pub fn events(&self) -> BoxStream<'static, RegistryEvent> {
        self.hub.events().boxed()
    }

    /// Revokes the lease: the key is removed at once. Returns whether etcd confirmed it
    /// (within the config's timeout); if not, the key expires with its lease.
    pub async fn revoke(mut self) -> bool {
        let (tx, rx) = oneshot::channel();
        let Some(revoke) = self.revoke.take() else {
            return false;
        };
        if revoke.send(tx).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

struct Job {
    ttl: i64,
    key: String,
    value: String,
    config: EtcdConfig,
    status: Arc<Mutex<Status>>,
    hub: Hub,
}

/// How one connection ended.
enum End {
    /// Revoked (or dropped): stop.
    Done,
    Broke(String),
}

impl Job {
    async fn run(self, mut revoke: oneshot::Receiver<oneshot::Sender<bool>>) {
        let mut retry = Retry::new(self.config.backoff, self.config.seed ^ 0x1EA5E);
        let mut lease = None;
        loop {
            match self.keep(&mut lease, &mut retry, &mut revoke).await {
                End::Done => return,
                End::Broke(error) => {
                    let next_delay = retry.failed();
                    self.hub.emit(RegistryEvent::Unreachable {
                        error,
                        attempt: retry.failures,
                        next_delay,
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(next_delay) => {}
                        // Dropped or revoked while etcd is unreachable: nothing to do but stop
                        // (the key expires with its lease).
                        _ = &mut revoke => return,
                    }
                }
            }
        }
    }

    async fn keep(
        &self,
        lease: &mut Option<i64>,
        retry: &mut Retry,
        revoke: &mut oneshot::Receiver<oneshot::Sender<bool>>,
    ) -> End {
        let timeout = self.config.timeout;
        let mut client = match tokio::time::timeout(
            timeout,
            Client::connect(&self.config.endpoints, Some(self.config.options())),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return End::Broke(e.to_string()),
            Err(_) => return End::Broke("connect timed out".into()),
        };
        let broke = |e: etcd_client::Error| End::Broke(e.to_string());
        // A lease from before the reconnect may have expired meanwhile.
        if let Some(id) = *lease {
            let alive = match client.lease_time_to_live(id, None).await {
                Ok(r) => r.ttl() > 0,
                Err(e) => return broke(e),
            };
            if !alive {
                self.hub.emit(RegistryEvent::LeaseLost { lease: id });
                *lease = None;
                self.set_lease(None);
            }
        }
        let id = match *lease {
            Some(id) => id,
            None => {
                let grant = match client.lease_grant(self.ttl, None).await {
                    Ok(g) => g,
                    Err(e) => return broke(e),
                };
                let put = PutOptions::new().with_lease(grant.id());
                if let Err(e) = client
                    .put(self.key.clone(), self.value.clone(), Some(put))
                    .await
                {
                    return broke(e);
                }
                *lease = Some(grant.id());
                self.set_lease(Some(grant.id()));
                self.hub.emit(RegistryEvent::Registered {
                    key: self.key.clone(),
                    lease: grant.id(),
                    ttl: Duration::from_secs(u64::try_from(grant.ttl()).unwrap_or(0)),
                });
                grant.id()
            }
        };
        let (mut keeper, mut answers) = match client.lease_keep_alive(id).await {
            Ok(k) => k,
            Err(e) => return broke(e),
        };
        retry.reset();
        let every =
            Duration::from_millis((u64::try_from(self.ttl).unwrap_or(1) * 1000 / 3).max(300));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {
                    if let Err(e) = keeper.keep_alive().await {
                        return broke(e);
                    }
                    match tokio::time::timeout(timeout, answers.message()).await {
                        Ok(Ok(Some(r))) if r.ttl() > 0 => {}
                        Ok(Ok(Some(_))) => {
                            self.hub.emit(RegistryEvent::LeaseLost { lease: id });
                            *lease = None;
                            self.set_lease(None);
                            return End::Broke("lease expired".into());
                        }
                        Ok(Ok(None)) => return End::Broke("keep-alive stream ended".into()),
                        Ok(Err(e)) => return broke(e),
                        Err(_) => return End::Broke("keep-alive timed out".into()),
                    }
                }
                asked = &mut *revoke => {
                    if let Ok(done) = asked {
                        let revoked = tokio::time::timeout(timeout, client.lease_revoke(id)).await;
                        let revoked = matches!(revoked, Ok(Ok(_)));
                        self.set_lease(None);
                        if revoked {
                            self.hub.emit(RegistryEvent::Revoked { key: self.key.clone() });
                        }
                        let _ = done.send(revoked);
                    }
                    return End::Done;
                }
            }
        }
    }

    fn set_lease(&self, lease: Option<i64>) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        s.lease = lease;
        if lease.is_some() {
            for w in s.waiting.drain(..) {
                w.wake();
            }
        }
    }
}
