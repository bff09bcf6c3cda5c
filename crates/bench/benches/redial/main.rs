//! `redial-bench`: every benchmark of issue 7 in one command, writing `BENCHMARKS.md`.
//!
//! `redial-bench all [--out BENCHMARKS.md]` runs everything; the other subcommands are the
//! workloads it runs in child processes (under callgrind, or for memory isolation).

#![allow(missing_docs)]

mod core_step;
mod dead;
mod mem;
mod placement;
mod tput;
mod util;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use util::{sh, Spread};

/// Interleaved rounds per throughput comparison.
const ROUNDS: usize = 15;

#[global_allocator]
static ALLOC: util::Counting = util::Counting;

fn main() {
    // `cargo bench` adds `--bench`; it means nothing here.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "cg-core" => {
            let n: u64 = arg(3).parse().expect("cycles");
            core_step::run(n, arg(2) == "alloc");
        }
        "cg-tput" => {
            let n: usize = arg(3).parse().expect("n");
            let size: usize = arg(4).parse().expect("size");
            let addr: SocketAddr = arg(5).parse().expect("addr");
            tput::cg_client(arg(2), n, size, addr);
        }
        "smol64" => {
            // One process run of the smol 64 B comparison (issue #13, part 3), printed as one
            // line: its ratios and where its threads ran. `REDIAL_BENCH_PIN=main=0,smol-1=1,...`
            // pins them first.
            let rounds: usize = arg(2).parse().expect("rounds");
            let sink = tput::Sink::start();
            // smol's executor thread and async-io's reactor thread exist from here on.
            smol::block_on(smol::spawn(async {}));
            smol::block_on(smol::Timer::after(Duration::from_millis(1)));
            let spec = std::env::var("REDIAL_BENCH_PIN").unwrap_or_default();
            let pinned = placement::pin(&spec);
            let sampler = placement::Sampler::start(&["main", "smol-1", "bench-sink", "async-io"]);
            let c = tput::smol_side_by_side(&sink, rounds, 200_000, 64);
            let same = sampler.finish();
            println!(
                "batch={:.3} send={:.3} chan={:.3} aa={:.3} {same} pinned={}",
                c.rows[3].2.median,
                c.rows[2].2.median,
                c.rows[4].2.median,
                c.rows[1].2.median,
                if pinned.is_empty() {
                    "none".to_string()
                } else {
                    pinned.join(",")
                }
            );
        }
        "hold" => {
            util::raise_nofile();
            mem::hold();
        }
        "mem" => {
            util::raise_nofile();
            let n: usize = arg(3).parse().expect("n");
            mem::measure(arg(2), n, arg(4).parse().expect("addr"));
        }
        "all" | "" => {
            let out = args
                .iter()
                .position(|a| a == "--out")
                .and_then(|i| args.get(i + 1))
                .map_or_else(|| PathBuf::from("BENCHMARKS.md"), PathBuf::from);
            all(&out);
        }
        other => {
            eprintln!("usage: redial-bench [all [--out FILE]]   (unknown: {other})");
            std::process::exit(2);
        }
    }
}

/// Instructions callgrind collected for `exe args` (all threads, user space).
fn callgrind(exe: &Path, args: &[String]) -> Option<u64> {
    let file = std::env::temp_dir().join(format!("redial-bench-cg.{}", std::process::id()));
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg(exe)
        .args(args)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&file);
    let err = String::from_utf8_lossy(&out.stderr);
    let n = err
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|s| s.trim().parse().ok());
    if n.is_none() || !out.status.success() {
        eprintln!("callgrind failed: {err}");
    }
    n
}

