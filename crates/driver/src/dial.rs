//! Resolving and dialing: afresh on every attempt, each tagged with its epoch.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use redial_core::{Addr, Epoch};

use crate::connect::{ConnectError, Connector, Dial};
use crate::runtime::Runtime;
use crate::socket::SocketOptions;
use crate::target::{Endpoint, EndpointAddr, Target};

/// A resolution in progress.
enum Resolving<R: Runtime> {
    /// Known already (fixed endpoints), or refused at once (a malformed target).
    Now(Option<io::Result<Vec<Endpoint>>>),
    /// DNS, for this host name.
    Dns(Arc<str>, Pin<Box<R::Resolve>>),
    Discover(BoxFuture<'static, io::Result<Vec<Endpoint>>>),
}

/// What finished.
pub(crate) enum Dialed<S> {
    /// Resolution of an attempt ended (its endpoints, on success, are in [`Dialer::addrs`]).
    Resolved(Epoch, io::Result<()>),
    Connected(Epoch, Result<S, ConnectError>),
}

pub(crate) struct Dialer<R: Runtime, C: Connector> {
    pub(crate) target: Target,
    pub(crate) connector: C,
    pub(crate) options: SocketOptions,
    /// The endpoints of the latest resolution, and the addresses the core knows them by.
    endpoints: Vec<Endpoint>,
    addrs: Vec<Addr>,
    resolving: Option<(Epoch, Resolving<R>)>,
    dialing: Option<(Epoch, Pin<Box<C::Future>>)>,
    /// The session's own order of peer endpoints ([`crate::Discover::spread`]), by this seed.
    spread: Option<u64>,
    order: Vec<usize>,
}

impl<R: Runtime, C: Connector> Dialer<R, C> {
    pub(crate) fn new(target: Target, connector: C, options: SocketOptions, seed: u64) -> Self {
        let spread = match &target {
            Target::Discover(d) if d.spread() => Some(seed),
            _ => None,
        };
        Dialer {
            spread,
            order: Vec::new(),
            target,
            connector,
            options,
            endpoints: Vec::new(),
            addrs: Vec::new(),
            resolving: None,
            dialing: None,
        }
    }

    /// The core addresses of the latest resolution.
    pub(crate) fn addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// The endpoint behind a core address of the latest resolution.
    pub(crate) fn endpoint(&self, addr: Addr) -> Option<&Endpoint> {
        match addr {
            Addr::Local(i) => self.endpoints.get(i as usize),
            Addr::Ip(a) => self
                .endpoints
                .iter()
                .find(|e| matches!(e.addr, EndpointAddr::Ip(x) if x == a)),
        }
    }

    pub(crate) fn start_resolve(&mut self, rt: &R, epoch: Epoch) {
        let r = match &self.target {
            Target::Endpoints(e) => Resolving::Now(Some(Ok(e.clone()))),
            Target::HostPort(s) => match Target::split_host_port(s) {
                Some((host, port)) => {
                    let fut = Box::pin(rt.resolve(&host, port));
                    Resolving::Dns(host.into(), fut)
                }
                None => Resolving::Now(Some(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{s:?} is not host:port"),
                )))),
            },
            Target::Discover(d) => Resolving::Discover(d.discover()),
        };
        tracing::trace!(%epoch, target = ?self.target, "resolving");
        self.resolving = Some((epoch, r));
    }

    /// Starts dialing `addr` of the latest resolution.
    pub(crate) fn start_dial(&mut self, epoch: Epoch, addr: Addr) -> Result<(), ConnectError> {
        let endpoint = self.endpoint(addr).cloned().ok_or_else(|| {
            ConnectError::new(
                redial_core::NetError::InvalidAddress,
                io::Error::new(io::ErrorKind::InvalidInput, "no such endpoint"),
            )
        })?;
        let dial = Dial {
            endpoint,
            options: self.options,
        };
        self.dialing = Some((epoch, Box::pin(self.connector.connect(&dial))));
        Ok(())
    }

    /// Drops the resolution or dial of `epoch`, if any (dropping aborts it).
    pub(crate) fn abort(&mut self, epoch: Epoch) {
        if self.resolving.as_ref().is_some_and(|(e, _)| *e == epoch) {
            self.resolving = None;
        }
        if self.dialing.as_ref().is_some_and(|(e, _)| *e == epoch) {
            self.dialing = None;
        }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Dialed<C::Stream>> {
        if let Some((epoch, r)) = &mut self.resolving {
            let epoch = *epoch;
            let done = match r {
                Resolving::Now(v) => Poll::Ready(v.take().unwrap_or_else(|| Ok(Vec::new()))),
                Resolving::Dns(host, fut) => fut.as_mut().poll(cx).map(|r| {
                    r.map(|addrs| {
                        addrs
                            .into_iter()
                            .map(|a| Endpoint {
                                host: Some(Arc::clone(host)),
                                addr: EndpointAddr::Ip(a),
                            })
                            .collect()
                    })
                }),
                Resolving::Discover(fut) => fut.as_mut().poll(cx),
            };
            if let Poll::Ready(r) = done {
                self.resolving = None;
                return Poll::Ready(Dialed::Resolved(epoch, r.map(|e| self.resolved(e))));
            }
        }
        if let Some((epoch, fut)) = &mut self.dialing {
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                let epoch = *epoch;
                self.dialing = None;
                return Poll::Ready(Dialed::Connected(epoch, r));
            }
        }
        Poll::Pending
    }

    fn resolved(&mut self, mut endpoints: Vec<Endpoint>) {
        if let Some(seed) = self.spread {
            let keys: Vec<Addr> = endpoints.iter().map(spread_key).collect();
            redial_core::spread::order_indices(seed, &keys, &mut self.order);
            let mut slots: Vec<Option<Endpoint>> = endpoints.into_iter().map(Some).collect();
            endpoints = self.order.iter().filter_map(|&i| slots[i].take()).collect();
        }
        self.addrs.clear();
        for (i, e) in endpoints.iter().enumerate() {
            self.addrs.push(match e.addr {
                EndpointAddr::Ip(a) => Addr::Ip(a),
                // Named by its place in this resolution.
                EndpointAddr::Unix(_) => Addr::Local(u32::try_from(i).unwrap_or(u32::MAX)),
            });
        }
        self.endpoints = endpoints;
    }
}

/// What an endpoint is ranked by in a session's own order: its address (a Unix socket by a
/// hash of its path).
fn spread_key(e: &Endpoint) -> Addr {
    match &e.addr {
        EndpointAddr::Ip(a) => Addr::Ip(*a),
        EndpointAddr::Unix(p) => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.hash(&mut h);
            Addr::Local(h.finish() as u32)
        }
    }
}
