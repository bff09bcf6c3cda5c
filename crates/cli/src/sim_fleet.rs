//! `redial sim --leave` and `redial sim --budget`: the fleet figures. A server leaving the
//! registry's set with sessions on it (peak dials per 100 ms on the servers that remain, time
//! to move; jittered moves against all at once), and the shared retry budget against none
//! through the outage (attempts, recovery peak, reconnection times). Each with a picture.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use clap::Args;
use redial_core::budget::BudgetPolicy;
use redial_core::spread::Departure;
use redial_sim::{Percentiles, Registry, Report, Scenario, Simulation};

use crate::duration::parse_duration;
use crate::{CmdResult, UsageError};

/// Options of the fleet figures.
#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    /// Registry model: this server (0-based) leaves the set at --leave-at; the sessions on it
    /// move. Runs the jittered moves and all-at-once side by side.
    #[arg(long)]
    leave: Option<u8>,
    /// Servers behind the registry.
    #[arg(long, default_value_t = 3)]
    servers: u8,
    /// When the server leaves.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    leave_at: Duration,
    /// Moves start uniformly within this long after the server left.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    move_spread: Duration,
    /// How long a move may drain what is in flight.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    move_drain: Duration,
    /// Run the fault with a retry budget shared by every client, and without, side by side.
    #[arg(long)]
    budget: bool,
    /// The budget's capacity (tokens; it starts full).
    #[arg(long, default_value_t = 1000)]
    budget_capacity: u32,
    /// The budget's minimum refill, tokens per second.
    #[arg(long, default_value_t = 100)]
    budget_rate: u32,
    /// Tokens each connection that comes up deposits.
    #[arg(long, default_value_t = 2.0)]
    budget_per_success: f64,
}

impl FleetArgs {
    pub(crate) fn wanted(&self) -> bool {
        self.leave.is_some() || self.budget
    }
}

/// Runs the fleet figures asked for on top of `base` (the fault and sessions of `redial
/// sim`), prints them, and draws them to `svg`.
pub(crate) fn run(args: &FleetArgs, base: &Scenario, svg: Option<&Path>) -> CmdResult {
    let mut out = io::stdout().lock();
    if let Some(server) = args.leave {
        if server >= args.servers {
            return Err(UsageError(format!(
                "--leave {server}: there are only {} servers (0-based)",
                args.servers
            ))
            .into());
        }
        leave(&mut out, args, base, server, svg)?;
    }
    if args.budget {
        budget(&mut out, args, base, svg)?;
    }
    Ok(())
}

fn check(reports: &[&Report]) -> CmdResult {
    let broken: u64 = reports.iter().map(|r| r.violation_count).sum();
    if broken > 0 {
        for v in reports.iter().flat_map(|r| &r.violations) {
            eprintln!("invariant broken: {v}");
        }
        return Err(format!("{broken} invariant violations").into());
    }
    Ok(())
}

fn leave(
    out: &mut impl Write,
    args: &FleetArgs,
    base: &Scenario,
    server: u8,
    svg: Option<&Path>,
) -> CmdResult {
    let run = |spread: Duration| -> Result<Report, UsageError> {
        let reg = Registry::new(args.servers, Some((server, args.leave_at))).with_departure(
            Departure::new()
                .with_spread(spread)
                .with_drain(args.move_drain),
        );
        // The registry model runs without the fault: the server leaves healthy.
        let sc = base
            .clone()
            .with_faults(redial_sim::FaultSchedule::none())
            .with_registry(Some(reg));
        Ok(Simulation::new(sc)
            .map_err(|e| UsageError(format!("invalid config: {e}")))?
            .run())
    };
    let jittered = run(args.move_spread)?;
    let herd = run(Duration::ZERO)?;
    check(&[&jittered, &herd])?;
    writeln!(
        out,
        "{} clients over {} servers; server {server} leaves the set at {:.1}s (drain {:?}), {:.0}s simulated",
        base.clients,
        args.servers,
        args.leave_at.as_secs_f64(),
        args.move_drain,
        base.duration.as_secs_f64()
    )?;
    writeln!(
        out,
        "{:<16} {:>7} {:>22} {:>10} {:>10} {:>10}  messages",
        "moves", "moved", "peak dials/100ms left", "move p50", "move p99", "move max"
    )?;
    let window = (
        args.leave_at,
        args.leave_at + args.move_spread + args.move_drain + Duration::from_secs(5),
    );
    for (name, r) in [
        (format!("spread {:?}", args.move_spread), &jittered),
        ("all at once".to_string(), &herd),
    ] {
        let peaks: Vec<String> = (0..usize::from(args.servers))
            .filter(|&k| k != usize::from(server))
            .map(|k| r.server_peak(k, window.0, window.1).to_string())
            .collect();
        let moved = Percentiles::of(r.moves.iter().map(|s| s.time));
        let m = r.summary().messages;
        writeln!(
            out,
            "{name:<16} {:>7} {:>22} {:>10} {:>10} {:>10}  {} enqueued, {} delivered, {} in doubt, {} abandoned",
            moved.count,
            peaks.join(" / "),
            crate::sim::ms(moved.p50_ms),
            crate::sim::ms(moved.p99_ms),
            crate::sim::ms(moved.max_ms),
            m.enqueued,
            m.delivered,
            m.in_doubt,
            m.abandoned,
        )?;
    }
    if let Some(path) = svg {
        let path = suffixed(path, "leave");
        draw(
            &path,
            &format!(
                "{} clients, server {server} of {} leaves at {:.0}s: dials per {} ms, per server",
                base.clients,
                args.servers,
                args.leave_at.as_secs_f64(),
                base.bucket.as_millis()
            ),
            &[
                (
                    format!("moves spread over {:?}", args.move_spread),
                    &jittered,
                ),
                ("all at once".into(), &herd),
            ],
            base,
            true,
        )?;
        writeln!(out, "chart written to {}", path.display())?;
    }
    Ok(())
}

