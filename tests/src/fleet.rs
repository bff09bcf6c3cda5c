//! A fleet on a real etcd, for any [`Adapter`]: three line servers register with leases and
//! fifty sessions spread over them; one server's keep-alive stops and its sessions move off it
//! (every message accounted for) while etcd is killed and restarted; a server that registers
//! while the watch is down is seen when it resumes and gets new connections. And a shared
//! retry budget measured against a down server.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redial_core::{AckMode, Backoff, Config, Delivery, GiveUp, Jitter, Outcome, State};
use redial_driver::{BudgetPolicy, Departure, Handle, SharedBudget, Target};
use redial_etcd::{EtcdConfig, EtcdDiscover, Registration, RegistryEvent};

use crate::conformance::{dead_addr, eventually, fast_config, within, Adapter};
use redial_testkit::etcd::EtcdServer;
use crate::servers::{skip_or_fail, LineServer};

/// Generates the fleet tests for an adapter.
#[macro_export]
macro_rules! fleet_tests {
    ($adapter:ty) => {
        #[test]
        fn a_fleet_moves_off_a_departed_server_through_an_etcd_restart() {
            <$adapter as $crate::conformance::Adapter>::block_on(
                $crate::fleet::moves_off_a_departed_server::<$adapter>(),
            );
        }

        #[test]
        fn a_shared_budget_caps_attempts_against_a_down_server() {
            <$adapter as $crate::conformance::Adapter>::block_on(
                $crate::fleet::budget_caps_attempts::<$adapter>(),
            );
        }
    };
}

const LONG: Duration = Duration::from_secs(20);
const TTL: Duration = Duration::from_secs(2);
const SPREAD: Duration = Duration::from_millis(500);
const DRAIN: Duration = Duration::from_secs(1);
/// The watch's own reconnects wait exactly this long: the window in which the test changes
/// the set while the watch is down.
const WATCH_RETRY: Duration = Duration::from_secs(3);
/// Each session sends its next message this long after the last one's outcome: the fleet's
/// traffic rate, not a wait for anything.
const PACE: Duration = Duration::from_millis(25);

fn prefix(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/redial-test/{}/{name}/{}",
        std::process::id(),
        N.fetch_add(1, SeqCst)
    )
}

fn session_config() -> Config {
    fast_config().with_give_up(GiveUp::NEVER)
}

fn line_server() -> LineServer {
    let s = LineServer::start();
    s.set_reply(Some("+OK "));
    s
}

/// The outcomes of one session's messages, in order.
type Log = Arc<Mutex<Vec<(String, Outcome)>>>;

/// Sends numbered messages one at a time until `stop`, recording each outcome.
async fn traffic<A: Adapter>(id: usize, handle: Handle, stop: Arc<AtomicBool>, log: Log) {
    let mut n = 0;
    while !stop.load(SeqCst) {
        let payload = format!("s{id}-m{n}");
        n += 1;
        let receipt = handle.send(payload.clone().into_bytes(), Delivery::AtMostOnce);
        let outcome = match within::<A, _>(LONG, "an outcome", receipt).await {
            Ok(_) => Outcome::Delivered,
            Err(u) => {
                assert_eq!(u.payload, payload.as_bytes(), "the payload handed back");
                u.outcome
            }
        };
        log.lock().unwrap().push((payload, outcome));
        A::sleep(PACE).await;
    }
}

/// Every registry event, with when it was seen.
type Seen = Arc<Mutex<Vec<(Instant, RegistryEvent)>>>;

fn seen_since(seen: &Seen, since: Instant, f: impl Fn(&RegistryEvent) -> bool) -> Option<Instant> {
    seen.lock()
        .unwrap()
        .iter()
        .find(|(t, e)| *t >= since && f(e))
        .map(|(t, _)| *t)
}

fn removed(e: &RegistryEvent, addr: &str) -> bool {
    matches!(e, RegistryEvent::Changed { removed, .. } if removed.iter().any(|x| x.to_string() == addr))
}

fn added(e: &RegistryEvent, addr: &str) -> bool {
    matches!(e, RegistryEvent::Changed { added, .. } if added.iter().any(|x| x.to_string() == addr))
}

fn live(servers: &[LineServer]) -> Vec<u64> {
    servers.iter().map(LineServer::live).collect()
}

