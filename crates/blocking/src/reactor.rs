//! One reactor per thread: the OS poller (epoll, kqueue) the thread blocks in while its
//! future waits, the sockets registered on it and their wakers, and the thread's timers.
//!
//! [`block_on`] is the whole executor: poll the future, and while it waits, block in the
//! poller until a socket is ready, a timer is due or a waker fires (from any thread:
//! `Poller::notify`). Nothing else runs on the thread, so there is nothing to schedule.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use polling::{Event, Events, Poller};

/// A thread's reactor (shared: a socket remembers the reactor it is registered with, and
/// wakers notify its poller from other threads).
#[derive(Clone)]
pub(crate) struct Reactor(Arc<Inner>);

struct Inner {
    poller: Poller,
    state: Mutex<State>,
    /// The buffer `Poller::wait` fills (only the reactor's own thread waits).
    events: Mutex<Events>,
}

#[derive(Default)]
struct State {
    sources: HashMap<usize, Source>,
    next_key: usize,
    /// Pending timers by (deadline, id), each with the waker of its last poll.
    timers: BTreeMap<(Instant, u64), Waker>,
    next_timer: u64,
}

/// The wakers waiting on one socket.
#[derive(Default)]
struct Source {
    read: Option<Waker>,
    write: Option<Waker>,
}

/// Which way a socket is waited on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Direction {
    Read,
    Write,
}

thread_local! {
    static CURRENT: RefCell<Option<Reactor>> = const { RefCell::new(None) };
}

impl Reactor {
    /// This thread's reactor, made on first use.
    pub(crate) fn current() -> io::Result<Reactor> {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(r) = &*c {
                return Ok(r.clone());
            }
            let r = Reactor(Arc::new(Inner {
                poller: Poller::new()?,
                state: Mutex::new(State::default()),
                events: Mutex::new(Events::new()),
            }));
            *c = Some(r.clone());
            Ok(r)
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn same(&self, other: &Reactor) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Registers `fd` (with no interest yet); returns its key.
    fn add(&self, fd: &impl AsRawFd) -> io::Result<usize> {
        let key = {
            let mut s = self.state();
            let key = s.next_key;
            s.next_key = s.next_key.wrapping_add(1) % (usize::MAX - 1);
            s.sources.insert(key, Source::default());
            key
        };
        // SAFETY: the descriptor stays open while registered: `Registration` is owned by the
        // socket it registers, and deletes the registration (in `Drop` or when it moves to
        // another thread's reactor) before the socket is closed.
        #[allow(unsafe_code)]
        let added = unsafe { self.0.poller.add(fd.as_raw_fd(), Event::none(key)) };
        if let Err(e) = added {
            self.state().sources.remove(&key);
            return Err(e);
        }
        Ok(key)
    }

    fn delete(&self, key: usize, fd: impl AsFd) {
        self.state().sources.remove(&key);
        let _ = self.0.poller.delete(fd);
    }

    /// `waker` waits for `fd` to be ready in `dir`: stored, and the interest armed.
    fn want(&self, key: usize, fd: impl AsFd, dir: Direction, waker: &Waker) -> io::Result<()> {
        let interest = {
            let mut s = self.state();
            let src = s.sources.entry(key).or_default();
            let slot = match dir {
                Direction::Read => &mut src.read,
                Direction::Write => &mut src.write,
            };
            match slot {
                Some(w) if w.will_wake(waker) => {}
                w => *w = Some(waker.clone()),
            }
            Event::new(key, src.read.is_some(), src.write.is_some())
        };
        // Level-triggered: readiness that came before this call is reported at once.
        self.0.poller.modify(fd, interest)
    }

    /// A timer: `waker` is woken once `deadline` has passed. Returns its id.
    fn timer(&self, deadline: Instant, id: Option<u64>, waker: &Waker) -> u64 {
        let mut s = self.state();
        let id = id.unwrap_or_else(|| {
            s.next_timer = s.next_timer.wrapping_add(1);
            s.next_timer
        });
        match s.timers.get_mut(&(deadline, id)) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => *w = waker.clone(),
            None => {
                s.timers.insert((deadline, id), waker.clone());
            }
        }
        id
    }

    fn cancel_timer(&self, deadline: Instant, id: u64) {
        self.state().timers.remove(&(deadline, id));
    }

    /// Blocks until a socket is ready, a timer is due, a waker fires, or `until`; then wakes
    /// what was waiting.
    fn turn(&self, until: Option<Instant>) -> io::Result<()> {
        let next_timer = self.state().timers.keys().next().map(|(at, _)| *at);
        let deadline = match (next_timer, until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut events = self.0.events.lock().unwrap_or_else(PoisonError::into_inner);
        events.clear();
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match self.0.poller.wait(&mut events, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let mut wake = Vec::new();
        {
            let mut s = self.state();
            for ev in events.iter() {
                // Any event wakes both directions: a spurious wake-up only retries the call
                // (and error or hang-up conditions reach both ways).
                if let Some(src) = s.sources.get_mut(&ev.key) {
                    wake.extend(src.read.take());
                    wake.extend(src.write.take());
                }
            }
            let now = Instant::now();
            while let Some(entry) = s.timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                wake.push(entry.remove());
            }
        }
        drop(events);
        for w in wake {
            w.wake();
        }
        Ok(())
    }
}

/// A socket's registration with the reactor of the thread that last polled it.
pub(crate) struct Registration {
    at: Option<(Reactor, usize)>,
}

impl Registration {
    pub(crate) fn new() -> Self {
        Registration { at: None }
    }

