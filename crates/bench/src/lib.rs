//! redial's benchmarks (issue 7) live in the bench target `benches/redial/` — a bench target,
//! so that the peers it measures against (stubborn-io) are dev-dependencies only and reach no
//! library's dependency tree. Run everything and write `BENCHMARKS.md` with `bench/run.sh`
//! (`cargo bench -p redial-bench --bench redial -- all --out BENCHMARKS.md`). The peers
//! comparison (issue #13: redis-rs and async-nats against real servers) is the bench target
//! `benches/peers/`, run by the same script; it writes its own section of `BENCHMARKS.md`.
//!
//! What the bench targets share (the redial, soak and TLS targets): the statistics every table
//! prints and the redial senders every throughput comparison runs.

use std::collections::VecDeque;

use redial_tokio::{Batch, Delivery, LengthCodec, Receipt};

/// Receive window of outstanding receipts for redial senders.
pub const WINDOW: usize = 512;
/// Bytes per batch for the batch sender: the raw clients' `BufWriter` capacity, so both
/// hand the kernel the same amount at a time.
pub const BATCH_BYTES: usize = 8 << 10;
/// Outstanding batch receipts.
pub const BATCH_WINDOW: usize = 64;

/// The frame header of `LengthCodec` for a data payload of `size` bytes.
pub fn header(size: usize) -> [u8; 5] {
    let l = (size as u32 + 1).to_be_bytes();
    [l[0], l[1], l[2], l[3], LengthCodec::DATA]
}

/// The per-message path: each message its own `Vec` through `Handle::send`, a window of
/// [`WINDOW`] receipts outstanding.
pub async fn send_redial(h: &redial_tokio::Handle, n: usize, size: usize) {
    let mut win: VecDeque<Receipt> = VecDeque::with_capacity(WINDOW);
    for _ in 0..n {
        if win.len() == WINDOW {
            win.pop_front().expect("receipt").await.expect("delivered");
        }
        win.push_back(h.send(vec![7u8; size], Delivery::AtMostOnce));
    }
    for r in win {
        r.await.expect("delivered");
    }
}

/// The batch fast path: messages copied from one reused buffer into [`Batch`]es of about
/// [`BATCH_BYTES`] (records included), one receipt per batch, a window of them in flight.
pub async fn send_redial_batch(h: &redial_tokio::Handle, n: usize, size: usize) {
    let payload = vec![7u8; size];
    let per = (BATCH_BYTES / (size + redial_tokio::core::BATCH_RECORD_OVERHEAD)).max(1);
    let mut win: VecDeque<Receipt> = VecDeque::with_capacity(BATCH_WINDOW);
    let mut sent = 0;
    while sent < n {
        let k = per.min(n - sent);
        let mut b = Batch::with_capacity(k * (size + redial_tokio::core::BATCH_RECORD_OVERHEAD));
        for _ in 0..k {
            b.push(&payload);
        }
        sent += k;
        if win.len() == BATCH_WINDOW {
            win.pop_front().expect("receipt").await.expect("delivered");
        }
        win.push_back(h.send_batch(b, Delivery::AtMostOnce));
    }
    for r in win {
        r.await.expect("delivered");
    }
}

/// Median, min, max.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(xs: &[f64]) -> Spread {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// Percentile by nearest rank.
    pub fn pct(xs: &[f64], p: f64) -> f64 {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[i.clamp(1, v.len()) - 1]
    }

    /// `median (min – max)` with `prec` decimals.
    pub fn show(&self, prec: usize) -> String {
        format!(
            "{:.p$} ({:.p$} – {:.p$})",
            self.median,
            self.min,
            self.max,
            p = prec
        )
    }
}

/// The order of `n` sides in round `r`: rotated by `r`.
pub fn rotation(n: usize, r: usize) -> Vec<usize> {
    (0..n).map(|i| (i + r) % n).collect()
}
