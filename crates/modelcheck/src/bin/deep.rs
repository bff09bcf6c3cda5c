//! The deep run: explores the Redis-like and NATS-like models far beyond the CI bounds and
//! prints distinct states, depth and states per second as a markdown table.
//!
//! `cargo run --release -p redial-modelcheck --bin deep -- [redis|nats|both] [DEPTH] [MAX_STATES] [ci|deep] [key=value,...]`
//!
//! The last argument overrides bounds: `messages`, `faults`, `jumps`, `pushes`, `user_ops`,
//! `stale` (numbers), `subscribe`, `splits`, `early_delivery`, `auto_close`, `auto_handshake`
//! (`true`/`false`). `MAX_STATES` bounds the generated states (duplicates included), and
//! `REDIAL_MC_SECONDS` the time (default 600 s per model).

use redial_modelcheck::{check_for, Limits, Proto};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map_or("both", String::as_str);
    let depth: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(40);
    let max_states: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let mut limits = match args.get(3).map(String::as_str) {
        Some("ci") => Limits::CI,
        _ => Limits::DEEP,
    };
    for kv in args
        .get(4)
        .map_or("", String::as_str)
        .split(',')
        .filter(|s| !s.is_empty())
    {
        let (k, v) = kv.split_once('=').expect("key=value");
        let n = || v.parse::<u8>().expect("a number");
        let b = || v.parse::<bool>().expect("true or false");
        match k {
            "messages" => limits.messages = n(),
            "faults" => limits.faults = n(),
            "jumps" => limits.jumps = n(),
            "pushes" => limits.pushes = n(),
            "user_ops" => limits.user_ops = n(),
            "stale" => limits.stale = n(),
            "subscribe" => limits.subscribe = b(),
            "splits" => limits.splits = b(),
            "early_delivery" => limits.early_delivery = b(),
            "auto_close" => limits.auto_close = b(),
            "auto_handshake" => limits.auto_handshake = b(),
            other => panic!("unknown bound {other}"),
        }
    }
    let seconds: u64 = std::env::var("REDIAL_MC_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let protos: &[Proto] = match which {
        "redis" => &[Proto::Redis],
        "nats" => &[Proto::Nats],
        _ => &[Proto::Redis, Proto::Nats],
    };
    let mut rows = Vec::new();
    let mut failed = false;
    for &p in protos {
        let r = check_for(
            p,
            limits,
            depth,
            threads,
            max_states,
            std::time::Duration::from_secs(seconds),
        );
        eprint!("{r}");
        failed |= !r.violations.is_empty();
        rows.push(r);
    }
    println!("| model | bounds | depth bound | max depth reached | distinct states | time | states/s | violations |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {:?} | {:?} | {} | {} | {} | {:.1} s | {:.0} | {} |",
            r.proto,
            limits,
            r.depth,
            r.max_depth,
            r.states,
            r.elapsed.as_secs_f64(),
            r.rate(),
            r.violations.len()
        );
    }
    if failed {
        std::process::exit(1);
    }
}
