//! Process-wide counters, read by [`stats()`](crate::stats).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::sys::{fd, signal};

pub(crate) static SUBMITTED: AtomicU64 = AtomicU64::new(0);
pub(crate) static COMPLETED: AtomicU64 = AtomicU64::new(0);
pub(crate) static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
pub(crate) static QUEUED: AtomicU64 = AtomicU64::new(0);
pub(crate) static WAITED: AtomicU64 = AtomicU64::new(0);
pub(crate) static ORPHANED: AtomicU64 = AtomicU64::new(0);
pub(crate) static CANCELLED: AtomicU64 = AtomicU64::new(0);
pub(crate) static WAKEUPS: AtomicU64 = AtomicU64::new(0);
pub(crate) static TOKENS: AtomicU64 = AtomicU64::new(0);
pub(crate) static STALE_TOKENS: AtomicU64 = AtomicU64::new(0);
pub(crate) static SCANS: AtomicU64 = AtomicU64::new(0);
pub(crate) static EAGAIN_RETRIES: AtomicU64 = AtomicU64::new(0);
pub(crate) static LISTENERS: AtomicU64 = AtomicU64::new(0);
pub(crate) static LISTIO_CALLS: AtomicU64 = AtomicU64::new(0);
pub(crate) static LISTIO_REQUESTS: AtomicU64 = AtomicU64::new(0);
pub(crate) static POOL_REQUESTS: AtomicU64 = AtomicU64::new(0);
pub(crate) static NOWAIT_READS: AtomicU64 = AtomicU64::new(0);
pub(crate) static NOWAIT_MISSES: AtomicU64 = AtomicU64::new(0);
pub(crate) static CLOCK_HOLDS: AtomicU64 = AtomicU64::new(0);
pub(crate) static SIGNALFD_SIGNALS: AtomicU64 = AtomicU64::new(0);
pub(crate) static LOST_SIGNALS: AtomicU64 = AtomicU64::new(0);
pub(crate) static QUIET_RESUBMITS: AtomicU64 = AtomicU64::new(0);
pub(crate) static EXIT_HOLDS: AtomicU64 = AtomicU64::new(0);
pub(crate) static UNREAD_DRAINS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

pub(crate) fn sub(counter: &AtomicU64, n: u64) {
    counter.fetch_sub(n, Relaxed);
}

