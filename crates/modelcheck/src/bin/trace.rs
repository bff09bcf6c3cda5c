//! Writes the `redial replay` trace of a history given as steps, e.g. a counterexample printed
//! by the checker: `cargo run -p redial-modelcheck --bin trace -- redis "DialOk, Enqueue(AtMostOnce), Written" out.jsonl [ci|deep]`.

use redial_core::Delivery;
use redial_modelcheck::host::{DialError, Feed};
use redial_modelcheck::{write_trace, Act, Limits, Proto, SessionModel};

/// Every step there is, to read one back from its printed form.
fn all() -> Vec<Act> {
    let mut v = vec![
        Act::DialOk,
        Act::DialFail(DialError::Refused),
        Act::DialFail(DialError::Invalid),
        Act::Deliver,
        Act::Written,
        Act::Closed,
        Act::Reply,
        Act::Push,
        Act::PeerPing,
        Act::Eof,
        Act::Reset,
        Act::Restart,
        Act::Silence,
        Act::Stale,
        Act::Jump,
        Act::Enqueue(Delivery::AtMostOnce),
        Act::Enqueue(Delivery::Idempotent),
        Act::Request,
        Act::Subscribe,
        Act::CloseNow,
        Act::CloseGraceful,
        Act::ReconnectNow,
    ];
    v.extend((0..3).map(Act::Answer));
    v.extend([Feed::All, Feed::Unit, Feed::Head, Feed::Cut].map(Act::Feed));
    v
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: trace redis|nats STEPS OUT [ci|deep]";
    let proto = match args.first().map(String::as_str) {
        Some("redis") => Proto::Redis,
        Some("nats") => Proto::Nats,
        _ => panic!("{usage}"),
    };
    let limits = match args.get(3).map(String::as_str) {
        Some("ci") => Limits::CI,
        _ => Limits::DEEP,
    };
    let known = all();
    let steps: Vec<Act> = args
        .get(1)
        .expect(usage)
        .split(", ")
        .map(|s| {
            s.trim()
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        })
        .filter(|s| !s.is_empty())
        .map(|s| {
            *known
                .iter()
                .find(|a| format!("{a:?}") == s)
                .unwrap_or_else(|| panic!("unknown step {s:?}"))
        })
        .collect();
    let out = std::path::PathBuf::from(args.get(2).expect(usage));
    let model = SessionModel::new(proto, limits);
    let host = model.run(&steps, false).expect("the core did not panic");
    for v in &host.violations {
        println!("violation: {:?}: {}", v.prop, v.what);
    }
    match write_trace(&model, &steps, &out) {
        Some(p) => println!("wrote {} ({} steps)", p.display(), steps.len()),
        None => {
            eprintln!("could not write {}", out.display());
            std::process::exit(1);
        }
    }
}