/// The whole ride; see the module docs.
pub async fn moves_off_a_departed_server<A: Adapter>() {
    let mut etcd = match EtcdServer::start() {
        Ok(e) => e,
        Err(e) => return skip_or_fail("etcd fleet", e.reason()),
    };
    let started = Instant::now();
    let cfg = EtcdConfig::new([etcd.url()], &prefix(A::NAME));
    let mut servers: Vec<LineServer> = (0..3).map(|_| line_server()).collect();
    let mut regs: Vec<Option<Registration>> = servers
        .iter()
        .map(|s| Some(Registration::start(cfg.clone(), &s.addr().to_string(), TTL).unwrap()))
        .collect();
    for r in regs.iter().flatten() {
        within::<A, _>(LONG, "registered", r.registered()).await;
    }
    let watch_cfg = cfg.clone().with_backoff(
        Backoff::new()
            .with_initial(WATCH_RETRY)
            .with_cap(WATCH_RETRY)
            .with_jitter(Jitter::None),
    );
    let discover = EtcdDiscover::start(watch_cfg).unwrap();
    let seen: Seen = Arc::default();
    let mut events = discover.events();
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
        async move {
            while !stop.load(SeqCst) {
                let next = futures::future::select(events.next(), A::sleep(PACE)).await;
                if let futures::future::Either::Left((Some(e), _)) = next {
                    seen.lock().unwrap().push((Instant::now(), e));
                }
            }
        }
    };
    let departure = Departure::new().with_spread(SPREAD).with_drain(DRAIN);
    let spawn = |n: usize| -> Vec<Handle> {
        (0..n)
            .map(|_| {
                let (h, _inbound, _events) = A::builder(Target::discover(discover.clone()))
                    .config(session_config())
                    .acks(AckMode::InOrder)
                    .departure(departure)
                    .spawn()
                    .expect("valid config");
                h
            })
            .collect()
    };
    let fleet = spawn(50);
    let logs: Vec<Log> = (0..fleet.len()).map(|_| Log::default()).collect();
    let senders = futures::future::join_all(
        fleet
            .iter()
            .enumerate()
            .map(|(i, h)| traffic::<A>(i, h.clone(), Arc::clone(&stop), Arc::clone(&logs[i]))),
    );

    let ride = async {
        eventually::<A>(LONG, "50 sessions connected", || {
            live(&servers).iter().sum::<u64>() == 50
        })
        .await;
        let spread = live(&servers);
        eprintln!("[{}] 50 sessions over three servers: {spread:?}", A::NAME);
        assert!(spread.iter().all(|&n| n >= 5), "spread: {spread:?}");
        let departing = servers[1].addr().to_string();
        let leaving = spread[1];

        // 1. Server 1's keep-alive stops (as if it died without deregistering); its key
        //    expires after the TTL and its sessions move.
        let t_stop = Instant::now();
        drop(regs[1].take());
        eventually::<A>(LONG, "server 1 leaves the set", || {
            seen_since(&seen, t_stop, |e| removed(e, &departing)).is_some()
        })
        .await;
        let t_left = Instant::now();
        // 2. etcd dies while the sessions move: they move on the last known set.
        etcd.stop();
        let t_killed = Instant::now();
        let bound = TTL + SPREAD + DRAIN + Duration::from_secs(2);
        eventually::<A>(LONG, "every session off server 1", || {
            servers[1].live() == 0 && live(&servers).iter().sum::<u64>() == 50
        })
        .await;
        let moved = t_stop.elapsed();
        eprintln!(
            "[{}] {leaving} sessions moved off server 1 in {:?} after its keep-alive stopped \
             ({:?} after it left the set; bound {bound:?}), etcd down meanwhile",
            A::NAME,
            moved,
            t_left.elapsed(),
        );
        assert!(moved <= bound, "moved in {moved:?}, bound {bound:?}");
        assert!(
            seen_since(&seen, t_killed, |e| matches!(
                e,
                RegistryEvent::Unreachable { .. }
            ))
            .is_some()
                || etcd.pid() == 0,
            "registry trouble is an event"
        );
        // Every session stayed up but the movers: each of servers 0 and 2 accepted its first
        // sessions and the movers, nothing more.
        let accepted = servers[0].connections() + servers[2].connections();
        assert_eq!(accepted, 50, "a session dropped while etcd was down");

        // 3. etcd comes back; while the watch waits out its retry, a new server registers.
        etcd.restart();
        let t_back = Instant::now();
        servers.push(line_server());
        let newcomer = servers[3].addr().to_string();
        let reg = Registration::start(cfg.clone(), &newcomer, TTL).unwrap();
        within::<A, _>(LONG, "the newcomer registered", reg.registered()).await;
        let t_registered = Instant::now();
        regs.push(Some(reg));
        eventually::<A>(LONG, "the watch resumes and sees the newcomer", || {
            seen_since(&seen, t_back, |e| added(e, &newcomer)).is_some()
        })
        .await;
        let resumed = seen_since(&seen, t_killed, |e| {
            matches!(e, RegistryEvent::Resumed { .. })
        })
        .expect("the watch resumed from its revision (not a fresh read)");
        assert!(
            resumed > t_registered,
            "the change was made while the watch was down"
        );
        eprintln!(
            "[{}] etcd back in {:?}; the newcomer registered {:?} later, seen on resume {:?} after that",
            A::NAME,
            t_back - t_killed,
            t_registered - t_back,
            resumed - t_registered,
        );
        let accepted = servers[0].connections() + servers[2].connections();
        assert_eq!(accepted, 50, "a session dropped around etcd's restart");
        assert_eq!(
            servers[3].connections(),
            0,
            "old sessions stay where they are"
        );

        // 4. New sessions include the newcomer in their rotation.
        let more = spawn(40);
        eventually::<A>(LONG, "90 sessions connected", || {
            live(&servers).iter().sum::<u64>() == 90
                && fleet
                    .iter()
                    .chain(&more)
                    .all(|h| h.state() == State::Connected)
        })
        .await;
        let spread = live(&servers);
        eprintln!("[{}] after 40 more sessions: {spread:?}", A::NAME);
        assert!(
            spread[3] > 0,
            "the newcomer got no new connection: {spread:?}"
        );
        assert_eq!(spread[1], 0);
        stop.store(true, SeqCst);
        more
    };
    let (more, _, _) = futures::join!(ride, senders, collector);

    // Every message accounted for: each has one outcome; each one delivered reached a server
    // exactly once; none was received twice.
    let mut received: Vec<String> = servers.iter().flat_map(LineServer::received).collect();
    let total_received = received.len();
    received.sort();
    received.dedup();
    assert_eq!(
        received.len(),
        total_received,
        "a message was received twice"
    );
    let received: HashSet<String> = received.into_iter().collect();
    let (mut delivered, mut in_doubt, mut other) = (0, 0, 0);
    for log in &logs {
        for (payload, outcome) in log.lock().unwrap().iter() {
            match outcome {
                Outcome::Delivered => {
                    delivered += 1;
                    assert!(
                        received.contains(payload),
                        "{payload} delivered, never received"
                    );
                }
                Outcome::InDoubt => in_doubt += 1,
                _ => other += 1,
            }
        }
    }
    let sent: usize = logs.iter().map(|l| l.lock().unwrap().len()).sum();
    eprintln!(
        "[{}] {sent} messages: {delivered} delivered, {in_doubt} in doubt, {other} otherwise; \
         the ride took {:?}",
        A::NAME,
        started.elapsed()
    );
    assert!(delivered > 1000, "traffic flowed: {delivered}");
    assert_eq!(other, 0, "nothing abandoned or rejected");
    for h in fleet.iter().chain(&more) {
        h.close_graceful(Duration::from_secs(1)).await;
    }
}

