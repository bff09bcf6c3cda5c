//! Thread placement of the smol 64 B comparison (issue #13, part 3): which CPU each busy
//! thread runs on, sampled while it runs, and pinning them on request.
//!
//! The busy threads: the sender (`main`, in `smol::block_on`), smol's executor thread
//! (`smol-1`, running redial's session task and the channel writer), the sink (`bench-sink`,
//! its own tokio runtime) and async-io's reactor thread (`async-io`, when nobody else drives
//! the reactor).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The threads of this process: (tid, name as the kernel has it).
fn threads() -> Vec<(i32, String)> {
    let pid = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let tid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
        let name = if tid == pid {
            "main".to_string()
        } else {
            comm.trim().to_string()
        };
        Some((tid, name))
    })
    .collect()
}

/// The CPU a thread last ran on (field 39 of its `stat`).
fn last_cpu(tid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(36)?.parse().ok()
}

/// Pins threads by name: `spec` is `name=cpu,...` (`main`, `smol-1`, `bench-sink`,
/// `async-io`). Returns what was pinned.
#[allow(unsafe_code)]
pub fn pin(spec: &str) -> Vec<String> {
    let mut done = Vec::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let Some((name, cpu)) = part.split_once('=') else {
            panic!("REDIAL_BENCH_PIN: {part:?} is not name=cpu");
        };
        let cpu: usize = cpu.parse().expect("cpu number");
        for (tid, n) in threads().into_iter().filter(|(_, n)| n == name) {
            // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
            // sched_setaffinity only read and write that owned set.
            let ok = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
            };
            assert!(ok, "sched_setaffinity({n}, {cpu}) failed");
            done.push(format!("{n}={cpu}"));
        }
    }
    done
}

/// Samples, every 2 ms, which CPU the named threads last ran on, until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Vec<Option<u32>>>>,
    names: Vec<String>,
}

impl Sampler {
    /// Starts sampling the threads named `names` (those that exist now).
    pub fn start(names: &[&str]) -> Sampler {
        let all = threads();
        let tids: Vec<Option<i32>> = names
            .iter()
            .map(|n| all.iter().find(|(_, m)| m == n).map(|(t, _)| *t))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("bench-sampler".into())
            .spawn(move || {
                let mut samples = Vec::new();
                while !s.load(Relaxed) {
                    samples.push(tids.iter().map(|t| t.and_then(last_cpu)).collect());
                    std::thread::sleep(Duration::from_millis(2));
                }
                samples
            })
            .expect("sampler thread");
        Sampler {
            stop,
            handle,
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Stops; returns, for each pair of named threads, the share of samples in which both
    /// were last on the same CPU (`a+b=0.93`).
    pub fn finish(self) -> String {
        self.stop.store(true, Relaxed);
        let samples = self.handle.join().expect("sampler");
        let mut out = Vec::new();
        for i in 0..self.names.len() {
            for j in i + 1..self.names.len() {
                let both: Vec<bool> = samples
                    .iter()
                    .filter_map(|s: &Vec<Option<u32>>| Some(s[i]? == s[j]?))
                    .collect();
                let same = both.iter().filter(|&&b| b).count() as f64 / both.len().max(1) as f64;
                out.push(format!("{}+{}={same:.2}", self.names[i], self.names[j]));
            }
        }
        out.join(" ")
    }
}
