//! `redial sim`: many clients, one policy (or several side by side), one fault, on virtual
//! time. Prints a summary table and a terminal histogram of dial attempts, or JSON; draws
//! the dial rate over time as an SVG.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as WallClock};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use redial_core::{Backoff, GiveUp, GiveUpWhen, Heartbeat, Jitter};
use redial_sim::{
    FaultKind, FaultSchedule, Policy, Report, Scenario, Simulation, Summary, Workload,
};

use crate::backoff_args::{parse_jitter, BackoffArgs};
use crate::duration::parse_duration;
use crate::{CmdResult, UsageError};

/// Options of `redial sim`.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// How many clients (sessions).
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Which policy: default (full jitter), nojitter, equal, decorrelated, or all of them side
    /// by side. Repeat or comma-separate for several.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    policy: Vec<String>,
    /// The fault.
    #[arg(long, default_value = "refuse", value_parser = parse_fault)]
    fault: FaultKind,
    /// How long the fault lasts (ignored by reset).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    outage: Duration,
    /// When the fault starts.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    fault_at: Duration,
    /// Virtual time to simulate [default: fault start + outage + backoff cap + 20 s].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    backoff: BackoffArgs,
    /// Jitter kind, overriding the policy's: full, none, equal, decorrelated, or a fraction
    /// for proportional (e.g. 0.2 for ±20%).
    #[arg(long, value_parser = parse_jitter)]
    jitter: Option<Jitter>,
    /// Heartbeat: PING after this much read silence.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// Heartbeat: dead after this much further silence.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    heartbeat_timeout: Duration,
    /// Per-attempt connect deadline.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Give up after this many consecutive failures (0: no count limit).
    #[arg(long, default_value_t = 10)]
    give_up_failures: u32,
    /// Give up after failing for this long (0s: no time limit).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    give_up_after: Duration,
    /// Give up when either limit is reached (default: both).
    #[arg(long)]
    give_up_either: bool,
    /// Each client enqueues a message this often (every third one idempotent); 0s for none.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    message_every: Duration,
    /// Dial-rate bucket width.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    bucket: Duration,
    /// Seed of the run: same seed, same result.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the summary as JSON instead of the table and histogram.
    #[arg(long)]
    json: bool,
    /// Write a chart of dial attempts over time, one panel per policy, to this SVG file
    /// (the fleet figures to NAME-leave.svg and NAME-budget.svg beside it).
    #[arg(long)]
    svg: Option<PathBuf>,
    #[command(flatten)]
    fleet: crate::sim_fleet::FleetArgs,
}

/// One policy's run.
#[derive(serde::Serialize)]
struct Run {
    policy: String,
    jitter: String,
    #[serde(flatten)]
    summary: Summary,
    dials_per_bucket: Vec<u32>,
}

#[derive(serde::Serialize)]
struct Output<'a> {
    fault: &'a FaultSchedule,
    duration_s: f64,
    seed: u64,
    runs: &'a [Run],
}

pub(crate) fn run(args: SimArgs) -> CmdResult {
    match simulate_and_print(&args) {
        // A closed stdout (`| head`) is the reader's choice, not a failure.
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        r => r,
    }
}