/// A snapshot of the driver's counters (process-wide, since the process started).
///
/// Counters only grow; `in_flight`, `queued`, `orphaned` and `pool_fds` are
/// gauges of the moment the snapshot was taken.
///
/// # Examples
///
/// ```
/// let s = aiofs::stats();
/// assert!(s.completed <= s.submitted);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests handed to the OS (`aio_read`, `aio_write`, `aio_fsync`), counted once each.
    pub submitted: u64,
    /// Requests whose final result was collected with `aio_return`.
    pub completed: u64,
    /// Requests the OS holds now (submitted, not yet collected), orphans included.
    pub in_flight: u64,
    /// Requests waiting for a place under the in-flight limit now.
    pub queued: u64,
    /// Requests in flight now whose future was dropped: the driver keeps their
    /// buffer and descriptor until they finish.
    pub orphaned: u64,
    /// Futures dropped while their request was in flight (the request runs to
    /// completion in the driver's care; its result is discarded).
    pub cancelled: u64,
    /// Requests that had to wait for a place under the in-flight limit.
    pub waited: u64,
    /// Signals on the completion signal's number seen by aiofs's signal action
    /// (real completions and any other signal sent to that number).
    pub signals: u64,
    /// Of `signals`, those the pipe notifier's thread read from its `signalfd`
    /// because every thread blocked the signal (see
    /// [`block_completion_signal`](crate::block_completion_signal)); the others
    /// ran the signal action in whichever thread did not block it.
    pub signalfd_signals: u64,
    /// Wake-ups of the signal notifier's task by Tokio's signal stream (each may
    /// stand for many signals).
    pub stream_wakeups: u64,
    /// Completion tokens read from the self-pipe.
    pub tokens: u64,
    /// Tokens that named no request in flight: stale, early or forged; ignored.
    pub stale_tokens: u64,
    /// Full scans of the in-flight requests (`aio_error` on each).
    pub scans: u64,
    /// `EAGAIN` handled without the caller seeing it: at submission (retried after
    /// the next completion) or as a result when the signal queue was full
    /// (resubmitted).
    pub eagain_retries: u64,
    /// Times the self-pipe was full and the handler asked for a full scan.
    pub pipe_overflows: u64,
    /// Times a runtime started reading the signal notifier's stream (the first, and
    /// each take-over after a runtime went away).
    pub listeners: u64,
    /// `lio_listio` calls (batches, vectored requests, and queued requests
    /// started together).
    pub listio_calls: u64,
    /// Requests submitted through `lio_listio`.
    pub listio_requests: u64,
    /// Duplicate descriptors open now (files' descriptor pools; see
    /// [`Config::max_pool_fds`](crate::Config::max_pool_fds)).
    pub pool_fds: u64,
    /// Duplicate descriptors opened since the process started.
    pub pool_fds_opened: u64,
    /// Reads sent to a pool descriptor rather than the file's own.
    pub pool_requests: u64,
    /// Reads served from the page cache on the polling thread
    /// (`preadv2(RWF_NOWAIT)`, see [`Config::nowait`](crate::Config::nowait)),
    /// wholly or for a first part; they are not counted in `submitted`.
    pub nowait_reads: u64,
    /// Reads that tried the page cache first and took the AIO path (a miss).
    pub nowait_misses: u64,
    /// Times a runtime with a paused clock (Tokio's `test-util`) had its clock
    /// held while its requests were in flight (a blocking task spawned; see the
    /// README, "Paused time"). Stays 0 when time is never paused.
    pub clock_holds: u64,
    /// Completions found by a recovery scan rather than by their signal (lost
    /// to a full signal queue, merged, or simply not read yet).
    pub lost_signals: u64,
    /// Requests run again without a completion signal because glibc lost
    /// their result to a full signal queue (`RLIMIT_SIGPENDING`).
    pub quiet_resubmits: u64,
    /// Times a runtime's shutdown was held for the buffered writes of a
    /// dropped `File` (see the README, "What lands at exit").
    pub exit_holds: u64,
    /// Times the notifier thread read completions that runtimes' listeners
    /// left unread for a few milliseconds: requests credited to a runtime
    /// nobody drives at the moment (`Handle::block_on` from another thread, a
    /// current_thread runtime between `block_on` calls).
    pub unread_drains: u64,
}

/// Reads the driver's counters.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let file = aiofs::File::create(dir.path().join("f")).await?;
/// let (res, _) = file.write_at(b"abc".to_vec(), 0).await;
/// res?;
/// assert!(aiofs::stats().completed >= 1);
/// # Ok(())
/// # }
/// ```
pub fn stats() -> Stats {
    Stats {
        submitted: SUBMITTED.load(Relaxed),
        completed: COMPLETED.load(Relaxed),
        in_flight: IN_FLIGHT.load(Relaxed),
        queued: QUEUED.load(Relaxed),
        orphaned: ORPHANED.load(Relaxed),
        cancelled: CANCELLED.load(Relaxed),
        waited: WAITED.load(Relaxed),
        signals: signal::SIGNALS.load(Relaxed),
        signalfd_signals: SIGNALFD_SIGNALS.load(Relaxed),
        stream_wakeups: WAKEUPS.load(Relaxed),
        tokens: TOKENS.load(Relaxed),
        stale_tokens: STALE_TOKENS.load(Relaxed),
        scans: SCANS.load(Relaxed),
        eagain_retries: EAGAIN_RETRIES.load(Relaxed),
        pipe_overflows: signal::OVERFLOWS.load(Relaxed),
        listeners: LISTENERS.load(Relaxed),
        listio_calls: LISTIO_CALLS.load(Relaxed),
        listio_requests: LISTIO_REQUESTS.load(Relaxed),
        pool_fds: fd::DUPS_OPEN.load(Relaxed),
        pool_fds_opened: fd::DUPS_OPENED.load(Relaxed),
        pool_requests: POOL_REQUESTS.load(Relaxed),
        nowait_reads: NOWAIT_READS.load(Relaxed),
        nowait_misses: NOWAIT_MISSES.load(Relaxed),
        clock_holds: CLOCK_HOLDS.load(Relaxed),
        lost_signals: LOST_SIGNALS.load(Relaxed),
        quiet_resubmits: QUIET_RESUBMITS.load(Relaxed),
        exit_holds: EXIT_HOLDS.load(Relaxed),
        unread_drains: UNREAD_DRAINS.load(Relaxed),
    }
}
