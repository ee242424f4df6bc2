//! What the completion table stores: tokens, slots and their states, the
//! groups of batches, and the work left for after the table's lock.

use std::io;
use std::sync::Arc;
use std::task::Waker;

use super::hold::Hold;
use super::stats::{IN_FLIGHT, ORPHANED, sub};
use crate::sys::aio::Aiocb;

const HALF: u32 = usize::BITS / 2;
pub(super) const INDEX_MASK: usize = (1 << HALF) - 1;
/// The largest generation (they wrap around, skipping 0).
pub(super) const GENERATION_MAX: usize = usize::MAX >> HALF;

/// A slot's name: its index in the table and the generation of its occupant.
///
/// Carried in `sigev_value`, so it comes back in every completion signal. It is
/// only a hint: anyone may queue a signal with any value, and a slot may have been
/// reused. The table checks the generation and asks `aio_error` before acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token(usize);

impl Token {
    pub(super) fn new(index: usize, generation: usize) -> Token {
        Token((generation << HALF) | (index & INDEX_MASK))
    }
    pub(super) fn index(self) -> usize {
        self.0 & INDEX_MASK
    }
    pub(super) fn generation(self) -> usize {
        self.0 >> HALF
    }
    pub(super) fn raw(self) -> usize {
        self.0
    }
    pub(crate) fn from_raw(raw: usize) -> Token {
        Token(raw)
    }
}

/// Where a request is in its life.
pub(super) enum State {
    /// Waiting for a place under the in-flight limit (or for a retry after `EAGAIN`).
    Queued(Option<Waker>),
    /// Queued, and its future detached: submitted when there is room, then
    /// orphaned (a write-behind of a dropped `File`).
    QueuedDetached,
    /// In the OS; the future waits.
    Submitted(Option<Waker>),
    /// In the OS; the future was dropped (or detached). Freed when it finishes.
    Orphaned,
    /// Finished; the result waits for the future to collect it.
    Done(io::Result<usize>),
}

/// Dropped once the OS is done with a request (whatever its outcome): the
/// operation's accounting (descriptor use, write epoch), before the future is
/// woken. Opaque to the driver.
pub(crate) type Release = Box<dyn Send>;

pub(super) struct Slot {
    pub(super) generation: usize,
    /// The batch this request belongs to, and its index there.
    pub(super) group: Option<(Arc<Group>, usize)>,
    /// Always `Some`, but for the moment of a `lio_listio` call.
    pub(super) cb: Option<Aiocb>,
    pub(super) state: State,
    /// Counted in `submitted` already (a resubmission is not counted again).
    pub(super) started: bool,
    /// Submit without a completion signal (`SIGEV_NONE`): glibc lost this
    /// request's result to a full signal queue once; the scans collect it.
    pub(super) quiet: bool,
    /// Submission attempts refused with `EAGAIN` while nothing else of ours was
    /// in flight (so no completion can free what glibc lacks).
    pub(super) idle_refusals: u8,
    /// Keep a runtime from jumping its paused clock / finishing its shutdown
    /// while the request is unfinished.
    pub(super) holds: [Option<Hold>; 2],
    pub(super) release: Option<Release>,
    /// When it first reached the OS (for the slow-request event).
    #[cfg(feature = "tracing")]
    pub(super) started_at: Option<std::time::Instant>,
}

impl Slot {
    pub(super) fn cb(&mut self) -> &mut Aiocb {
        // `None` only inside `start_list`, which puts every aiocb back before it
        // returns, and never calls this meanwhile.
        self.cb
            .as_mut()
            .expect("aiofs: internal: slot without its aiocb")
    }

    /// Whether the OS holds it now.
    pub(super) fn in_os(&self) -> bool {
        matches!(self.state, State::Submitted(_) | State::Orphaned)
    }
}

/// The requests of one batch (or vectored call), awaited together: their
/// future is woken through the group, which lists the ones that finished, so a
/// wake-up costs O(finished), not O(batch).
#[derive(Debug, Default)]
pub(crate) struct Group {
    waker: futures::task::AtomicWaker,
    done: std::sync::Mutex<Vec<usize>>,
}

impl Group {
    /// Registers the future's waker.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// The indices (in the batch) of the requests finished since last asked.
    pub(crate) fn take_done(&self) -> Vec<usize> {
        std::mem::take(&mut *self.done.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(super) fn finished(&self, index: usize, out: &mut AfterUnlock) {
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(index);
        if let Some(w) = self.waker.take() {
            out.wakers.push(w);
        }
    }
}

/// What to do once the table lock is released, in this order: release the
/// finished requests' accounting, wake their futures, free the finished
/// orphans (buffers and descriptors) and update the gauges, then drop their
/// holds (a runtime whose shutdown they held sees everything settled).
#[derive(Default)]
pub(crate) struct AfterUnlock {
    pub(super) released: Vec<Release>,
    pub(super) wakers: Vec<Waker>,
    /// Holds of finished requests: dropped after the wake-ups, so a paused
    /// runtime has the woken task to run before its clock may move.
    pub(super) holds: Vec<Hold>,
    pub(super) freed: Vec<Aiocb>,
    /// Finished orphans among `freed`: they leave the `in_flight` and `orphaned`
    /// gauges only once their buffer and descriptor are released.
    pub(super) orphans: u64,
    /// A request now waits for the recovery timer sooner than it would tick.
    pub(super) kick_timer: bool,
    /// `tracing` events, emitted once the lock is released (a slow subscriber
    /// must not hold up every completion).
    #[cfg(feature = "tracing")]
    pub(super) events: Vec<super::trace::Event>,
}

impl AfterUnlock {
    pub(super) fn run(self, kick: impl FnOnce()) {
        drop(self.released);
        // Events before the wake-ups and the holds (a runtime shutting down
        // does not finish before the event of its last write), each caught:
        // a subscriber that panics must not cost the wake-ups below (a
        // finished request is never scanned again).
        #[cfg(feature = "tracing")]
        for event in self.events {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event.emit()));
        }
        self.wakers.into_iter().for_each(Waker::wake);
        drop(self.freed);
        if self.orphans > 0 {
            sub(&IN_FLIGHT, self.orphans);
            sub(&ORPHANED, self.orphans);
        }
        drop(self.holds);
        if self.kick_timer {
            kick();
        }
    }
}