fn simulate_and_print(args: &SimArgs) -> CmdResult {
    let policies = policies(args)?;
    let scenario = scenario(args)?;
    if args.fleet.wanted() {
        let mut sc = scenario;
        sc.config.backoff = policies.first().map_or(sc.config.backoff, |p| p.backoff);
        return crate::sim_fleet::run(&args.fleet, &sc, args.svg.as_deref());
    }
    let reports = simulate(&scenario, &policies)?;
    let runs: Vec<Run> = policies
        .iter()
        .zip(&reports)
        .map(|(p, r)| Run {
            policy: p.name.to_string(),
            jitter: format!("{:?}", p.backoff.jitter).to_lowercase(),
            summary: r.summary(),
            dials_per_bucket: r.server_dials.clone(),
        })
        .collect();
    let mut out = io::stdout().lock();
    if args.json {
        let output = Output {
            fault: &scenario.faults,
            duration_s: scenario.duration.as_secs_f64(),
            seed: scenario.seed,
            runs: &runs,
        };
        serde_json::to_writer_pretty(&mut out, &output)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &scenario, &runs)?;
        for (run, report) in runs.iter().zip(&reports) {
            write_histogram(&mut out, &run.policy, report)?;
        }
    }
    if let Some(path) = &args.svg {
        draw_svg(path, &scenario, &runs, &reports)?;
        if !args.json {
            writeln!(out, "chart written to {}", path.display())?;
        }
    }
    let broken: u64 = reports.iter().map(|r| r.violation_count).sum();
    if broken > 0 {
        for v in reports.iter().flat_map(|r| &r.violations) {
            eprintln!("invariant broken: {v}");
        }
        return Err(format!("{broken} invariant violations").into());
    }
    Ok(())
}

fn policies(args: &SimArgs) -> Result<Vec<Policy>, UsageError> {
    // Backoff::new()'s jitter (full) is the default policy's; the others override it.
    let base = args.backoff.backoff(Jitter::Full);
    let mut out = Vec::new();
    for name in &args.policy {
        match name.as_str() {
            "all" => out.extend(Policy::all(base)),
            n => out.push(Policy::named(n, base).ok_or_else(|| {
                UsageError(format!(
                    "unknown policy '{n}' (expected one of {}, all)",
                    Policy::NAMES.join(", ")
                ))
            })?),
        }
    }
    if let Some(jitter) = args.jitter {
        // An explicit jitter defines the policy: one run, named after it.
        out = vec![Policy {
            name: "custom",
            backoff: base.with_jitter(jitter),
        }];
    }
    let mut seen = Vec::new();
    out.retain(|p| {
        let first = !seen.contains(&p.name);
        seen.push(p.name);
        first
    });
    Ok(out)
}

/// Sessions in one run, at most (about 3 KB of memory each).
const MAX_CLIENTS: usize = 1_000_000;
/// Simulated time, at most.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Dial-rate buckets, at most (one counter each, per policy).
const MAX_BUCKETS: u128 = 10_000_000;
/// Workload messages in one run, at most.
const MAX_MESSAGES: u128 = 100_000_000;

fn scenario(args: &SimArgs) -> Result<Scenario, UsageError> {
    if args.clients == 0 {
        return Err(UsageError("--clients must be at least 1".into()));
    }
    if args.bucket.is_zero() {
        return Err(UsageError("--bucket must be greater than zero".into()));
    }
    let duration = args
        .duration
        .unwrap_or(args.fault_at + args.outage + args.backoff.cap + Duration::from_secs(20));
    // Refuse what would take absurd memory or time, naming the limit (exit 2), instead of
    // failing an allocation.
    if args.clients > MAX_CLIENTS {
        return Err(UsageError(format!(
            "--clients {} is above the limit of {MAX_CLIENTS}",
            args.clients
        )));
    }
    if duration > MAX_DURATION {
        return Err(UsageError(format!(
            "a simulated {duration:?} is above the limit of {}h",
            MAX_DURATION.as_secs() / 3600
        )));
    }
    let buckets = duration.as_nanos() / args.bucket.as_nanos();
    if buckets > MAX_BUCKETS {
        return Err(UsageError(format!(
            "--bucket {:?} over {duration:?} makes {buckets} buckets, above the limit of {MAX_BUCKETS}",
            args.bucket
        )));
    }
    if !args.message_every.is_zero() {
        let per_client = duration.as_nanos() / args.message_every.as_nanos();
        let messages = per_client.saturating_mul(args.clients as u128);
        if messages > MAX_MESSAGES {
            return Err(UsageError(format!(
                "--message-every {:?} makes {messages} messages for {} clients over {duration:?}, above the limit of {MAX_MESSAGES}",
                args.message_every, args.clients
            )));
        }
    }
    let mut config = Scenario::sim_config(Backoff::new())
        .with_heartbeat(Some(Heartbeat {
            interval: args.heartbeat_interval,
            timeout: args.heartbeat_timeout,
            adaptive_floor: None,
        }))
        .with_connect_timeout(args.connect_timeout)
        .with_give_up(GiveUp {
            max_failures: (args.give_up_failures > 0).then_some(args.give_up_failures),
            max_elapsed: (!args.give_up_after.is_zero()).then_some(args.give_up_after),
            when: if args.give_up_either {
                GiveUpWhen::Either
            } else {
                GiveUpWhen::Both
            },
        });
    config.seed = args.seed;
    let mut sc = Scenario::new(args.clients, config, duration)
        .with_faults(FaultSchedule::single(
            args.fault,
            args.fault_at,
            args.outage,
        ))
        .with_workload((!args.message_every.is_zero()).then(|| Workload {
            every: args.message_every,
            ..Workload::default()
        }))
        .with_seed(args.seed);
    sc.bucket = args.bucket;
    Ok(sc)
}