/// The top `k` functions by exclusive instructions of `exe args` under callgrind.
fn cg_profile(exe: &Path, args: &[String], k: usize) -> String {
    let file = std::env::temp_dir().join(format!("redial-bench-prof.{}", std::process::id()));
    let ok = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg(exe)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    let text = if ok {
        Command::new("callgrind_annotate")
            .arg("--inclusive=no")
            .arg(&file)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let _ = std::fs::remove_file(&file);
    let mut out = String::new();
    let lines = text
        .lines()
        .skip_while(|l| !l.contains("file:function"))
        .skip(2);
    for l in lines.take(k) {
        let l = l.split(" [").next().unwrap_or("");
        let l = match l.find("/library/") {
            Some(i) if l.contains("/rustc/") => {
                let head = l.split("/rustc/").next().unwrap_or("");
                format!("{head}std:{}", &l[i + "/library/".len()..])
            }
            _ => match l.find("index.crates.io-") {
                Some(i) => {
                    let rest = &l[i..];
                    let head = l.split("/root/").next().unwrap_or("");
                    format!("{head}{}", rest.split_once('/').map_or(rest, |x| x.1))
                }
                None => l.replace("/work/main/", ""),
            },
        };
        let _ = writeln!(out, "{l}");
    }
    out
}

/// (count at 2N − count at N) / N.
fn per_unit(exe: &Path, make: impl Fn(u64) -> Vec<String>, n: u64) -> Option<f64> {
    let a = callgrind(exe, &make(n))?;
    let b = callgrind(exe, &make(2 * n))?;
    Some((b as f64 - a as f64) / n as f64)
}

fn status(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**missed**"
    }
}

/// Process runs per placement in section 2b.
const PLACEMENT_RUNS: usize = 10;

/// Issue #13, part 3: the smol 64 B comparison in [`PLACEMENT_RUNS`] separate processes for
/// each thread placement (unpinned, and the three ways of putting three busy threads on two
/// CPUs), the placements interleaved run by run.
fn placement_section(exe: &Path, goals: &mut Vec<String>, log: &dyn Fn(&str)) -> String {
    let placements = [
        ("unpinned (the kernel places them)", ""),
        (
            "sink with the session task (main=0, smol-1=1, sink=1)",
            "main=0,smol-1=1,bench-sink=1",
        ),
        (
            "sink with the sender (main=0, smol-1=1, sink=0)",
            "main=0,smol-1=1,bench-sink=0",
        ),
        (
            "sender with the session task (main=0, smol-1=0, sink=1)",
            "main=0,smol-1=0,bench-sink=1",
        ),
    ];
    let rounds = 5;
    // results[placement] = per run: (batch, send, chan, the line)
    let mut results: Vec<Vec<(f64, f64, f64, String)>> = vec![Vec::new(); placements.len()];
    for run in 0..PLACEMENT_RUNS {
        log(&format!("   run {} of {PLACEMENT_RUNS}", run + 1));
        for (i, (_, spec)) in placements.iter().enumerate() {
            let o = Command::new(exe)
                .args(["smol64", &rounds.to_string()])
                .env("REDIAL_BENCH_PIN", spec)
                .output()
                .expect("smol64 child");
            let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let field = |k: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            match (field("batch="), field("send="), field("chan=")) {
                (Some(b), Some(s), Some(c)) => results[i].push((b, s, c, line.clone())),
                _ => eprintln!(
                    "smol64 failed: {line} {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
            }
        }
    }
    let mut md = String::new();
    let _ = writeln!(md, "## 2b. smol, 64 B: the bimodality is the benchmark's thread placement (issue #13, part 3)\n");
    let _ = writeln!(
        md,
        "The smol 64 B comparison of section 2 ({rounds} rounds, 200,000 messages each, ratios \
         per round to raw A, median of the run) in {PLACEMENT_RUNS} separate processes for each \
         placement, interleaved run by run. Three threads are busy on two CPUs: the sender \
         (`main`, in `smol::block_on`, which also is the raw client), smol's executor thread \
         (`smol-1`: redial's session task, the channel writer's task) and the sink \
         (`bench-sink`). Pinned with `sched_setaffinity` before the first round; unpinned runs \
         record, every 2 ms, the CPU each thread last ran on.\n"
    );
    let _ = writeln!(
        md,
        "| placement | runs | `send_batch` / raw: median of runs (min – max) | runs ≥ 1.2× / ≤ 1.0× | `send` / raw | channel writer / raw | `send` / channel writer |\n|---|---|---|---|---|---|---|"
    );
    for (i, (name, _)) in placements.iter().enumerate() {
        let r = &results[i];
        let col = |f: fn(&(f64, f64, f64, String)) -> f64| {
            Spread::of(&r.iter().map(f).collect::<Vec<_>>())
        };
        let fast = r.iter().filter(|x| x.0 >= 1.2).count();
        let slow = r.iter().filter(|x| x.0 <= 1.0).count();
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {fast} / {slow} | {} | {} | {} |",
            r.len(),
            col(|x| x.0).show(2),
            col(|x| x.1).show(3),
            col(|x| x.2).show(3),
            col(|x| x.1 / x.2).show(2)
        );
        if i == 0 {
            let b = col(|x| x.0);
            goals.push(format!(
                "2b. (#13) smol 64 B `send_batch` / raw over {} unpinned process runs: {} ({fast} runs ≥ 1.2×, {slow} ≤ 1.0×); pinned, sink with the session task: {}; sink with the sender: {}",
                r.len(),
                b.show(2),
                Spread::of(&results[1].iter().map(|x| x.0).collect::<Vec<_>>()).show(2),
                Spread::of(&results[2].iter().map(|x| x.0).collect::<Vec<_>>()).show(2),
            ));
        }
    }
    let _ = writeln!(
        md,
        "\nThe unpinned runs, each with the share of samples in which two threads were last on \
         the same CPU:\n\n```"
    );
    for (b, _, _, line) in &results[0] {
        let shares: Vec<&str> = line
            .split_whitespace()
            .filter(|w| w.starts_with("main+") || w.starts_with("smol-1+bench"))
            .filter(|w| !w.contains("async-io"))
            .collect();
        let _ = writeln!(md, "send_batch/raw {b:.2}  {}", shares.join("  "));
    }
    let _ = writeln!(md, "```\n");
    md
}

