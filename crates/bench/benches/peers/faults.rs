//! Faults: 5,000 pipelined `INCR`s with `CLIENT KILL` every 500 commands, each client on its
//! own key; what each client reported per command against what the server executed.

use std::collections::VecDeque;
use std::fmt::Write as _;

use futures::stream::{FuturesOrdered, StreamExt as _};
use redial_bench::WINDOW;
use redial_core::proto::resp::{cmd, Resp};
use redial_core::{Delivery, Outcome};
use redial_tests::servers::RedisServer;
use redial_tokio::{Receipt, Reply};

/// Commands per client.
pub const COMMANDS: usize = 5_000;
/// A `CLIENT KILL` after every this many commands issued.
pub const KILL_EVERY: usize = 500;

/// What one client reported, and what the server executed.
#[derive(Default)]
pub struct Report {
    /// The client.
    pub name: String,
    /// Reported done (a reply).
    pub ok: usize,
    /// Reported failed (redial: abandoned or rejected, i.e. never written; a peer: any error).
    pub error: usize,
    /// Reported in doubt (written, connection lost before the reply).
    pub in_doubt: usize,
    /// Whether the client can report "in doubt" at all.
    pub reports_doubt: bool,
    /// The counter's final value: how many `INCR`s the server executed.
    pub executed: i64,
    /// The distinct error texts (the first few).
    pub errors: Vec<String>,
}

impl Report {
    /// delivered ≤ executed ≤ delivered + in doubt.
    pub fn exact(&self) -> bool {
        let (ok, doubt) = (self.ok as i64, self.in_doubt as i64);
        ok <= self.executed && self.executed <= ok + doubt
    }

    fn error_text(&mut self, e: String) {
        if self.errors.len() < 3 && !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }
}

fn kill(redis: &RedisServer) {
    let r = redis.cli(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    assert!(r.starts_with(':'), "CLIENT KILL answered {r:?}");
}

fn executed(redis: &RedisServer, key: &str) -> i64 {
    let r = redis.cli(&["INCRBY", key, "0"]);
    r.strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("INCRBY {key} 0 answered {r:?}"))
}

/// redial-tokio: `request` with the default delivery (at most once), a reconnect policy that
/// retries quickly and never gives up.
pub async fn redial(redis: &RedisServer) -> Report {
    let key = "faults:redial";
    let (h, _inbound, _events) = redial_tokio::builder(redis.addr())
        .config(redial_tests::real::real_config(Some((300, 2000))))
        .protocol(Resp::new())
        .spawn()
        .expect("spawn");
    let mut rep = Report {
        name: "redial-tokio `request`".into(),
        reports_doubt: true,
        ..Report::default()
    };
    let incr = cmd(["INCR", key]);
    let tally = |rep: &mut Report, r: Result<Reply, redial_tokio::Undelivered>| match r {
        Ok(reply) if !reply.refused => rep.ok += 1,
        Ok(reply) => {
            rep.error += 1;
            rep.error_text(String::from_utf8_lossy(&reply.body).trim().to_string());
        }
        Err(u) if u.outcome == Outcome::InDoubt => rep.in_doubt += 1,
        Err(u) => {
            rep.error += 1;
            rep.error_text(format!("{:?}", u.outcome));
        }
    };
    let mut win: VecDeque<Receipt<Reply>> = VecDeque::with_capacity(WINDOW);
    for i in 1..=COMMANDS {
        if win.len() == WINDOW {
            tally(&mut rep, win.pop_front().expect("receipt").await);
        }
        win.push_back(h.request(incr.clone(), Delivery::AtMostOnce));
        if i % KILL_EVERY == 0 {
            kill(redis);
        }
    }
    for r in win {
        tally(&mut rep, r.await);
    }
    h.close(redial_tokio::CloseMode::Immediate).await;
    rep.executed = executed(redis, key);
    rep
}

/// redis-rs: the same `INCR`s, concurrent on a cloned connection of either kind, with the
/// client's defaults.
pub async fn redis_rs<C>(redis: &RedisServer, name: &str, key: &str, conn: C) -> Report
where
    C: redis::aio::ConnectionLike + Clone + Send + 'static,
{
    let mut rep = Report {
        name: name.into(),
        ..Report::default()
    };
    let incr = redis::cmd("INCR").arg(key).clone();
    let tally = |rep: &mut Report, r: redis::RedisResult<i64>| match r {
        Ok(_) => rep.ok += 1,
        Err(e) => {
            rep.error += 1;
            rep.error_text(format!("{:?}", e.kind()));
        }
    };
    let mut win = FuturesOrdered::new();
    for i in 1..=COMMANDS {
        if win.len() == WINDOW {
            tally(&mut rep, win.next().await.expect("reply"));
        }
        let mut c = conn.clone();
        let incr = &incr;
        win.push_back(async move { incr.query_async::<i64>(&mut c).await });
        if i % KILL_EVERY == 0 {
            kill(redis);
        }
    }
    while let Some(r) = win.next().await {
        tally(&mut rep, r);
    }
    rep.executed = executed(redis, key);
    rep
}

/// Every client's report, on one fresh server.
pub fn run(redis: &RedisServer) -> Vec<Report> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut out = vec![redial(redis).await];
        let client = redis::Client::open(format!("redis://{}/", redis.addr())).expect("client");
        let mgr = redis::aio::ConnectionManager::new(client.clone())
            .await
            .expect("manager");
        out.push(redis_rs(redis, "redis-rs ConnectionManager", "faults:mgr", mgr).await);
        let mux = client
            .get_multiplexed_async_connection()
            .await
            .expect("multiplexed");
        out.push(redis_rs(redis, "redis-rs MultiplexedConnection", "faults:mux", mux).await);
        out
    })
}

/// The side-by-side table of the reports.
pub fn markdown(reports: &[Report]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| client | reported ok | reported error | reported in doubt | executed (counter) | executed − ok | delivered ≤ executed ≤ delivered + in doubt | errors seen |\n|---|---|---|---|---|---|---|---|"
    );
    for r in reports {
        let doubt = if r.reports_doubt {
            r.in_doubt.to_string()
        } else {
            "— (not reported)".into()
        };
        let exact = if r.exact() { "holds" } else { "**violated**" };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {doubt} | {} | {} | {exact} | {} |",
            r.name,
            r.ok,
            r.error,
            r.executed,
            r.executed - r.ok as i64,
            if r.errors.is_empty() {
                "none".to_string()
            } else {
                r.errors.join(", ")
            }
        );
    }
    md
}