/// Runs every policy on the same scenario, with a progress bar once it takes over a second.
fn simulate(
    scenario: &Scenario,
    policies: &[Policy],
) -> Result<Vec<Report>, Box<dyn std::error::Error>> {
    let step = Duration::from_secs(1);
    let steps = scenario.duration.as_secs().max(1);
    let bar = ProgressBar::with_draw_target(
        Some(steps * policies.len() as u64),
        ProgressDrawTarget::hidden(),
    );
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} virtual s ({eta})")?
            .progress_chars("=> "),
    );
    let started = WallClock::now();
    let mut shown = false;
    let mut reports = Vec::new();
    for policy in policies {
        bar.set_message(policy.name);
        let mut sc = scenario.clone();
        sc.config.backoff = policy.backoff;
        let mut sim =
            Simulation::new(sc).map_err(|e| UsageError(format!("invalid policy: {e}")))?;
        let mut t = Duration::ZERO;
        while t < scenario.duration {
            t += step;
            sim.run_until(t);
            bar.inc(1);
            if !shown && started.elapsed() > Duration::from_secs(1) {
                // Hidden when stderr is not a terminal.
                bar.set_draw_target(ProgressDrawTarget::stderr());
                shown = true;
            }
        }
        reports.push(sim.finish());
    }
    bar.finish_and_clear();
    Ok(reports)
}

pub(crate) fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}s", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}ms")
    } else {
        format!("{v:.2}ms")
    }
}

fn write_table(out: &mut impl Write, sc: &Scenario, runs: &[Run]) -> io::Result<()> {
    let f = sc.faults.faults()[0];
    writeln!(
        out,
        "{} clients, {} from {:.1}s to {:.1}s, {:.0}s simulated, seed {}",
        sc.clients,
        f.kind,
        f.start.as_secs_f64(),
        f.end.as_secs_f64(),
        sc.duration.as_secs_f64(),
        sc.seed
    )?;
    let b = format!("/{}ms", sc.bucket.as_millis());
    writeln!(
        out,
        "{:<13}{:>11}{:>11}{:>7}{:>10}  {:>8}{:>8}{:>8}  {:>8}{:>8}{:>8}{:>7}  {:>9}{:>8}{:>8}{:>9}",
        "policy",
        format!("peak{b}"),
        format!("mean{b}"),
        "ratio",
        "dials",
        "det p50",
        "det p99",
        "det max",
        "rec p50",
        "rec p99",
        "rec max",
        "gaveup",
        "delivered",
        "doubt",
        "abandon",
        "rejected"
    )?;
    for r in runs {
        let s = &r.summary;
        let m = &s.messages;
        writeln!(
            out,
            "{:<13}{:>11}{:>11.1}{:>7.2}{:>10}  {:>8}{:>8}{:>8}  {:>8}{:>8}{:>8}{:>7}  {:>9}{:>8}{:>8}{:>9}",
            r.policy,
            s.peak_dials_per_bucket,
            s.mean_dials_per_bucket,
            s.peak_to_mean,
            s.dials,
            ms(s.detection.p50_ms),
            ms(s.detection.p99_ms),
            ms(s.detection.max_ms),
            ms(s.reconnection.p50_ms),
            ms(s.reconnection.p99_ms),
            ms(s.reconnection.max_ms),
            s.gave_up,
            m.delivered,
            m.in_doubt,
            m.abandoned,
            m.rejected
        )?;
    }
    writeln!(
        out,
        "peak and mean: dials reaching the server per bucket from the heal to the last reconnection"
    )
}