/// Two fleets of 40 against one down server, one sharing a budget: the unbudgeted fleet's
/// attempts grow as the backoff schedules allow; the budgeted one stays within its first
/// attempts plus the budget's capacity and minimum rate.
pub async fn budget_caps_attempts<A: Adapter>() {
    const N: usize = 40;
    let (capacity, rate) = (10u32, 10u32);
    let dead = dead_addr();
    let config = session_config().with_backoff(
        Backoff::new()
            .with_initial(Duration::from_millis(50))
            .with_cap(Duration::from_secs(1)),
    );
    // Before the budget exists: its refill never runs longer than the measured time.
    let start = Instant::now();
    let budget = SharedBudget::new(
        BudgetPolicy::new()
            .with_capacity(capacity)
            .with_min_per_sec(rate)
            .with_jitter(Duration::from_millis(200)),
    )
    .unwrap();
    let fleet = |budget: Option<&SharedBudget>| -> Vec<Handle> {
        (0..N)
            .map(|_| {
                let mut b = A::builder(dead.into()).config(config.clone());
                if let Some(budget) = budget {
                    b = b.retry_budget(budget.clone());
                }
                b.spawn().expect("valid config").0
            })
            .collect()
    };
    let free = fleet(None);
    let braked = fleet(Some(&budget));
    let attempts = |f: &[Handle]| f.iter().map(|h| h.stats().attempts).sum::<u64>();
    eventually::<A>(LONG, "the unbudgeted fleet's 600th attempt", || {
        attempts(&free) >= 600
    })
    .await;
    let (a_free, a_braked) = (attempts(&free), attempts(&braked));
    let elapsed = start.elapsed();
    let deferred: u64 = braked.iter().map(|h| h.stats().deferred).sum();
    let bound =
        N as u64 + u64::from(capacity) + (f64::from(rate) * elapsed.as_secs_f64()).ceil() as u64;
    eprintln!(
        "[{}] {N} sessions against a down server for {elapsed:?}: {a_free} attempts without a \
         budget, {a_braked} with one (bound {bound}; {deferred} retries deferred; budget {:?})",
        A::NAME,
        budget.stats()
    );
    assert!(a_braked <= bound, "{a_braked} attempts, bound {bound}");
    assert!(a_braked * 3 < a_free, "{a_braked} vs {a_free}");
    assert!(
        braked.iter().all(|h| h.state() != State::Closed),
        "nobody gave up"
    );
    for h in free.iter().chain(&braked) {
        h.close(redial_core::CloseMode::Immediate).await;
    }
}
