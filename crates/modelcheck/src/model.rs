//! The stateright model: states, actions, the fingerprint and the properties.

use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use stateright::{Model, Property};

use crate::host::{Act, Host, Limits, Prop};
use crate::peer::Proto;

/// The input history of a state: a shared, persistent list (a child shares its parent's).
#[derive(Clone, Debug, Default)]
pub struct History(Option<Arc<(Act, History)>>);

impl History {
    /// This history and then `act`.
    pub fn then(&self, act: Act) -> History {
        History(Some(Arc::new((act, self.clone()))))
    }

    /// The steps, oldest first.
    pub fn steps(&self) -> Vec<Act> {
        let mut v = Vec::new();
        let mut at = self;
        while let Some(node) = &at.0 {
            v.push(node.0);
            at = &node.1;
        }
        v.reverse();
        v
    }
}

/// One explored state: the input history that reaches it (not part of its identity), the
/// digest of what that history made of the real core, the peer and the network (its identity),
/// and what the properties need.
#[derive(Clone, Debug)]
pub struct McState {
    /// How this state is reached from the start.
    pub history: History,
    /// The fingerprint: session views, host mirror, time.
    pub digest: u128,
    /// The steps possible from here.
    pub enabled: Arc<[Act]>,
    /// Broken properties (bits of [`Prop::bit`]).
    pub broken: u16,
    /// Every accepted message has its outcome.
    pub settled: bool,
    /// A connection that went silent is still current.
    pub silent_alive: bool,
    /// What was broken, in words.
    pub why: Option<Arc<str>>,
}

impl Hash for McState {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.digest.hash(h);
        self.broken.hash(h);
    }
}

impl PartialEq for McState {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.broken == other.broken
    }
}

impl Eq for McState {}

/// The model: one real session of `proto`, its peer model and the network, within `limits`.
#[derive(Clone, Debug)]
pub struct SessionModel {
    /// The protocol.
    pub proto: Proto,
    /// The bounds.
    pub limits: Limits,
}

impl SessionModel {
    /// A model of `proto` within `limits`.
    pub fn new(proto: Proto, limits: Limits) -> Self {
        SessionModel { proto, limits }
    }

    /// Runs `steps` from the start on a fresh host (recording the trace if asked). A panic of
    /// the core is caught and reported as a broken invariant 1.
    pub fn run(&self, steps: &[Act], record: bool) -> Result<Host, String> {
        catch_unwind(AssertUnwindSafe(|| {
            let mut h = Host::new(self.proto, self.limits, record);
            for a in steps {
                h.apply(*a);
            }
            h
        }))
        .map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic".into())
        })
    }

    fn state_of(&self, history: History) -> McState {
        let steps = history.steps();
        match self.run(&steps, false) {
            Ok(h) => McState {
                digest: h.digest(),
                enabled: h.enabled().into(),
                broken: h.m.broken,
                settled: h.settled(),
                silent_alive: h.silent_alive(),
                why: h
                    .violations
                    .first()
                    .map(|v| format!("{:?}: {}", v.prop, v.what).into()),
                history,
            },
            Err(p) => McState {
                digest: 0,
                enabled: Arc::from([]),
                broken: Prop::NoPanic.bit(),
                settled: true,
                silent_alive: false,
                why: Some(format!("NoPanic: the core panicked: {p}").into()),
                history,
            },
        }
    }
}

fn ok(s: &McState, p: Prop) -> bool {
    s.broken & p.bit() == 0
}

impl Model for SessionModel {
    type State = McState;
    type Action = Act;

    fn init_states(&self) -> Vec<McState> {
        vec![self.state_of(History::default())]
    }

    fn actions(&self, state: &McState, actions: &mut Vec<Act>) {
        actions.extend(state.enabled.iter().copied());
    }

    fn next_state(&self, last: &McState, action: Act) -> Option<McState> {
        Some(self.state_of(last.history.then(action)))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("inv1: no input makes the core panic", |_, s| {
                ok(s, Prop::NoPanic)
            }),
            Property::always(
                "inv2: one current connection, stale inputs inert",
                |_, s| ok(s, Prop::OneConnection),
            ),
            Property::always(
                "inv3: no dial before its backoff deadline or after close",
                |_, s| ok(s, Prop::Backoff),
            ),
            Property::always(
                "inv4: one outcome each, no unidempotent rewrite, order",
                |_, s| ok(s, Prop::Ledger),
            ),
            Property::always(
                "every reply credited to its request, heartbeats apart",
                |_, s| ok(s, Prop::Attribution),
            ),
            Property::always(
                "executed within [delivered, delivered + in doubt]",
                |_, s| ok(s, Prop::Executed),
            ),
            Property::always(
                "inv5: a silent peer is dead by interval + timeout",
                |_, s| ok(s, Prop::Liveness),
            ),
            Property::always("an honest peer never breaks the connection", |_, s| {
                ok(s, Prop::Honest)
            }),
            // Eventually: checked by stateright at the end of every path (a state with no
            // successor), so the condition is "this is such an end, and the obligation is met"
            // (a broken state is an end too, already reported by its `always` property).
            Property::eventually(
                "every message eventually ends in exactly one outcome",
                |_, s: &McState| s.broken != 0 || (s.enabled.is_empty() && s.settled),
            ),
            Property::eventually(
                "a silent peer is eventually declared dead",
                |_, s: &McState| s.broken != 0 || (s.enabled.is_empty() && !s.silent_alive),
            ),
        ]
    }
}
