//! Listeners: on every Tokio runtime that submits or waits, a task that wakes
//! when completions arrive and runs the one completion path there, so that the
//! worker which wakes is the one that runs the waiting tasks.
//!
//! - Under the pipe notifier (with `Config::runtime_delivery`, the default) the
//!   task waits, through the runtime's own reactor (`AsyncFd`), for the
//!   self-pipe of tokens and, once the application blocks the signal, for the
//!   `signalfd`. While such listeners live, the `aiofs-notifier` thread leaves
//!   both to them (it still runs the recovery timer, and reads them again while
//!   requests from outside any listening runtime are in flight).
//! - Under the signal notifier the task reads Tokio's signal stream for the
//!   completion signal and drains the self-pipe when it wakes.
//!
//! Every runtime has its own listener: a runtime's task runs only while that
//! runtime is driven, so a single listener on a current_thread runtime idle
//! between `block_on` calls would hold up every other runtime's completions.
//! Whichever listener runs first takes the tokens.

use std::cell::Cell;
use std::io;
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::runtime::{Handle, Id};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

use super::super::Driver;
use super::super::stats::{self, LISTENERS, WAKEUPS};
use super::Drain;

/// How many runtimes that shut down are remembered.
const DEAD_RUNTIMES: usize = 64;

/// What a listener waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in super::super) enum Kind {
    /// Tokio's signal stream (`Notifier::Signal`).
    SignalStream,
    /// The self-pipe and the `signalfd`, in the runtime's reactor.
    Fds,
}

pub(in super::super) struct Listeners {
    kind: Kind,
    /// The runtimes whose listener task lives (or is being spawned).
    live: Mutex<Vec<Id>>,
    /// Held while a listener is spawned.
    spawning: Mutex<()>,
    /// `live.len()`, read without the lock.
    count: AtomicUsize,
    /// The runtimes never to spawn on again, the newest last: their listener
    /// was dropped (they are shutting down), or they have no IO driver.
    dead: Mutex<Vec<Id>>,
    /// Bumped whenever a listener goes: what a thread remembers in [`KNOWN`]
    /// holds only for the generation it was seen in.
    generation: AtomicU64,
    /// Bumped each time a listener drains: the notifier thread tells by it
    /// whether tokens left in the pipe are being taken care of.
    drained: AtomicU64,
    /// Wakes the listeners when the signalfd opens (after they started).
    signalfd_opened: Notify,
}

thread_local! {
    /// The runtime this thread last saw with a listener, and the listeners'
    /// generation then.
    static KNOWN: Cell<Option<(Id, u64)>> = const { Cell::new(None) };
}

/// Marks the runtime's listener gone when its task is dropped (its runtime
/// shut down), even if the task never ran.
struct Guard(&'static Driver, Id);

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(listeners) = &self.0.listeners else {
            return;
        };
        listeners.forget(self.1);
        listeners.set_live(|live| live.retain(|&id| id != self.1));
        listeners.generation.fetch_add(1, Ordering::AcqRel);
        // The notifier thread may have to read the pipe again.
        let _ = self.0.kick.wake();
    }
}

impl Listeners {
    pub(in super::super) fn new(kind: Kind) -> Listeners {
        Listeners {
            kind,
            live: Mutex::new(Vec::new()),
            spawning: Mutex::new(()),
            count: AtomicUsize::new(0),
            dead: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            drained: AtomicU64::new(0),
            signalfd_opened: Notify::new(),
        }
    }

    /// How many times listeners drained so far.
    pub(in super::super) fn drained(&self) -> u64 {
        self.drained.load(Ordering::Acquire)
    }

    /// The signalfd just opened: the listeners that started without it
    /// register it.
    pub(in super::super) fn signalfd_opened(&self) {
        self.signalfd_opened.notify_waiters();
    }

