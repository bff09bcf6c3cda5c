//! etcd on the command line: `redial pipe etcd://HOST:PORT/PREFIX` (a watched target) and
//! `redial register etcd://HOST:PORT/PREFIX ADDR --ttl 5s` (a lease kept alive until
//! interrupted, then revoked). Registry events go to stderr; credentials never do.

use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use redial_etcd::{EtcdConfig, EtcdDiscover, Registration, RegistryEvent};
use redial_tokio::Target;

use crate::duration::parse_duration;
use crate::{CmdResult, UsageError};

/// Options of `redial register`.
#[derive(Debug, Args)]
pub(crate) struct RegisterArgs {
    /// Where: `etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/PREFIX`.
    #[arg(value_name = "ETCD_URL")]
    url: String,
    /// The address to register (`ip:port`), as the key `PREFIX/ADDR`.
    #[arg(value_name = "ADDR")]
    addr: String,
    /// The lease's time to live (whole seconds): the key disappears this long after the
    /// process dies.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    ttl: Duration,
}

/// An `etcd://` URL as it may be shown: credentials hidden.
pub(crate) fn shown(url: &str) -> String {
    match EtcdConfig::from_url(url) {
        Ok(c) => c.to_string(),
        Err(_) => "(an etcd:// URL)".into(),
    }
}

fn config(url: &str) -> Result<EtcdConfig, UsageError> {
    EtcdConfig::from_url(url).map_err(|e| UsageError(format!("{}: {e}", shown(url))))
}

/// The line printed for a registry event.
fn line(e: &RegistryEvent) -> String {
    match e {
        RegistryEvent::Loaded {
            endpoints,
            revision,
        } => format!("registry: {endpoints} endpoints (revision {revision})"),
        RegistryEvent::Changed {
            added,
            removed,
            revision,
        } => format!("registry: +{added:?} -{removed:?} (revision {revision})"),
        RegistryEvent::Unreachable {
            error,
            attempt,
            next_delay,
        } => format!(
            "registry unreachable (attempt {attempt}, next in {next_delay:?}): {error}; keeping the last known endpoints"
        ),
        RegistryEvent::Resumed { from_revision } => {
            format!("registry: watch resumed from revision {from_revision}")
        }
        RegistryEvent::Ignored { key } => format!("registry: {key} is not ip:port, ignored"),
        RegistryEvent::Registered { key, lease, ttl } => {
            format!("registered {key} (lease {lease:x}, ttl {ttl:?})")
        }
        RegistryEvent::LeaseLost { lease } => {
            format!("lease {lease:x} expired while etcd was unreachable: registering again")
        }
        RegistryEvent::Revoked { key } => format!("revoked {key}"),
        other => format!("registry: {other:?}"),
    }
}

/// The target of `redial pipe etcd://…`; its registry events are printed on stderr.
pub(crate) fn target(url: &str) -> Result<Target, Box<dyn std::error::Error>> {
    let etcd = EtcdDiscover::start(config(url)?)?;
    let mut events = etcd.events();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            eprintln!("{}", line(&e));
        }
    });
    Ok(Target::discover(etcd))
}

/// `redial register`.
pub(crate) fn run(args: RegisterArgs) -> CmdResult {
    let cfg = config(&args.url)?;
    if args.addr.parse::<std::net::SocketAddr>().is_err() {
        return Err(UsageError(format!("{:?} is not ip:port", args.addr)).into());
    }
    if args.ttl < Duration::from_secs(1) {
        return Err(UsageError("--ttl must be at least 1s".into()).into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let reg = Registration::start(cfg, &args.addr, args.ttl)?;
        let mut events = reg.events();
        let printer = async {
            while let Some(e) = events.next().await {
                eprintln!("{}", line(&e));
            }
        };
        tokio::select! {
            _ = printer => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate() => {}
        }
        let key = reg.key().to_owned();
        if reg.revoke().await {
            eprintln!("revoked {key}");
            Ok(())
        } else {
            Err(format!("could not revoke {key}: it expires with its lease").into())
        }
    })
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => futures::future::pending::<()>().await,
    }
}
