//! The registry model: a service of several servers whose endpoint set is pushed to every
//! session (as `redial-etcd` does), and one server that leaves it. The sessions connected to
//! it move off it as the driver does ([`redial_core::spread::Departure`]: a jittered start,
//! a bounded drain, [`redial_core::Session::move_off`]); every session orders the servers its
//! own way ([`redial_core::spread::order`]).

use core::time::Duration;

use redial_core::spread::Departure;

/// A service of `servers` servers, one of which leaves the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Registry {
    /// How many servers (at most 255).
    pub servers: u8,
    /// Which server leaves, and when (`None`: none does).
    pub leaves: Option<(u8, Duration)>,
    /// How sessions leave it.
    #[serde(skip)]
    pub departure: Departure,
}

impl Registry {
    /// `servers` servers; server `which` leaves at `at`; the driver's default departure.
    pub fn new(servers: u8, leaves: Option<(u8, Duration)>) -> Self {
        Registry {
            servers: servers.max(1),
            leaves,
            departure: Departure::new(),
        }
    }

    /// Sets how sessions leave.
    pub fn with_departure(mut self, departure: Departure) -> Self {
        self.departure = departure;
        self
    }
}
