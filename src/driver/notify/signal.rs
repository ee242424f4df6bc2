//! The signal notifier: on every runtime that submits or waits, a task reads
//! Tokio's signal stream for the completion signal; at each wake-up it drains
//! the self-pipe of tokens through the one completion path.
//!
//! Tokio delivers a signal to every stream registered for it, on every runtime,
//! but a runtime's task runs only while that runtime is driven: with a single
//! listener, a current_thread runtime idle between `block_on` calls would hold
//! up every other runtime's completions. So each runtime has its own listener;
//! whichever runs first drains the pipe.

use std::cell::Cell;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Handle, Id};
use tokio::signal::unix::{SignalKind, signal};

use super::super::Driver;
use super::super::stats::{self, LISTENERS, WAKEUPS};
use super::Drain;

/// How many runtimes that shut down are remembered.
const DEAD_RUNTIMES: usize = 64;

pub(in super::super) struct Listeners {
    /// The runtimes whose listener task lives.
    live: Mutex<Vec<Id>>,
    /// `live.len()`, read without the lock.
    count: AtomicUsize,
    /// The runtimes whose listener task was dropped (they are shutting down:
    /// never spawn there again), the newest last.
    dead: Mutex<Vec<Id>>,
}

thread_local! {
    /// The runtime this thread last saw with a listener.
    static KNOWN: Cell<Option<Id>> = const { Cell::new(None) };
}

/// Marks the runtime's listener gone when its task is dropped (its runtime
/// shut down), even if the task never ran.
struct Guard(&'static Driver, Id);

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(listeners) = &self.0.listeners else {
            return;
        };
        {
            let mut dead = listeners.dead.lock().unwrap_or_else(|e| e.into_inner());
            if dead.len() >= DEAD_RUNTIMES {
                dead.remove(0);
            }
            dead.push(self.1);
        }
        let mut live = listeners.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|&id| id != self.1);
        listeners.count.store(live.len(), Ordering::Release);
    }
}

impl Listeners {
    pub(in super::super) fn new() -> Listeners {
        Listeners {
            live: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            dead: Mutex::new(Vec::new()),
        }
    }

    /// Whether no runtime listens (the recovery timer's thread then drains
    /// the pipe).
    pub(in super::super) fn none(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// Makes sure a task on the current runtime reads the signal stream.
    pub(in super::super) fn ensure(&self, driver: &'static Driver) -> io::Result<()> {
        let handle = Handle::try_current().map_err(|_| {
            io::Error::other(
                "aiofs: the signal notifier needs a Tokio runtime (with IO enabled); \
                 outside Tokio use Notifier::Pipe",
            )
        })?;
        let id = handle.id();
        if KNOWN.get() == Some(id) {
            return Ok(());
        }
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.contains(&id) {
            KNOWN.set(Some(id));
            return Ok(());
        }
        let dying = self
            .dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id);
        if dying {
            // This runtime is shutting down (it dropped its listener): a task
            // spawned there would be dropped at once. The recovery timer's
            // thread serves its last requests.
            return Ok(());
        }
        let signo = driver.settings.signal;
        // `signal` registers Tokio's handler for the number before we return, so
        // no request is submitted before its completion can be seen. It panics
        // on a runtime without IO: turn that into an error.
        let stream = {
            let _enter = handle.enter();
            catch_unwind(AssertUnwindSafe(|| signal(SignalKind::from_raw(signo))))
        };
        let mut stream = match stream {
            Ok(res) => res?,
            Err(_) => {
                return Err(io::Error::other(
                    "aiofs: the signal notifier needs Tokio's signal driver: build the runtime with enable_io()",
                ));
            }
        };
        live.push(id);
        self.count.store(live.len(), Ordering::Release);
        drop(live);
        KNOWN.set(Some(id));
        stats::add(&LISTENERS, 1);
        // Created here, moved into the task: dropped with it even if it never runs.
        let guard = Guard(driver, id);
        handle.spawn(async move {
            let guard = guard;
            let driver = guard.0;
            let mut drain = Drain::new();
            // Anything may have finished while this runtime did not listen.
            if !drain.run(driver, &driver.token_pipe) {
                driver.on_wake(&[], true);
            }
            while stream.recv().await.is_some() {
                stats::add(&WAKEUPS, 1);
                if !drain.run(driver, &driver.token_pipe) {
                    // Another listener took the tokens; a merged (standard)
                    // signal still asks for a scan.
                    driver.on_wake(&[], true);
                }
            }
        });
        Ok(())
    }
}
