//! The signal notifier: a task reading Tokio's signal stream for our signal
//! number; at each wake-up it completes the requests whose tokens our signal
//! action wrote into the self-pipe (scanning every request in flight only if
//! tokens may be missing). And the watchdog thread that catches completions
//! whose signal was lost, and drains the pipe while no runtime listens.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{SignalKind, signal};

use super::Driver;
use super::stats::{self, LISTENERS, WAKEUPS};

pub(super) struct Listener {
    /// A task on some runtime reads the stream.
    alive: AtomicBool,
    spawn: Mutex<()>,
    /// The runtimes whose listener task was dropped (they are shutting down:
    /// never spawn there again), the newest last. Its own lock: a task dropped
    /// by `spawn` itself drops its guard while `spawn` is held.
    dead: Mutex<Vec<tokio::runtime::Id>>,
}

/// How many runtimes that shut down are remembered.
const DEAD_RUNTIMES: usize = 64;

/// Marks the listener gone when its task is dropped (its runtime shut down),
/// even if the task never ran; then wakes every waiting future so that one of
/// them, on a live runtime, takes over.
struct Guard(&'static Driver, tokio::runtime::Id);

impl Drop for Guard {
    fn drop(&mut self) {
        {
            let mut dead = self
                .0
                .listener
                .dead
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if dead.len() >= DEAD_RUNTIMES {
                dead.remove(0);
            }
            dead.push(self.1);
        }
        self.0.listener.alive.store(false, Ordering::SeqCst);
        self.0.wake_all();
    }
}

impl Listener {
    pub(super) fn new() -> Listener {
        Listener {
            alive: AtomicBool::new(false),
            spawn: Mutex::new(()),
            dead: Mutex::new(Vec::new()),
        }
    }

    /// Makes sure a task reads the signal stream, spawning one on the current
    /// runtime if none does.
    pub(super) fn ensure(&self, driver: &'static Driver) -> io::Result<()> {
        if self.alive.load(Ordering::Acquire) {
            return Ok(());
        }
        let _lock = self.spawn.lock().unwrap_or_else(|e| e.into_inner());
        if self.alive.load(Ordering::Acquire) {
            return Ok(());
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            io::Error::other(
                "aiofs: the signal notifier needs a Tokio runtime (with IO enabled); \
                 outside Tokio use Notifier::Pipe",
            )
        })?;
        let dying = self
            .dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&handle.id());
        if dying {
            // This runtime is shutting down (it dropped the listener): a task
            // spawned there would be dropped at once, waking everyone again. The
            // watchdog serves the requests until a live runtime takes over.
            return Ok(());
        }
        let signo = driver.settings.signal;
        // `signal` registers Tokio's handler for the number before we return, so no
        // request is submitted before its completion can be seen. It panics on a
        // runtime without IO: turn that into an error.
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
        self.alive.store(true, Ordering::Release);
        stats::add(&LISTENERS, 1);
        // Created here, moved into the task: dropped with it even if it never runs.
        let guard = Guard(driver, handle.id());
        handle.spawn(async move {
            let guard = guard;
            let mut drain = super::pipe::Drain::new();
            // Taking over: anything may have finished while nobody listened.
            guard.0.drain(&mut drain);
            guard.0.scan();
            while stream.recv().await.is_some() {
                stats::add(&WAKEUPS, 1);
                guard.0.drain(&mut drain);
            }
        });
        Ok(())
    }
}

/// Starts the thread that, while requests are in flight, scans now and then for
/// completions whose signal was lost, and runs the stream's job when no runtime
/// reads it.
pub(super) fn start_watchdog() -> io::Result<()> {
    std::thread::Builder::new()
        .name("aiofs-watchdog".into())
        .spawn(|| {
            let Some(driver) = super::wait() else {
                return;
            };
            let mut drain = super::pipe::Drain::new();
            loop {
                std::thread::sleep(super::SAFETY_NET);
                driver.drain(&mut drain);
                driver.tick();
            }
        })?;
    Ok(())
}
