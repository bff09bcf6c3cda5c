//! `redial replay FILE`: run a fresh core on a recorded session's inputs and print its
//! decisions as a timeline, checking they are the very ones the recording made.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use redial_core::{Action, Notification};
use redial_tokio::trace;

use crate::describe::describe;

/// Arguments of `redial replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// A trace written by `redial pipe --record FILE` (or `Builder::record`).
    file: PathBuf,
    /// Print every action (state changes, transmits, RTT samples), not only the decisions.
    #[arg(long)]
    all: bool,
}

fn action_line(a: &Action, all: bool) -> Option<String> {
    Some(match a {
        Action::Resolve { epoch } if all => format!("resolve    epoch {epoch}"),
        Action::Dial {
            epoch,
            addr,
            deadline,
        } => {
            format!("dial       {addr} (epoch {epoch}, deadline {deadline})")
        }
        Action::Close { epoch, reason } => format!("close      epoch {epoch}: {reason}"),
        Action::Transmit { epoch } if all => format!("transmit   epoch {epoch}"),
        Action::Notify(n) => match n {
            Notification::StateChanged { .. } | Notification::Rtt { .. } if !all => return None,
            n => describe(n, None),
        },
        _ => return None,
    })
}

/// Replays the trace; an error if it cannot be read or the replay diverges.
pub fn run(args: ReplayArgs) -> crate::CmdResult {
    let file =
        File::open(&args.file).map_err(|e| format!("cannot open {}: {e}", args.file.display()))?;
    let replayed =
        trace::replay(BufReader::new(file)).map_err(|e| format!("{}: {e}", args.file.display()))?;
    println!("protocol: {}", replayed.protocol);
    for (t, action) in &replayed.actions {
        if let Some(text) = action_line(action, args.all) {
            println!("{t:>12}  {text}");
        }
    }
    if let Some(why) = &replayed.truncated {
        println!("the recording stopped early: {why}");
    }
    if let Some(m) = &replayed.read_mismatch {
        return Err(format!(
            "replay diverges at the read on line {}: recorded (kept, used, units) {:?}, replayed {:?}",
            m.line, m.recorded, m.replayed
        )
        .into());
    }
    match replayed.first_mismatch() {
        None => {
            println!(
                "replay identical to the recording: {} actions, {} recorded, {} reads",
                replayed.actions.len(),
                replayed.recorded.len(),
                replayed.reads
            );
            Ok(())
        }
        Some(i) => Err(format!(
            "replay diverges at action {i}: recorded {:?}, replayed {:?}",
            replayed.recorded.get(i),
            replayed.actions.get(i).map(|(_, a)| trace::redacted(a))
        )
        .into()),
    }
}