fn all(out: &Path) {
    let started = Instant::now();
    let exe = std::env::current_exe().expect("current exe");
    let mut md = String::new();
    let mut goals: Vec<String> = Vec::new();
    let have_valgrind = !sh("command -v valgrind").is_empty();
    // For development: REDIAL_BENCH_ONLY=1,3 runs only those sections.
    let only = std::env::var("REDIAL_BENCH_ONLY").unwrap_or_default();
    let want = |k: &str| only.is_empty() || only.split(',').any(|x| x == k);
    let log = |s: &str| eprintln!("[{:6.1}s] {s}", started.elapsed().as_secs_f64());

    let _ = writeln!(md, "# redial benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `bench/run.sh`, i.e. `cargo bench -p redial-bench --bench redial -- all \
         --out BENCHMARKS.md` (release profile). Every figure below was measured by that run; \
         nothing is edited by hand.\n"
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(
        md,
        "| date (UTC) | {} |",
        sh("date -u '+%Y-%m-%d %H:%M:%S'")
    );
    let _ = writeln!(md, "| nproc | {} |", sh("nproc"));
    let _ = writeln!(
        md,
        "| CPU | {} |",
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
    );
    let _ = writeln!(md, "| kernel | {} |", sh("uname -srm"));
    let _ = writeln!(md, "| rustc | {} |", sh("rustc --version"));
    let _ = writeln!(md, "| valgrind | {} |", sh("valgrind --version"));
    let _ = writeln!(
        md,
        "| build | release (`[profile.release]` of the workspace), `CARGO_TARGET_DIR` as set |\n"
    );
    let _ = writeln!(
        md,
        "Method: comparisons run side by side in one process, interleaved, with the order of \
         the sides rotated every round; each table shows the median over rounds with (min – \
         max). A raw-vs-raw control (the same raw client twice, A and B) gives the noise band: \
         a ratio inside the A/B spread is indistinguishable from raw. Instruction counts come \
         from `valgrind --tool=callgrind` (user space, all threads of the process), counted at N \
         and 2N: (count(2N) − count(N)) / N, so start-up cost cancels.\n"
    );

    // ---------------------------------------------------------------- 1. core step
    if want("1") {
        log("1. core step cost");
        let cyc = 20_000u64;
        let timed = core_step::timed(9, cyc);
        let instr = if have_valgrind {
            let mix = per_unit(
                &exe,
                |n| vec!["cg-core".into(), "mix".into(), n.to_string()],
                cyc,
            );
            let alloc = per_unit(
                &exe,
                |n| vec!["cg-core".into(), "alloc".into(), n.to_string()],
                cyc,
            );
            mix.zip(alloc).map(|(m, a)| {
                (
                    m / core_step::EVENTS_PER_CYCLE as f64,
                    (m - a) / core_step::EVENTS_PER_CYCLE as f64,
                    a,
                )
            })
        } else {
            None
        };
        let _ = writeln!(md, "## 1. Core step cost\n");
        let _ = writeln!(
        md,
        "A connected `Session<Framed<LengthCodec>>` (acks in order, heartbeat 5 s + 5 s) fed a \
         steady-state cycle of {} events: `enqueue` → Transmit(1 message, `encode_transmit`) → \
         `Written`; a 64-byte reply frame read (`handle_read`: decoded, attributed, → Outcome); \
         the timer 5 s later (→ Transmit(PING)) → `Written`; a PONG frame read (→ RTT sample); a \
         peer PING frame read (→ Transmit(PONG)) → `Written`. Each event is followed by `poll` \
         until `Wait`, which is included in its cost, and so is decoding what each transmit \
         holds. The mix was checked: per cycle exactly one message transmitted and delivered, \
         one PING, one PONG, one RTT sample.\n",
        core_step::EVENTS_PER_CYCLE
    );
        let _ = writeln!(md, "| figure | value |\n|---|---|");
        let _ = writeln!(
            md,
            "| ns per event (9 rounds × {} cycles; median (min – max)) | {} |",
            timed.cycles,
            timed.ns_per_event.show(1)
        );
        let _ = writeln!(
            md,
            "| core allocations per event (counting allocator; the user's payload `Vec`, built \
         before the clock starts, not counted) | {:.4} |",
            timed.allocs_per_event
        );
        if let Some((gross, net, alloc)) = instr {
            let _ = writeln!(
                md,
                "| instructions per event, callgrind, N = {cyc} and 2N cycles | {net:.1} |"
            );
            let _ = writeln!(
            md,
            "| (same, including the user's 64 B payload `vec!` alloc + free, {alloc:.0} instr per \
             message) | {gross:.1} |"
        );
            goals.push(format!(
                "1. core ≤ 100 instructions/event: {} ({net:.1}); 0 allocations/event: {} ({:.4})",
                status(net <= 100.0),
                status(timed.allocs_per_event == 0.0),
                timed.allocs_per_event
            ));
        } else {
            goals.push(format!(
            "1. core instructions: not measured (valgrind missing); 0 allocations/event: {} ({:.4})",
            status(timed.allocs_per_event == 0.0),
            timed.allocs_per_event
        ));
        }
        if have_valgrind {
            let prof = cg_profile(&exe, &["cg-core".into(), "mix".into(), cyc.to_string()], 12);
            let _ = writeln!(
                md,
                "\nWhere the instructions go (callgrind, {cyc} cycles, exclusive, top functions):\n\n```\n{prof}```"
            );
        }
        let _ = writeln!(md);
    }

    // ---------------------------------------------------------------- 2. throughput
    if want("2") {
        log("2. throughput");
        let sink = tput::Sink::start();
        let _ = writeln!(md, "## 2. Throughput over loopback\n");
        let _ = writeln!(
        md,
        "A sink server (own thread, own tokio runtime) reads and discards. Each client keeps one \
         connection; a round sends a burst of length-prefixed messages (the `LengthCodec` \
         framing: 4-byte length, 1 kind byte, payload) and ends when the sink has read every \
         byte. Raw clients write header and payload through a `BufWriter` (8 KiB) from a reused \
         buffer, then flush. redial is measured two ways. `send`: each message as its own \
         `Vec<u8>` through `Handle::send`, keeping a window of 512 outstanding receipts \
         (awaiting the oldest when full), then awaiting the last ones. `send_batch`: messages \
         copied from one reused buffer into `Batch`es of 8 KiB (the `BufWriter`'s capacity, \
         4-byte record headers included), each sent with `Handle::send_batch`, a window of 64 \
         batch receipts; the driver frames every message with the codec when it writes the \
         batch, and the batch is delivered (here: written) as one. stubborn-io is `StubbornTcpStream` in the same \
         `BufWriter`. The channel writer is the seed's design (issue #13): each message its own \
         `Vec`, a bounded channel (512), and a writer task that owns the raw client's \
         `BufWriter`, writes the header and the message, and flushes when the channel is \
         momentarily empty; it tells the caller nothing of each message. TCP_NODELAY on every client (redial's default). redial's heartbeat is off \
         here (the sink never answers PINGs); everything else is the default config. \
         {ROUNDS} rounds, rotating order; rates in messages/s; ratios are per-round side / raw A.\n"
    );
        let mut tput_ok = true;
        for (rt_name, size, n) in [
            ("tokio", 64usize, 200_000usize),
            ("tokio", 4096, 20_000),
            ("smol", 64, 200_000),
            ("smol", 4096, 20_000),
        ] {
            log(&format!("   {rt_name} {size} B × {n}"));
            let c = if rt_name == "tokio" {
                tput::tokio_side_by_side(&sink, ROUNDS, n, size)
            } else {
                tput::smol_side_by_side(&sink, ROUNDS, n, size)
            };
            let _ = writeln!(md, "### {rt_name}, {size} B messages, {n} per round\n");
            let _ = writeln!(
            md,
            "| side | msgs/s median (min – max) | ratio vs raw A median (min – max) |\n|---|---|---|"
        );
            for (name, rate, ratio) in &c.rows {
                let _ = writeln!(md, "| {name} | {} | {} |", rate.show(0), ratio.show(3));
            }
            let chan = c.rows.len() - 1;
            let vs_chan = c.ratio(2, chan);
            let _ = writeln!(
                md,
                "\n`send` / channel writer, per round: {}.\n",
                vs_chan.show(3)
            );
            goals.push(format!(
                "2. (#13) {rt_name} `send` ≥ 1.0× the channel writer at {size} B: {} ({})",
                status(vs_chan.median >= 1.0),
                vs_chan.show(3)
            ));
            let control = c.rows[1].2;
            for (name, _, ratio) in c.rows.iter().filter(|r| r.0.starts_with("redial")) {
                let met = ratio.median >= 0.97;
                tput_ok &= met;
                goals.push(format!(
                    "2. throughput {name} {size} B, median ratio vs raw ≥ 0.97: {} ({:.3}, range {:.3} – {:.3}; A/A control {:.3}, range {:.3} – {:.3})",
                    status(met),
                    ratio.median,
                    ratio.min,
                    ratio.max,
                    control.median,
                    control.min,
                    control.max
                ));
            }
        }
        if have_valgrind {
            log("   callgrind per 64 B message");
            let _ = writeln!(
                md,
                "### User-space instructions per 64 B message (callgrind)\n"
            );
            let _ = writeln!(
                md,
                "The client alone runs in a child process under callgrind against the same sink \
             (which is in this process, so not counted); N = 20,000 and 2N messages.\n"
            );
            let _ = writeln!(
                md,
                "| client | instructions / message | vs raw |\n|---|---|---|"
            );
            for (raw_name, redials, chan_name) in [
                (
                    "raw-tokio",
                    ["redial-tokio", "redial-tokio-batch"],
                    "chan-tokio",
                ),
                (
                    "raw-smol",
                    ["redial-smol", "redial-smol-batch"],
                    "chan-smol",
                ),
            ] {
                let addr = sink.addr.to_string();
                let cnt = |which: &str| {
                    per_unit(
                        &exe,
                        |n| {
                            vec![
                                "cg-tput".into(),
                                which.into(),
                                n.to_string(),
                                "64".into(),
                                addr.clone(),
                            ]
                        },
                        20_000,
                    )
                };
                let Some(raw) = cnt(raw_name) else { continue };
                let _ = writeln!(md, "| {raw_name} | {raw:.0} | 1.00 |");
                let chan = cnt(chan_name);
                if let Some(chan) = chan {
                    let _ = writeln!(
                        md,
                        "| {chan_name} (the seed's channel writer) | {chan:.0} | {:.2} |",
                        chan / raw
                    );
                }
                for which in redials {
                    let Some(red) = cnt(which) else { continue };
                    let _ = writeln!(md, "| {which} | {red:.0} | {:.2} |", red / raw);
                    if let (Some(chan), false) = (chan, which.ends_with("-batch")) {
                        goals.push(format!(
                            "2. (#13) instructions per 64 B message ≤ 1.2× the channel writer ({which}): {} ({red:.0} vs {chan:.0} = {:.2}×)",
                            status(red <= 1.2 * chan),
                            red / chan
                        ));
                    }
                    goals.push(format!(
                        "2. instructions per 64 B message ≤ 1.3× raw ({which}): {} ({red:.0} vs {raw:.0} = {:.2}×)",
                        status(red <= 1.3 * raw),
                        red / raw
                    ));
                }
            }
            let prof = cg_profile(
                &exe,
                &[
                    "cg-tput".into(),
                    "redial-tokio".into(),
                    "40000".into(),
                    "64".into(),
                    sink.addr.to_string(),
                ],
                25,
            );
            let _ = writeln!(
                md,
                "\nWhere redial-tokio's instructions go with `send` (callgrind, 40,000 × 64 B, \
                 whole client process, exclusive, top functions; `malloc`/`free` serve the \
                 per-message payload `Vec` and the growth of the mailbox and ledger queues; \
                 `Shared::push`, `poll_slot`, `settle`, `release` are the mailbox and receipt \
                 slots under the session's mutex):\n\n```\n{prof}```"
            );
            let prof = cg_profile(
                &exe,
                &[
                    "cg-tput".into(),
                    "redial-tokio-batch".into(),
                    "40000".into(),
                    "64".into(),
                    sink.addr.to_string(),
                ],
                16,
            );
            let _ = writeln!(
                md,
                "\nAnd with `send_batch` (same workload; whole client process, exclusive, top \
                 functions):\n\n```\n{prof}```"
            );
            let _ = writeln!(md);
        }
        let _ = tput_ok;
    }

    // ---------------------------------------------------------------- 2b. smol placement
    if want("2b") {
        log("2b. smol 64 B across process runs and thread placements");
        let _ = writeln!(md, "{}", placement_section(&exe, &mut goals, &log));
    }

    // ---------------------------------------------------------------- 3. dead peer
    if want("3") {
        log("3. dead-peer detection");
        let det = dead::detection(20, Duration::from_millis(200), Duration::from_millis(200));
        let bound = (det.interval + det.timeout).as_secs_f64() * 1e3;
        let s = Spread::of(&det.redial_ms);
        let _ = writeln!(md, "## 3. Dead-peer detection (blackhole)\n");
        let _ = writeln!(
            md,
            "redial-tokio → `FaultProxy` → length-prefixed test server (answers PINGs). Heartbeat \
         interval {} ms, timeout {} ms (bound: interval + timeout = {bound:.0} ms of read \
         silence). Each of {} trials: connect, wait a varying phase (150–350 ms), enqueue one \
         message, switch the proxy to Blackhole, and time until redial reports \
         `Disconnected(HeartbeatTimeout)`. Alongside, a plain tokio `TcpStream` through a second \
         `FaultProxy`, blackholed at the same instant, writes a frame every 50 ms and reads, for \
         a window of {} ms.\n",
            det.interval.as_millis(),
            det.timeout.as_millis(),
            det.redial_ms.len(),
            det.window.as_millis()
        );
        let _ = writeln!(md, "| figure | value |\n|---|---|");
        let _ = writeln!(
            md,
            "| redial detection time, ms: median (min – max) | {} |",
            s.show(1)
        );
        let _ = writeln!(
            md,
            "| p90 / p100 | {:.1} / {:.1} ms |",
            Spread::pct(&det.redial_ms, 90.0),
            s.max
        );
        let _ = writeln!(
        md,
        "| trials detected within the bound ({bound:.0} ms + 25 ms scheduling slack) | {} / {} |",
        det.redial_ms.iter().filter(|&&m| m <= bound + 25.0).count(),
        det.redial_ms.len()
    );
        let _ = writeln!(
            md,
            "| all trials (ms) | {} |",
            det.redial_ms
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            md,
            "| plain tokio stream: trials where it noticed anything within {} ms | {} / {} |\n",
            det.window.as_millis(),
            det.raw_detected,
            det.redial_ms.len()
        );
        goals.push(format!(
        "3. dead peer declared by interval + timeout ({bound:.0} ms): {} (max {:.1} ms, median {:.1} ms over {} trials; plain tokio noticed {} / {})",
        status(s.max <= bound + 25.0),
        s.max,
        s.median,
        det.redial_ms.len(),
        det.raw_detected,
        det.redial_ms.len()
    ));
    }

    // ---------------------------------------------------------------- 4. recovery
    if want("4") {
        log("4. recovery");
        let rec = dead::recovery(9, Duration::from_secs(2), Duration::from_secs(10));
        let _ = writeln!(md, "## 4. Recovery after a server restart\n");
        let _ = writeln!(
            md,
            "A length-prefixed test server on a fixed port; redial-tokio (default config: backoff \
         100 ms × 2, cap 30 s, default jitter) and stubborn-io (`StubbornTcpStream::connect`, \
         defaults: exponential backoff from 4 s, factor 2) connect to it side by side, each \
         sending a 16 B message every 10 ms. The server is stopped for {} s, then restarted; \
         we time restart → redial's next *scheduled* attempt (from its `AttemptFailed` / \
         `Disconnected` notifications' `next_delay`), restart → redial's first delivered \
         message (receipt `Ok`, i.e. written to the new socket), and restart → stubborn-io's \
         first completed write. {} rounds, each with fresh clients; waiting at most {} s.\n",
            rec.down.as_secs(),
            rec.redial_ms.len(),
            rec.wait.as_secs()
        );
        let lag: Vec<f64> = rec
            .redial_ms
            .iter()
            .zip(&rec.scheduled_ms)
            .map(|(d, s)| d - s)
            .filter(|x| x.is_finite())
            .collect();
        let stub_ok: Vec<f64> = rec.stubborn_ms.iter().flatten().copied().collect();
        let _ = writeln!(
            md,
            "| figure (ms after restart) | median (min – max) | per round |\n|---|---|---|"
        );
        let per = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "| redial: next scheduled attempt | {} | {} |",
            Spread::of(&rec.scheduled_ms).show(0),
            per(&rec.scheduled_ms)
        );
        let _ = writeln!(
            md,
            "| redial: first delivered message | {} | {} |",
            Spread::of(&rec.redial_ms).show(0),
            per(&rec.redial_ms)
        );
        let _ = writeln!(
            md,
            "| redial: delivery − scheduled attempt | {} | {} |",
            Spread::of(&lag).show(1),
            per(&lag)
        );
        let _ = writeln!(
            md,
            "| stubborn-io (defaults): first completed write | {} | {} |",
            Spread::of(&stub_ok).show(0),
            rec.stubborn_ms
                .iter()
                .map(|x| x.map_or("none".to_string(), |x| format!("{x:.0}")))
                .collect::<Vec<_>>()
                .join(", ")
        );
        goals.push(format!(
            "4. recovery (no numeric goal in the issue): redial's first delivery {} ms after the restart, {} ms after its own scheduled attempt; stubborn-io (defaults) {} ms after the restart ({} / {} rounds recovered)",
            Spread::of(&rec.redial_ms).show(0),
            Spread::of(&lag).show(1),
            Spread::of(&stub_ok).show(0),
            stub_ok.len(),
            rec.stubborn_ms.len()
        ));
        let _ = writeln!(
            md,
            "| stubborn-io rounds recovered within {} s | {} / {} | |\n",
            rec.wait.as_secs(),
            stub_ok.len(),
            rec.stubborn_ms.len()
        );
    }

    // ---------------------------------------------------------------- 5. memory
    if want("5") {
        log("5. memory");
        let _ = writeln!(md, "## 5. Memory\n");
        let _ = writeln!(md, "| type | `size_of` (bytes) |\n|---|---|");
        for (name, sz) in [
            (
                "redial_core::Session",
                std::mem::size_of::<redial_core::Session>(),
            ),
            (
                "redial_core::Config",
                std::mem::size_of::<redial_core::Config>(),
            ),
            (
                "redial_core::Action",
                std::mem::size_of::<redial_core::Action>(),
            ),
            (
                "redial_driver::Handle",
                std::mem::size_of::<redial_tokio::Handle>(),
            ),
            (
                "redial_driver::Inbound",
                std::mem::size_of::<redial_tokio::Inbound>(),
            ),
            (
                "redial_driver::Events",
                std::mem::size_of::<redial_tokio::Events>(),
            ),
            (
                "redial_tokio session task (Driver + timer)",
                redial_tokio::session_task_size::<
                    redial_tokio::Tokio,
                    redial_tokio::TcpConnector,
                    redial_core::Framed<redial_core::LineCodec>,
                >(),
            ),
            (
                "redial_driver::Receipt",
                std::mem::size_of::<redial_tokio::Receipt>(),
            ),
            (
                "redial_tokio::Stream (one connection, both directions)",
                std::mem::size_of::<redial_tokio::Stream>(),
            ),
            (
                "redial_smol::Stream (one connection, both directions)",
                std::mem::size_of::<redial_smol::Stream>(),
            ),
        ] {
            let _ = writeln!(md, "| `{name}` | {sz} |");
        }
        let h0 = util::live_bytes();
        let sess = redial_core::Session::new(
            redial_core::Config::default(),
            redial_core::Framed::new(redial_core::LineCodec::default()),
            redial_core::Instant::ZERO,
        )
        .expect("session");
        let session_heap = util::live_bytes() - h0;
        drop(sess);
        let _ = writeln!(
            md,
            "\nThe core's `out` action queue (`Session::with_rng`) and the ledger's \
             `VecDeque<Entry>` (`Ledger::new`) start empty and grow on demand, keeping their \
             capacity (so steady state still allocates nothing once warmed up; at most \
             `queue.max_messages` = {} ledger entries).",
            redial_core::Config::default().queue.max_messages
        );
        let _ = writeln!(
            md,
            "\nThe session task future (the run loop and its timer) is stored inline in tokio's \
         task cell, which grows in 128-byte steps. Heap allocated by `Session::new(Config::default(), Framed::new(LineCodec::default()))` alone: \
         **{session_heap} bytes**.\n"
        );
        let n = 10_000usize;
        let mut results = Vec::new();
        for which in ["raw-tokio", "redial-tokio", "redial-tokio-no-events"] {
            log(&format!("   {which} × {n}"));
            let (mut holder, addr) = mem::spawn_holder(&exe);
            let o = Command::new(&exe)
                .args(["mem", which, &n.to_string(), &addr.to_string()])
                .output()
                .expect("mem child");
            let _ = holder.kill();
            let _ = holder.wait();
            let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let v: Vec<i64> = line
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() == 3 {
                results.push((which, v[0], v[1], v[2]));
            } else {
                eprintln!(
                    "mem {which} failed: {line} {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        let _ = writeln!(
            md,
            "{n} connections from one current-thread tokio process to a holder process that \
         accepts and keeps them (so server-side sockets are not in the figure). redial: \
         `redial_tokio::builder(..).spawn()` with the default config (heartbeat moved to 600 s \
         so nothing happens while measuring), one `Arc<Config>` shared by all sessions \
         (`Builder::config` takes it), keeping the `(Handle, Inbound, Events)` it \
         returns (redial-tokio-no-events: dropping the `Events`, so its four connect-time \
         events, 176 B each in a queue of 4, are never queued). raw: `TcpStream::connect` plus a spawned reader task with a 4 KiB stack \
         buffer. RSS is `VmRSS` after − before; heap is live bytes from the counting \
         allocator.\n"
        );
        let _ = writeln!(
        md,
        "| side | connected | RSS delta | RSS per connection | heap per connection |\n|---|---|---|---|---|"
    );
        for (which, connected, rss_kib, heap) in &results {
            let c = (*connected).max(1) as f64;
            let _ = writeln!(
                md,
                "| {which} | {connected} | {:.1} MiB | {:.0} B | {:.0} B |",
                *rss_kib as f64 / 1024.0,
                *rss_kib as f64 * 1024.0 / c,
                *heap as f64 / c
            );
            if *which == "redial-tokio" {
                let per = *rss_kib as f64 * 1024.0 / c;
                goals.push(format!(
                "5. ≤ 2 KiB per idle session: {} ({per:.0} B RSS, {:.0} B heap per session; core `Session::new` alone allocates {session_heap} B)",
                status(per <= 2048.0),
                *heap as f64 / c
            ));
            }
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "{}", include_str!("analysis.md"));

    // ---------------------------------------------------------------- goals
    let _ = writeln!(md, "## Goals\n");
    for g in &goals {
        let _ = writeln!(md, "- {g}");
    }
    let _ = writeln!(
        md,
        "\nTotal run time: {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(out, &md).expect("write report");
    log(&format!("wrote {}", out.display()));
    println!("{md}");
}
