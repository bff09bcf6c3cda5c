//! What the registry did, for the user: changes of the endpoint set and registry trouble.
//! Every one is also a `tracing` line. Registry trouble never drops a session: the last known
//! set stays in use.

use std::time::Duration;

use redial_driver::Endpoint;

/// Something the registry client saw.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryEvent {
    /// The whole set was read (at start, or again after a watch could not resume).
    Loaded {
        /// Endpoints in the set.
        endpoints: usize,
        /// The store's revision it was read at.
        revision: i64,
    },
    /// The set changed.
    Changed {
        /// Endpoints that joined.
        added: Vec<Endpoint>,
        /// Endpoints that left.
        removed: Vec<Endpoint>,
        /// The revision of the change.
        revision: i64,
    },
    /// etcd could not be reached (or its stream broke): the last known set stays in use.
    Unreachable {
        /// What failed.
        error: String,
        /// Consecutive failures.
        attempt: u32,
        /// When the next attempt starts.
        next_delay: Duration,
    },
    /// The watch started again after a reconnect, from the revision after the last one seen:
    /// no change is missed.
    Resumed {
        /// The first revision the new watch reports.
        from_revision: i64,
    },
    /// A key under the prefix whose value is not an `ip:port`: ignored.
    Ignored {
        /// The key.
        key: String,
    },
    /// An address was registered under a lease (or registered again after its lease was
    /// lost).
    Registered {
        /// The key.
        key: String,
        /// The lease.
        lease: i64,
        /// The lease's TTL as granted.
        ttl: Duration,
    },
    /// A registration's lease had expired (etcd was unreachable for longer than its TTL): it
    /// is registered again.
    LeaseLost {
        /// The lost lease.
        lease: i64,
    },
    /// A registration was revoked: its key is gone.
    Revoked {
        /// The key.
        key: String,
    },
}

/// The event's `tracing` line.
pub(crate) fn log(e: &RegistryEvent) {
    match e {
        RegistryEvent::Loaded {
            endpoints,
            revision,
        } => tracing::info!(endpoints, revision, "registry: endpoint set loaded"),
        RegistryEvent::Changed {
            added,
            removed,
            revision,
        } => tracing::info!(?added, ?removed, revision, "registry: endpoint set changed"),
        RegistryEvent::Unreachable {
            error,
            attempt,
            next_delay,
        } => tracing::warn!(
            %error,
            attempt,
            ?next_delay,
            "registry unreachable: keeping the last known endpoints"
        ),
        RegistryEvent::Resumed { from_revision } => {
            tracing::info!(from_revision, "registry: watch resumed")
        }
        RegistryEvent::Ignored { key } => {
            tracing::warn!(%key, "registry: a value that is not ip:port, ignored")
        }
        RegistryEvent::Registered { key, lease, ttl } => {
            tracing::info!(%key, lease, ?ttl, "registry: registered")
        }
        RegistryEvent::LeaseLost { lease } => {
            tracing::warn!(
                lease,
                "registry: lease expired while unreachable, registering again"
            )
        }
        RegistryEvent::Revoked { key } => tracing::info!(%key, "registry: revoked"),
    }
}