    /// Whether no runtime listens.
    pub(in super::super) fn none(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// Makes sure a task on the current runtime listens. `Ok(false)` when it
    /// cannot (no runtime, or under the pipe notifier a runtime without IO):
    /// the notifier thread serves the request.
    ///
    /// # Errors
    ///
    /// Under the signal notifier, when there is no runtime, or no signal
    /// driver in it.
    pub(in super::super) fn ensure(&self, driver: &'static Driver) -> io::Result<bool> {
        let handle = match Handle::try_current() {
            Ok(h) => h,
            Err(_) if self.kind == Kind::Fds => return Ok(false),
            Err(_) => {
                return Err(io::Error::other(
                    "aiofs: the signal notifier needs a Tokio runtime (with IO enabled); \
                     outside Tokio use Notifier::Pipe",
                ));
            }
        };
        let id = handle.id();
        let generation = self.generation.load(Ordering::Acquire);
        if KNOWN.get() == Some((id, generation)) {
            return Ok(true);
        }
        // One spawn at a time (two threads of one runtime may get here at
        // once); no other lock is held while spawning, since a task dropped at
        // once (its runtime shuts down) runs its guard right there.
        let _spawning = self.spawning.lock().unwrap_or_else(|e| e.into_inner());
        if self.lock_live().contains(&id) {
            KNOWN.set(Some((id, generation)));
            return Ok(true);
        }
        let dying = self
            .dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id);
        if dying {
            // This runtime is shutting down (it dropped its listener): a task
            // spawned there would be dropped at once. The notifier thread
            // serves its last requests.
            return Ok(false);
        }
        if std::thread::panicking() {
            // Spawning probes the runtime, which may panic (Tokio's, for a
            // runtime without IO): while this thread unwinds (a `File` dropped
            // by a panicking task), a second panic would abort the process.
            // The notifier thread serves the request.
            return Ok(false);
        }
        // Listed first: the guard of a task dropped at once takes it out.
        self.set_live(|live| live.push(id));
        let spawned = {
            let _enter = handle.enter();
            match self.kind {
                Kind::SignalStream => spawn_stream(&handle, driver, id),
                Kind::Fds => spawn_fds(&handle, driver, id),
            }
        };
        if let Err(e) = spawned {
            self.set_live(|live| live.retain(|&l| l != id));
            return match self.kind {
                // A runtime without IO: the notifier thread serves it (and it
                // is not asked again).
                Kind::Fds => {
                    self.forget(id);
                    Ok(false)
                }
                Kind::SignalStream => Err(e),
            };
        }
        if !self.lock_live().contains(&id) {
            // The task was dropped at once (the runtime shuts down): nobody
            // listens there; the notifier thread serves the request.
            return Ok(false);
        }
        KNOWN.set(Some((id, generation)));
        stats::add(&LISTENERS, 1);
        // The notifier thread may leave the pipe to the listeners now.
        let _ = driver.kick.wake();
        Ok(true)
    }