    /// `cx` waits for `fd` to be ready in `dir`, on this thread's reactor (the registration
    /// moves there if the socket was last polled on another thread).
    pub(crate) fn wait<F: AsFd + AsRawFd>(
        &mut self,
        fd: &F,
        dir: Direction,
        cx: &Context<'_>,
    ) -> io::Result<()> {
        let here = Reactor::current()?;
        let key = match &self.at {
            Some((r, key)) if r.same(&here) => *key,
            _ => {
                self.deregister(fd);
                let key = here.add(fd)?;
                self.at = Some((here.clone(), key));
                key
            }
        };
        here.want(key, fd, dir, cx.waker())
    }

    /// Removes the registration (the socket is about to close, or moves).
    pub(crate) fn deregister(&mut self, fd: impl AsFd) {
        if let Some((r, key)) = self.at.take() {
            r.delete(key, fd);
        }
    }
}

/// A timer future on the polling thread's reactor: it fires on a thread driven by
/// [`crate::block_on`] (a session's thread, or yours), not inside another executor.
#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
    entry: Option<(ReactorRef, u64)>,
}

/// A reactor as a timer remembers it (shown by address only).
#[derive(Clone)]
struct ReactorRef(Reactor);

impl std::fmt::Debug for ReactorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reactor({:p})", Arc::as_ptr(&self.0 .0))
    }
}

impl Sleep {
    /// Completes at `deadline` (or soon after).
    pub fn until(deadline: Instant) -> Self {
        Sleep {
            deadline,
            entry: None,
        }
    }

    fn cancel(&mut self) {
        if let Some((r, id)) = self.entry.take() {
            r.0.cancel_timer(self.deadline, id);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.cancel();
            return Poll::Ready(());
        }
        let Ok(here) = Reactor::current() else {
            // No poller for this thread (out of file descriptors): poll again soon rather
            // than never.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        let id = match &self.entry {
            Some((r, id)) if r.0.same(&here) => Some(*id),
            _ => {
                self.cancel();
                None
            }
        };
        let id = here.timer(self.deadline, id, cx.waker());
        self.entry = Some((ReactorRef(here), id));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Wakes a [`block_on`] thread: a flag, and the poller's notification.
struct Notifier {
    woken: AtomicBool,
    reactor: Reactor,
}

impl Wake for Notifier {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.reactor.0.poller.notify();
        }
    }
}

/// Runs `fut` on this thread until it completes or `until` passes (then `None`).
///
/// # Panics
/// If the thread's poller cannot be made or waited on (the process is out of file
/// descriptors, say): there is no way to wait then.
pub(crate) fn run<F: Future + ?Sized>(
    mut fut: Pin<&mut F>,
    until: Option<Instant>,
) -> Option<F::Output> {
    let reactor = Reactor::current().expect("redial-blocking: cannot make an OS poller");
    let notifier = Arc::new(Notifier {
        woken: AtomicBool::new(true),
        reactor: reactor.clone(),
    });
    let waker = Waker::from(Arc::clone(&notifier));
    let mut cx = Context::from_waker(&waker);
    loop {
        if notifier.woken.swap(false, Ordering::AcqRel) {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return Some(v);
            }
            continue;
        }
        if until.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        reactor
            .turn(until)
            .expect("redial-blocking: waiting on the OS poller failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_sleep_completes_at_its_deadline_not_before() {
        let start = Instant::now();
        let mut s = std::pin::pin!(Sleep::until(start + Duration::from_millis(30)));
        assert_eq!(run(s.as_mut(), None), Some(()));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn run_gives_up_at_its_deadline() {
        let start = Instant::now();
        let mut never = std::pin::pin!(futures::future::pending::<()>());
        assert_eq!(
            run(never.as_mut(), Some(start + Duration::from_millis(20))),
            None
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_waker_from_another_thread_wakes_the_poller() {
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        let t = std::thread::spawn(move || {
            // The receiver is waiting in the poller by now or soon: either way the value
            // arrives through the waker.
            tx.send(7).expect("receiver alive");
        });
        let mut rx = std::pin::pin!(rx);
        let got = run(rx.as_mut(), Some(Instant::now() + Duration::from_secs(10)));
        t.join().expect("sender");
        assert_eq!(got, Some(Ok(7)));
    }

    #[test]
    fn a_dropped_sleep_leaves_no_timer() {
        let r = Reactor::current().expect("poller");
        {
            let mut s = std::pin::pin!(Sleep::until(Instant::now() + Duration::from_secs(60)));
            let waker = futures::task::noop_waker();
            assert!(s
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            assert_eq!(r.state().timers.len(), 1);
        }
        assert_eq!(r.state().timers.len(), 0);
    }
}
