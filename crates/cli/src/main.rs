//! `redial`: the command line of the redial workspace.
//!
//! Exit codes: 0 success, 2 bad arguments, 1 runtime error.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backoff_args;
mod demo;
mod describe;
mod duration;
mod pipe;
mod registry;
mod replay;
mod sim;
mod sim_fleet;
mod tls_args;

/// Keep long-lived TCP conversations alive: tools around the redial state machine.
#[derive(Debug, Parser)]
#[command(name = "redial", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Watch a session ride through refusals, a half-open partition, a server restart and a
    /// cut with requests in flight (local server and fault proxy, about 20 s).
    Demo(demo::DemoArgs),
    /// A reconnecting, heartbeating pipe: stdin lines to the server (plain lines, redis-cli
    /// style commands, or NATS pub/sub/req), its replies and messages to stdout.
    ///
    /// Exit codes: 0 all lines delivered, 1 runtime error (or the --record file failed),
    /// 2 bad arguments, 3 gave up reconnecting, 4 some lines not delivered (in doubt,
    /// abandoned, rejected or unparsable: each reported on stderr), 5 stdout was closed.
    Pipe(pipe::PipeArgs),
    /// Register ADDR under an etcd prefix with a lease kept alive until interrupted (then
    /// revoked): `redial register etcd://127.0.0.1:2379/services/redis 127.0.0.1:6379 --ttl 5s`.
    Register(registry::RegisterArgs),
    /// Replay a recorded session on a fresh core and print its decisions as a timeline.
    Replay(replay::ReplayArgs),
    /// Simulate many clients with a reconnect policy through a fault, on virtual time.
    Sim(sim::SimArgs),
}

/// Arguments that parse but make no sense together: reported like a clap error (exit 2).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// What a subcommand returns.
pub(crate) type CmdResult = Result<(), Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse(); // Exits with 2 on bad arguments.
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Pipe(args) => match pipe::run(args) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Command::Replay(args) => replay::run(args),
        Command::Register(args) => registry::run(args),
        Command::Sim(args) => sim::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<UsageError>() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("redial: {e}");
            ExitCode::from(1)
        }
    }
}