    /// Never spawns on runtime `id` again (it shuts down, or has no IO).
    fn forget(&self, id: Id) {
        let mut dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        if dead.len() >= DEAD_RUNTIMES {
            dead.remove(0);
        }
        dead.push(id);
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, Vec<Id>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the list of live listeners (and its count).
    fn set_live(&self, f: impl FnOnce(&mut Vec<Id>)) {
        let mut live = self.lock_live();
        f(&mut live);
        self.count.store(live.len(), Ordering::Release);
    }
}

/// Runs one drain of a listener, counted (see [`Listeners::drained`]). A
/// panic in code run from there (a waker, a buffer's `Drop`) must not end the
/// listener, whose runtime would then wait for the recovery timer: it is
/// caught, and the listener goes on.
fn drained<R: Default>(driver: &Driver, f: impl FnOnce() -> R) -> R {
    if let Some(l) = &driver.listeners {
        l.drained.fetch_add(1, Ordering::AcqRel);
    }
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_default()
}

/// Spawns the task reading Tokio's signal stream (signal notifier).
fn spawn_stream(handle: &Handle, driver: &'static Driver, id: Id) -> io::Result<()> {
    let signo = driver.settings.signal;
    // `signal` registers Tokio's handler for the number before we return, so
    // no request is submitted before its completion can be seen. It panics on
    // a runtime without IO: turn that into an error.
    let mut stream = match catch_unwind(AssertUnwindSafe(|| signal(SignalKind::from_raw(signo)))) {
        Ok(res) => res?,
        Err(_) => {
            return Err(io::Error::other(
                "aiofs: the signal notifier needs Tokio's signal driver: build the runtime with enable_io()",
            ));
        }
    };
    // Created here, moved into the task: dropped with it even if it never runs.
    let guard = Guard(driver, id);
    handle.spawn(async move {
        let guard = guard;
        let driver = guard.0;
        let mut drain = Drain::new();
        // Anything may have finished while this runtime did not listen.
        let wake = |drain: &mut Drain| {
            drained(driver, || {
                if !drain.run(driver, &driver.token_pipe) {
                    // Another listener took the tokens; a merged (standard)
                    // signal still asks for a scan.
                    driver.on_wake(&[], true);
                }
            })
        };
        wake(&mut drain);
        while stream.recv().await.is_some() {
            stats::add(&WAKEUPS, 1);
            wake(&mut drain);
        }
    });
    Ok(())
}

/// Registers the self-pipe (and the `signalfd`, if open) with the runtime's
/// reactor and spawns the task that drains them (pipe notifier). A `signalfd`
/// opened later is registered by the task when it opens.
fn spawn_fds(handle: &Handle, driver: &'static Driver, id: Id) -> io::Result<()> {
    let Some(listeners) = &driver.listeners else {
        return Err(io::Error::other("aiofs: internal: no listeners"));
    };
    // The driver and its descriptors live as long as the program.
    let pipe = crate::sys::reactor::readable(driver.token_pipe.as_fd())?;
    let mut sfd = match super::signalfd() {
        Some(fd) => Some(crate::sys::reactor::readable(fd)?),
        None => None,
    };
    let guard = Guard(driver, id);
    handle.spawn(async move {
        let guard = guard;
        let driver = guard.0;
        let mut drain = Drain::new();
        // Anything may have finished while this runtime did not listen.
        drained(driver, || drain.run(driver, &driver.token_pipe));
        loop {
            let opened = listeners.signalfd_opened.notified();
            tokio::pin!(opened);
            if sfd.is_none() {
                // Asked to be woken before looking: an opening in between
                // is not missed.
                opened.as_mut().enable();
                if let Some(fd) = super::signalfd() {
                    // The registration cannot panic here: this runtime's IO
                    // driver took the pipe already.
                    sfd = crate::sys::reactor::readable(fd).ok();
                    // Signals may have been pending on it for a while.
                    drained(driver, || {
                        while super::drain_signalfd(driver, &mut drain.tokens) {}
                    });
                }
            }
            let woke = match &sfd {
                Some(sfd) => tokio::select! {
                    g = pipe.readable() => g.map(|g| Some((g, false))),
                    g = sfd.readable() => g.map(|g| Some((g, true))),
                },
                None => tokio::select! {
                    g = pipe.readable() => g.map(|g| Some((g, false))),
                    () = &mut opened => Ok(None),
                },
            };
            let (mut ready, from_sfd) = match woke {
                Ok(Some(w)) => w,
                // The signalfd opened: register it.
                Ok(None) => continue,
                // The reactor is gone (the runtime shuts down).
                Err(_) => return,
            };
            stats::add(&WAKEUPS, 1);
            if from_sfd {
                drained(driver, || {
                    while super::drain_signalfd(driver, &mut drain.tokens) {}
                });
            } else {
                drained(driver, || drain.run(driver, &driver.token_pipe));
            }
            // Drained to `EAGAIN`: wait for the next edge.
            ready.clear_ready();
        }
    });
    Ok(())
}
