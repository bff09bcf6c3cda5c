//! How a fleet spreads over a service's endpoints: each session's own order of the endpoints,
//! and when a session leaves an endpoint that left the service.
//!
//! - **Order.** Every session ranks the endpoints by a hash of its seed and the address
//!   (rendezvous hashing) and rotates through them in that order. Sessions with different
//!   seeds start on different endpoints, so a fleet spreads evenly; an endpoint that joins
//!   takes a random place in every session's order (new connections reach it in its share),
//!   and one that leaves does not reorder the rest.
//! - **Departure.** When the endpoint a session is connected to leaves the set, the session
//!   moves at a jittered instant within [`Departure::spread`], drains what is in flight for up
//!   to [`Departure::drain`] ([`crate::Session::move_off`]), then dials a remaining endpoint:
//!   10,000 sessions leaving one server do not land on the others in the same 100 ms.

use core::time::Duration;

use rand_core::RngCore;

use crate::addr::Addr;
use crate::rng::uniform;
use crate::time::{duration_nanos, Instant};

/// The rank of `addr` for the session seeded with `seed`: higher goes first.
pub fn rank(seed: u64, addr: &Addr) -> u64 {
    let mut h = mix(seed ^ 0x005E_ED0F_0DE5);
    match addr {
        Addr::Ip(a) => {
            match a.ip() {
                core::net::IpAddr::V4(v4) => h = mix(h ^ u64::from(u32::from(v4))),
                core::net::IpAddr::V6(v6) => {
                    let b = u128::from(v6);
                    h = mix(h ^ (b as u64));
                    h = mix(h ^ ((b >> 64) as u64));
                }
            }
            mix(h ^ u64::from(a.port()))
        }
        Addr::Local(n) => mix(h ^ 0xF00D ^ u64::from(*n)),
    }
}

/// Sorts `addrs` into the session's own order (see [`rank`]); ties keep their order.
pub fn order(seed: u64, addrs: &mut [Addr]) {
    addrs.sort_by_key(|a| core::cmp::Reverse(rank(seed, a)));
}

/// The order of `n` items for the session seeded with `seed`, as indices, given each item's
/// address: for hosts that keep their own endpoint type beside the core's [`Addr`].
pub fn order_indices(seed: u64, addrs: &[Addr], out: &mut alloc::vec::Vec<usize>) {
    out.clear();
    out.extend(0..addrs.len());
    out.sort_by_key(|&i| core::cmp::Reverse(rank(seed, &addrs[i])));
}

/// When and how a session leaves an endpoint that left the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Departure {
    /// Moves start uniformly within this long after the endpoint left. Default 2 s.
    pub spread: Duration,
    /// How long in-flight messages may drain before the rest get their usual outcomes.
    /// Default 5 s.
    pub drain: Duration,
}

impl Default for Departure {
    fn default() -> Self {
        Departure::new()
    }
}

impl Departure {
    /// A 2 s spread, a 5 s drain.
    pub const fn new() -> Self {
        Departure {
            spread: Duration::from_secs(2),
            drain: Duration::from_secs(5),
        }
    }

    /// Sets the spread.
    pub const fn with_spread(mut self, spread: Duration) -> Self {
        self.spread = spread;
        self
    }

    /// Sets the drain bound.
    pub const fn with_drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// When a session told at `now` that its endpoint left should start moving.
    pub fn at<R: RngCore + ?Sized>(&self, now: Instant, rng: &mut R) -> Instant {
        now.saturating_add(Duration::from_nanos(uniform(
            rng,
            0,
            duration_nanos(self.spread),
        )))
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use alloc::vec::Vec;

    fn addr(port: u16) -> Addr {
        Addr::Ip(core::net::SocketAddr::from(([10, 0, 0, 1], port)))
    }

    #[test]
    fn sessions_spread_evenly_over_their_first_choice() {
        let set = [addr(1), addr(2), addr(3)];
        let mut firsts = [0u32; 3];
        for seed in 0..3000u64 {
            let mut s = set;
            order(seed, &mut s);
            firsts[set.iter().position(|a| *a == s[0]).unwrap()] += 1;
        }
        for f in firsts {
            assert!((850..1150).contains(&f), "{firsts:?}");
        }
    }

    #[test]
    fn a_leaving_endpoint_keeps_the_order_of_the_rest() {
        for seed in 0..200u64 {
            let mut all = [addr(1), addr(2), addr(3), addr(4)];
            order(seed, &mut all);
            let mut rest: Vec<Addr> = [addr(1), addr(2), addr(4)].to_vec();
            order(seed, &mut rest);
            let kept: Vec<Addr> = all.iter().copied().filter(|a| *a != addr(3)).collect();
            assert_eq!(rest, kept);
        }
    }

    #[test]
    fn indices_agree_with_order() {
        let set = [addr(7), addr(8), Addr::Local(0)];
        let mut idx = Vec::new();
        order_indices(5, &set, &mut idx);
        let mut s = set;
        order(5, &mut s);
        assert_eq!(idx.iter().map(|&i| set[i]).collect::<Vec<_>>(), s.to_vec());
    }

    #[test]
    fn departures_fall_within_the_spread() {
        let d = Departure::new().with_spread(Duration::from_secs(2));
        let mut rng = SplitMix64::new(3);
        let now = Instant::from_millis(1000);
        let times: Vec<Instant> = (0..1000).map(|_| d.at(now, &mut rng)).collect();
        assert!(times
            .iter()
            .all(|t| *t >= now && *t <= Instant::from_millis(3000)));
        let early = times
            .iter()
            .filter(|t| **t < Instant::from_millis(2000))
            .count();
        assert!((400..600).contains(&early), "{early}");
        let zero = Departure::new().with_spread(Duration::ZERO);
        assert_eq!(zero.at(now, &mut rng), now);
    }
}
