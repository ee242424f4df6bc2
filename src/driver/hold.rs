//! Runtime holds: keeping a Tokio runtime from moving on while some of its
//! requests are unfinished.
//!
//! Tokio waits for a runtime's blocking tasks in two places: a current_thread
//! runtime with a paused clock (`start_paused`) does not advance the clock while
//! one exists, and dropping a runtime waits for them before it returns. aiofs
//! uses both. A request that must hold its runtime takes a [`Hold`]; the first
//! hold of a runtime spawns one blocking task that waits (on a condition
//! variable, no CPU) until the runtime's last hold is dropped. The driver drops
//! a request's holds when it finishes, *after* waking its future.
//!
//! - **Paused time** ([`paused`]): every request submitted from a current_thread
//!   runtime whose clock is paused, so that `timeout(5 s, file.read_at(..))` does
//!   not fire while the read is in glibc's hands. Detection costs nothing on a
//!   multi_thread runtime (a flavor check) and two clock reads on a
//!   current_thread one: a paused clock returns the same instant twice.
//! - **Exit** ([`exit`]): the writes of a `File` dropped with buffered data, so
//!   that they land before the runtime that accepted them finishes shutting
//!   down, as `tokio::fs` does. If the blocking task is dropped unrun (the
//!   runtime's blocking pool is shutting down), its drop waits instead, on the
//!   pool's thread, which the shutdown also waits for. If the runtime refuses
//!   the task outright (its pool is already shut down), [`wait_if_refused`]
//!   lets the dropping code wait itself.

use std::cell::Cell;
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::runtime::{Handle, Id, RuntimeFlavor};

use super::stats::{CLOCK_HOLDS, EXIT_HOLDS, add};

struct Entry {
    runtime: Id,
    count: usize,
    /// The runtime refused the waiting task (it is shutting down): nothing
    /// holds it; code that must wait waits itself.
    refused: bool,
}

/// Runtimes with unfinished held requests.
static HOLDS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static CHANGED: Condvar = Condvar::new();

thread_local! {
    /// Set while this thread spawns a waiting task: if the task is dropped
    /// right there (refused), its drop must not wait (it would wait for the
    /// hold being taken).
    static SPAWNING: Cell<bool> = const { Cell::new(false) };
    static REFUSED: Cell<bool> = const { Cell::new(false) };
}

fn holds() -> MutexGuard<'static, Vec<Entry>> {
    // Every update is a single field write: a panic cannot leave it half-done.
    HOLDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a runtime (its paused clock, its shutdown) waiting while it lives.
#[derive(Debug)]
pub(crate) struct Hold {
    runtime: Id,
}

/// A hold if the current runtime's clock is paused, for a request about to be
/// submitted.
pub(crate) fn paused() -> Option<Hold> {
    let handle = Handle::try_current().ok()?;
    // Only a current_thread runtime can pause its clock.
    if handle.runtime_flavor() != RuntimeFlavor::CurrentThread {
        return None;
    }
    if tokio::time::Instant::now() != tokio::time::Instant::now() {
        return None;
    }
    let (hold, first) = take(&handle);
    if first {
        add(&CLOCK_HOLDS, 1);
    }
    Some(hold)
}

/// A hold on the current runtime's shutdown (none outside a runtime), for a
/// write that must land although its `File` is gone.
pub(crate) fn exit() -> Option<Hold> {
    let handle = Handle::try_current().ok()?;
    let (hold, first) = take(&handle);
    if first {
        add(&EXIT_HOLDS, 1);
    }
    Some(hold)
}

/// Takes a hold on `handle`'s runtime; true if it is the runtime's first (a
/// waiting task was spawned).
fn take(handle: &Handle) -> (Hold, bool) {
    let runtime = handle.id();
    let first = {
        let mut holds = holds();
        match holds.iter_mut().find(|e| e.runtime == runtime) {
            Some(e) => {
                e.count += 1;
                false
            }
            None => {
                holds.push(Entry {
                    runtime,
                    count: 1,
                    refused: false,
                });
                true
            }
        }
    };
    if first {
        // Spawning it is what holds the runtime (Tokio counts blocking tasks
        // from their spawn).
        // Made before the spawn, so that a task cancelled unrun (the pool
        // shuts down) or refused still drops it, and its drop waits.
        let waiter = Waiter(runtime);
        SPAWNING.set(true);
        REFUSED.set(false);
        drop(handle.spawn_blocking(move || drop(waiter)));
        SPAWNING.set(false);
        if REFUSED.take()
            && let Some(e) = holds().iter_mut().find(|e| e.runtime == runtime)
        {
            e.refused = true;
        }
    }
    (Hold { runtime }, first)
}

/// If the current runtime refused its waiting task (it is shutting down),
/// blocks until its held requests are finished. For the code that drops a
/// `File` with buffered writes: it may be running the runtime's shutdown.
pub(crate) fn wait_if_refused() {
    let Ok(handle) = Handle::try_current() else {
        return;
    };
    let runtime = handle.id();
    let mut holds = holds();
    while holds
        .iter()
        .any(|e| e.runtime == runtime && e.refused && e.count > 0)
    {
        holds = CHANGED.wait(holds).unwrap_or_else(|e| e.into_inner());
    }
}

/// The blocking task's payload: waiting for the runtime's last hold, when it
/// runs or when it is dropped unrun.
struct Waiter(Id);

impl Drop for Waiter {
    fn drop(&mut self) {
        if SPAWNING.get() {
            // Refused at the spawn, on the spawning thread: see `take`.
            REFUSED.set(true);
            return;
        }
        let mut holds = holds();
        loop {
            match holds.iter().position(|e| e.runtime == self.0) {
                Some(i) if holds[i].count > 0 => {}
                Some(i) => {
                    holds.swap_remove(i);
                    return;
                }
                None => return,
            }
            holds = CHANGED.wait(holds).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Clone for Hold {
    fn clone(&self) -> Hold {
        if let Some(e) = holds().iter_mut().find(|e| e.runtime == self.runtime) {
            e.count += 1;
        }
        Hold {
            runtime: self.runtime,
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut holds = holds();
        if let Some(i) = holds.iter().position(|e| e.runtime == self.runtime) {
            let e = &mut holds[i];
            e.count = e.count.saturating_sub(1);
            if e.count == 0 {
                if e.refused {
                    // No waiting task will remove it.
                    holds.swap_remove(i);
                }
                CHANGED.notify_all();
            }
        }
    }
}