/// Dial attempts over time as horizontal bars, about 30 rows.
fn write_histogram(out: &mut impl Write, policy: &str, r: &Report) -> io::Result<()> {
    const ROWS: usize = 40;
    const WIDTH: usize = 50;
    // A round row width (in buckets) giving at most ROWS rows.
    let per_row = [
        1, 2, 5, 10, 20, 50, 100, 200, 300, 600, 1200, 3000, 6000, 12000,
    ]
    .into_iter()
    .find(|n| r.server_dials.len().div_ceil(*n) <= ROWS)
    .unwrap_or_else(|| r.server_dials.len().div_ceil(ROWS).max(1));
    let rows: Vec<u64> = r
        .server_dials
        .chunks(per_row)
        .map(|c| c.iter().map(|&v| u64::from(v)).sum())
        .collect();
    let max = rows.iter().copied().max().unwrap_or(0).max(1);
    let row_time = r.bucket * per_row as u32;
    writeln!(
        out,
        "\n{policy}: dial attempts reaching the server per {:.1}s",
        row_time.as_secs_f64()
    )?;
    for (i, &n) in rows.iter().enumerate() {
        let len = (n as f64 / max as f64 * WIDTH as f64).round() as usize;
        let bar = if n > 0 && len == 0 {
            "▏".to_string()
        } else {
            "█".repeat(len)
        };
        writeln!(
            out,
            "{:>7.1}s │{bar:<WIDTH$} {n}",
            (row_time * i as u32).as_secs_f64()
        )?;
    }
    Ok(())
}

fn draw_svg(
    path: &Path,
    sc: &Scenario,
    runs: &[Run],
    reports: &[Report],
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let width = 480 * runs.len().max(1) as u32;
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "{} clients, {} {:.0}s: dial attempts per {} ms",
            sc.clients,
            sc.faults.faults()[0].kind,
            (sc.faults.faults()[0].end - sc.faults.faults()[0].start).as_secs_f64(),
            sc.bucket.as_millis()
        ),
        ("sans-serif", 22),
    )?;
    let ymax = reports
        .iter()
        .flat_map(|r| r.server_dials.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    let secs = sc.duration.as_secs_f64();
    let bucket = sc.bucket.as_secs_f64();
    let fault = sc.faults.faults()[0];
    for ((area, run), report) in root
        .split_evenly((1, runs.len()))
        .iter()
        .zip(runs)
        .zip(reports)
    {
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "{} (peak after heal {})",
                    run.policy, run.summary.peak_dials_per_bucket
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..secs, 0u32..ymax + ymax / 20 + 1)?;
        chart
            .configure_mesh()
            .x_desc("virtual time (s)")
            .y_desc("dials")
            .draw()?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (fault.start.as_secs_f64(), 0),
                (
                    fault
                        .end
                        .as_secs_f64()
                        .max(fault.start.as_secs_f64() + bucket),
                    ymax,
                ),
            ],
            RED.mix(0.12).filled(),
        )))?;
        chart.draw_series(LineSeries::new(
            report
                .server_dials
                .iter()
                .enumerate()
                .map(|(i, &n)| (i as f64 * bucket, n)),
            &BLUE,
        ))?;
    }
    root.present()?;
    Ok(())
}

fn parse_fault(s: &str) -> Result<FaultKind, String> {
    FaultKind::parse(s)
        .ok_or_else(|| format!("unknown fault '{s}' (expected refuse, blackhole, reset or flap)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("ms").is_err());
    }
}