fn budget(
    out: &mut impl Write,
    args: &FleetArgs,
    base: &Scenario,
    svg: Option<&Path>,
) -> CmdResult {
    if !(args.budget_per_success.is_finite() && args.budget_per_success >= 0.0) {
        return Err(UsageError("--budget-per-success must be a number >= 0".into()).into());
    }
    let policy = BudgetPolicy::new()
        .with_capacity(args.budget_capacity)
        .with_min_per_sec(args.budget_rate)
        .with_per_success(
            (args.budget_per_success * 1000.0)
                .round()
                .min(u32::MAX as f64) as u32,
        )
        .with_seed(base.seed);
    policy
        .validate()
        .map_err(|e| UsageError(format!("invalid budget: {e}")))?;
    let run = |b: Option<BudgetPolicy>| -> Result<Report, UsageError> {
        Ok(Simulation::new(base.clone().with_budget(b))
            .map_err(|e| UsageError(format!("invalid config: {e}")))?
            .run())
    };
    let free = run(None)?;
    let braked = run(Some(policy))?;
    check(&[&free, &braked])?;
    let Some(f) = base.faults.faults().first() else {
        return Ok(());
    };
    writeln!(
        out,
        "{} clients, {} from {:.1}s to {:.1}s; budget: {} tokens, {}/s, {} per connection",
        base.clients,
        f.kind,
        f.start.as_secs_f64(),
        f.end.as_secs_f64(),
        args.budget_capacity,
        args.budget_rate,
        args.budget_per_success
    )?;
    writeln!(
        out,
        "{:<10} {:>16} {:>12} {:>14} {:>13} {:>13} {:>9}",
        "budget",
        "attempts in fault",
        "attempts",
        "recovery peak",
        "reconnect p50",
        "reconnect p99",
        "gave up"
    )?;
    for (name, r) in [("none", &free), ("shared", &braked)] {
        let s = r.summary();
        let (during, _) = (attempts(r, f.start, f.end), 0);
        writeln!(
            out,
            "{name:<10} {during:>16} {:>12} {:>14} {:>13} {:>13} {:>9}",
            s.dials,
            s.peak_dials_per_bucket,
            crate::sim::ms(s.reconnection.p50_ms),
            crate::sim::ms(s.reconnection.p99_ms),
            s.gave_up,
        )?;
    }
    if let Some(b) = braked.budget {
        writeln!(
            out,
            "budget: {} retries allowed, {} refused (deferred), {} deposits",
            b.allowed, b.denied, b.deposits
        )?;
    }
    if let Some(path) = svg {
        let path = suffixed(path, "budget");
        draw(
            &path,
            &format!(
                "{} clients, {} {:.0}s: dials per {} ms, without and with a shared budget",
                base.clients,
                f.kind,
                (f.end - f.start).as_secs_f64(),
                base.bucket.as_millis()
            ),
            &[
                ("no budget".into(), &free),
                ("shared budget".into(), &braked),
            ],
            base,
            false,
        )?;
        writeln!(out, "chart written to {}", path.display())?;
    }
    Ok(())
}

/// Dials that reached the server within `[from, to)`.
fn attempts(r: &Report, from: Duration, to: Duration) -> u64 {
    let b = r.bucket.as_nanos();
    let (a, z) = ((from.as_nanos() / b) as usize, (to.as_nanos() / b) as usize);
    r.server_dials
        .get(a..z.min(r.server_dials.len()))
        .unwrap_or(&[])
        .iter()
        .map(|&d| u64::from(d))
        .sum()
}

/// `chart.svg` → `chart-leave.svg`.
fn suffixed(path: &Path, what: &str) -> std::path::PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("sim");
    path.with_file_name(format!("{stem}-{what}.svg"))
}

fn draw(
    path: &Path,
    title: &str,
    panels: &[(String, &Report)],
    sc: &Scenario,
    per_server: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let root = SVGBackend::new(path, (520 * panels.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let rows = |r: &Report| -> Vec<Vec<u32>> {
        if per_server {
            r.server_dials_by.clone()
        } else {
            vec![r.server_dials.clone()]
        }
    };
    let ymax = panels
        .iter()
        .flat_map(|(_, r)| rows(r).into_iter().flatten())
        .max()
        .unwrap_or(1)
        .max(1);
    let secs = sc.duration.as_secs_f64();
    let bucket = sc.bucket.as_secs_f64();
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (area, (name, report)) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..secs, 0u32..ymax + ymax / 20 + 1)?;
        chart
            .configure_mesh()
            .x_desc("virtual time (s)")
            .y_desc("dials")
            .draw()?;
        for (k, row) in rows(report).iter().enumerate() {
            let color = colors[k % colors.len()];
            let series = chart.draw_series(LineSeries::new(
                row.iter().enumerate().map(|(i, &n)| (i as f64 * bucket, n)),
                &color,
            ))?;
            if per_server {
                series
                    .label(format!("server {k}"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
        }
        if per_server {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}
