//! Paused time (Tokio's `test-util`): while a request of a runtime whose clock
//! is paused is in the OS, that runtime must not jump its clock forward.
//!
//! A current_thread runtime with a paused clock advances it to the next timer
//! whenever it has nothing to run, so `timeout(5 s, file.read_at(..))` would
//! fire at once while the read is still in glibc's hands. Tokio holds the clock
//! back only while a `spawn_blocking` task of that runtime exists. So a request
//! submitted from such a runtime takes a [`Ticket`]; the first ticket of a
//! runtime spawns one blocking task that waits (on a condition variable, no
//! CPU) until the runtime's last ticket is dropped. The driver drops a ticket
//! when its request finishes, *after* waking the request's future, so the
//! runtime has that task to run before the clock may move again.
//!
//! When time is not paused this costs nothing on a multi_thread runtime (a
//! flavor check) and two clock reads per submitted request on a current_thread
//! one: a paused clock returns the same instant twice, a running one does not.
//! (A running clock that happens to return the same nanosecond twice only costs
//! a needless blocking task.)

use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::runtime::{Handle, Id, RuntimeFlavor};

/// Runtimes with requests in flight under a paused clock, and their ticket counts.
static HOLDS: Mutex<Vec<(Id, usize)>> = Mutex::new(Vec::new());
static CHANGED: Condvar = Condvar::new();

fn holds() -> MutexGuard<'static, Vec<(Id, usize)>> {
    // Every update is a single field write: a panic cannot leave it half-done.
    HOLDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a paused runtime's clock from advancing while it lives.
#[derive(Debug)]
pub(crate) struct Ticket {
    runtime: Id,
}

/// A ticket if the current runtime's clock is paused, for a request about to be
/// submitted.
pub(crate) fn ticket() -> Option<Ticket> {
    let handle = Handle::try_current().ok()?;
    // Only a current_thread runtime can pause its clock.
    if handle.runtime_flavor() != RuntimeFlavor::CurrentThread {
        return None;
    }
    if tokio::time::Instant::now() != tokio::time::Instant::now() {
        return None;
    }
    let runtime = handle.id();
    let first = {
        let mut holds = holds();
        match holds.iter_mut().find(|(id, _)| *id == runtime) {
            Some((_, n)) => {
                *n += 1;
                false
            }
            None => {
                holds.push((runtime, 1));
                true
            }
        }
    };
    if first {
        super::stats::add(&super::stats::CLOCK_HOLDS, 1);
        // Spawning it is what holds the clock (Tokio counts blocking tasks from
        // their spawn). On a runtime shutting down it never runs: nothing to hold.
        drop(handle.spawn_blocking(move || hold(runtime)));
    }
    Some(Ticket { runtime })
}

/// The blocking task: returns when the runtime has no ticket left.
fn hold(runtime: Id) {
    let mut holds = holds();
    loop {
        match holds.iter().position(|(id, _)| *id == runtime) {
            Some(i) if holds[i].1 > 0 => {}
            Some(i) => {
                holds.swap_remove(i);
                return;
            }
            None => return,
        }
        holds = CHANGED.wait(holds).unwrap_or_else(|e| e.into_inner());
    }
}

impl Clone for Ticket {
    fn clone(&self) -> Ticket {
        if let Some((_, n)) = holds().iter_mut().find(|(id, _)| *id == self.runtime) {
            *n += 1;
        }
        Ticket {
            runtime: self.runtime,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut holds = holds();
        if let Some((_, n)) = holds.iter_mut().find(|(id, _)| *id == self.runtime) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                CHANGED.notify_all();
            }
        }
    }
}
