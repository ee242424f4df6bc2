//! The completion table: every request from submission to the collection of its
//! result, keyed by a [`Token`] that the completion signal carries.
//!
//! A slot moves `Queued → Submitted → Done`, or `Submitted → Orphaned → (freed)`
//! when its future is dropped. The table never frees the [`Aiocb`] of a request
//! the OS may still run: it is freed when `aio_error` says it is finished.
//!
//! A result of `-1/EAGAIN` is ambiguous: glibc puts it there when it could not
//! queue the completion signal (`RLIMIT_SIGPENDING` full), although the I/O
//! happened. Such a request is run again *quietly* (`SIGEV_NONE`: no signal to
//! lose), and the scans collect it; an `EAGAIN` from a quiet run is the I/O's
//! own, reported as `WouldBlock`. A write to an `O_APPEND` descriptor is never
//! run twice: its outcome is reported as unknown.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::task::{Poll, Waker};

use slab::Slab;

use super::hold::Hold;
use super::slots::{AfterUnlock, GENERATION_MAX, Group, INDEX_MASK, Release, Slot, State, Token};
use super::stats::*;
use crate::sys::aio::{Aiocb, Notify, Status};

/// How long new requests are submitted quietly after glibc lost a result to a
/// full signal queue (each such loss starts the spell again).
const QUIET_SPELL: std::time::Duration = std::time::Duration::from_secs(1);

fn too_many() -> io::Error {
    io::Error::other("aiofs: too many requests in the completion table")
}

/// The error of an `O_APPEND` write whose result glibc lost: it may or may not
/// have been appended, and running it again could append it twice.
#[derive(Debug)]
pub(crate) struct OutcomeUnknown;

impl std::fmt::Display for OutcomeUnknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "aiofs: outcome unknown: glibc could not queue the completion signal \
             (RLIMIT_SIGPENDING full) of an O_APPEND write; the data may or may not \
             have been appended, and it is not written again",
        )
    }
}

impl std::error::Error for OutcomeUnknown {}

/// Whether `e` says that a write's outcome is unknown (see [`OutcomeUnknown`]).
pub(crate) fn is_outcome_unknown(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<OutcomeUnknown>())
}

/// What collecting a request's result did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reaped {
    /// `aio_error` says it still runs.
    Running,
    /// Finished; its final result is recorded.
    Done,
    /// Its result was lost to a full signal queue: it runs again, quietly.
    Again,
}

pub(crate) struct Table {
    pub(super) slots: Slab<Slot>,
    next_generation: usize,
    /// Requests waiting for a place, oldest first.
    pub(super) queue: VecDeque<Token>,
    /// Requests in the OS now (orphans included).
    pub(super) in_flight: usize,
    pub(super) limit: usize,
    pub(super) signo: i32,
    /// Requests in the OS without a completion signal (see [`Slot::quiet`]).
    pub(super) quiet: Vec<Token>,
    /// Reused by `scan`: the keys of the requests in the OS.
    scratch: Vec<usize>,
    /// Reused by `fill`: the requests about to start.
    pub(super) run: Vec<(Token, usize)>,
    /// Start several queued requests with one `lio_listio`.
    pub(super) listio: bool,
    /// When the recovery rule last acted.
    pub(super) recovery: super::completion::Recovery,
    /// Until then, new requests are submitted quietly too: glibc just lost a
    /// result to a full signal queue, which is likely full still.
    pub(super) quiet_until: Option<std::time::Instant>,
}

impl Table {
    pub(crate) fn new(limit: usize, signo: i32, listio: bool) -> Table {
        Table {
            slots: Slab::new(),
            next_generation: 1,
            queue: VecDeque::new(),
            in_flight: 0,
            limit: limit.max(1),
            signo,
            quiet: Vec::new(),
            scratch: Vec::new(),
            run: Vec::new(),
            listio,
            recovery: super::completion::Recovery::new(),
            quiet_until: None,
        }
    }

    pub(super) fn lookup(&self, token: Token) -> Option<usize> {
        let key = token.index();
        match self.slots.get(key) {
            Some(slot) if slot.generation == token.generation() => Some(key),
            _ => None,
        }
    }

    /// Whether `n` more slots still have an index that fits in a token.
    fn has_room(&self, n: usize) -> bool {
        self.slots.len().saturating_add(n) <= INDEX_MASK
    }

    /// Puts a new request in a slot, queued behind those already waiting.
    fn enqueue(
        &mut self,
        cb: Aiocb,
        release: Option<Release>,
        waker: Option<Waker>,
        group: Option<(Arc<Group>, usize)>,
        hold: Option<Hold>,
    ) -> Token {
        let generation = self.next_generation;
        self.next_generation = self.next_generation % GENERATION_MAX + 1;
        let entry = self.slots.vacant_entry();
        let token = Token::new(entry.key(), generation);
        entry.insert(Slot {
            generation,
            group,
            cb: Some(cb),
            state: State::Queued(waker),
            started: false,
            quiet: false,
            idle_refusals: 0,
            holds: [hold, None],
            release,
            #[cfg(feature = "tracing")]
            started_at: None,
        });
        add(&QUEUED, 1);
        self.queue.push_back(token);
        token
    }

    /// Counts the requests of `tokens` that still wait for a place.
    fn count_waiting(&self, tokens: &[Token]) {
        for &t in tokens {
            if let Some(k) = self.lookup(t)
                && matches!(self.slots[k].state, State::Queued(_))
            {
                add(&WAITED, 1);
            }
        }
    }

    /// Takes a new request: submits it now, or queues it (FIFO) when the limit is
    /// reached or others already wait.
    pub(crate) fn submit(
        &mut self,
        cb: Aiocb,
        release: Option<Release>,
        waker: &Waker,
        hold: Option<Hold>,
        out: &mut AfterUnlock,
    ) -> Result<Token, (io::Error, Aiocb)> {
        if !self.has_room(1) {
            return Err((too_many(), cb));
        }
        // Through the queue, so requests start in the order they came.
        let token = self.enqueue(cb, release, Some(waker.clone()), None, hold);
        self.fill(out);
        self.count_waiting(&[token]);
        Ok(token)
    }

    /// Takes several requests at once: they are started together (one
    /// `lio_listio`) as far as the in-flight limit allows, the rest queued.
    pub(crate) fn submit_group(
        &mut self,
        reqs: Vec<(Aiocb, Option<Release>)>,
        group: &Arc<Group>,
        hold: Option<Hold>,
        out: &mut AfterUnlock,
    ) -> Result<Vec<Token>, (io::Error, Vec<Aiocb>)> {
        if !self.has_room(reqs.len()) {
            return Err((too_many(), reqs.into_iter().map(|(cb, _)| cb).collect()));
        }
        let tokens: Vec<Token> = reqs
            .into_iter()
            .enumerate()
            .map(|(index, (cb, release))| {
                let group = Some((Arc::clone(group), index));
                self.enqueue(cb, release, None, group, hold.clone())
            })
            .collect();
        self.fill(out);
        self.count_waiting(&tokens);
        Ok(tokens)
    }

    /// Removes a finished slot, giving its result and aiocb.
    fn remove_done(&mut self, key: usize) -> (io::Result<usize>, Aiocb) {
        let slot = self.slots.remove(key);
        match (slot.state, slot.cb) {
            (State::Done(res), Some(cb)) => (res, cb),
            // Callers only remove slots they saw `Done`, and `cb` is `None` only
            // inside `start_list`, which puts every aiocb back before returning.
            _ => unreachable!("aiofs: internal: removed a slot that was not done"),
        }
    }

    /// The result, if the request is finished; otherwise the waker is kept.
    pub(crate) fn poll(&mut self, token: Token, waker: &Waker) -> Poll<(io::Result<usize>, Aiocb)> {
        let Some(key) = self.lookup(token) else {
            // A live future owns its slot: only `remove_done` (called once, when
            // the future gets its result) or its `Drop` frees it.
            unreachable!("aiofs: internal: a future's slot is gone");
        };
        let slot = &mut self.slots[key];
        match &mut slot.state {
            State::Queued(w) | State::Submitted(w) => {
                match w {
                    Some(w) if w.will_wake(waker) => {}
                    _ => *w = Some(waker.clone()),
                }
                Poll::Pending
            }
            State::Done(_) => Poll::Ready(self.remove_done(key)),
            // A slot becomes an orphan only when its future is dropped.
            State::Orphaned | State::QueuedDetached => {
                unreachable!("aiofs: internal: polled an orphan")
            }
        }
    }

    /// The future of `token` lets go but wants the request to run: a queued one
    /// is submitted when there is room; `hold` keeps its runtime from finishing
    /// its shutdown until it is done. The driver frees it when it completes.
    pub(crate) fn detach(&mut self, token: Token, hold: Option<Hold>, out: &mut AfterUnlock) {
        let Some(key) = self.lookup(token) else {
            return;
        };
        let slot = &mut self.slots[key];
        match slot.state {
            State::Queued(_) => {
                slot.state = State::QueuedDetached;
                slot.holds[1] = hold;
            }
            State::Submitted(_) => self.orphan(token, hold, out),
            _ => self.orphan(token, None, out),
        }
    }

    /// The future of `token` was dropped. A write still runs (it may be part
    /// of what a caller saw acknowledged), holding `hold`'s runtime shutdown.
    pub(crate) fn orphan(&mut self, token: Token, hold: Option<Hold>, out: &mut AfterUnlock) {
        let Some(key) = self.lookup(token) else {
            out.holds.extend(hold);
            return;
        };
        let slot = &mut self.slots[key];
        let write = slot.cb.as_ref().is_some_and(Aiocb::is_write);
        if write && (slot.in_os() || matches!(slot.state, State::Queued(_))) {
            slot.holds[1] = slot.holds[1].take().or(hold);
        } else {
            out.holds.extend(hold);
        }
        match slot.state {
            State::Queued(_) if write => {
                // Submitted when there is room, then freed.
                slot.state = State::QueuedDetached;
                add(&CANCELLED, 1);
            }
            State::Queued(_) => {
                // Not in the OS: free it now (its stale token in `queue` is skipped).
                sub(&QUEUED, 1);
                self.free_now(key, out);
            }
            State::Done(_) => self.free_now(key, out),
            State::QueuedDetached => {}
            State::Submitted(_) => {
                slot.state = State::Orphaned;
                add(&ORPHANED, 1);
                add(&CANCELLED, 1);
                // No `aio_cancel`, not even as a hint: on glibc 2.36, cancelling the
                // request at the head of a descriptor's queue before a worker takes
                // it leaves the requests queued behind it EINPROGRESS forever
                // (tests/concurrency.rs covers it). The orphan runs to completion.
            }
            State::Orphaned => {}
        }
    }

    /// Frees a slot the OS does not hold, with what it carries.
    fn free_now(&mut self, key: usize, out: &mut AfterUnlock) {
        let mut slot = self.slots.remove(key);
        out.released.extend(slot.release.take());
        out.holds
            .extend(slot.holds.iter_mut().filter_map(Option::take));
        out.freed.extend(slot.cb);
    }

    /// A completion signal named `token`: collects its request if `aio_error`
    /// says it finished.
    pub(crate) fn complete(&mut self, token: Token, out: &mut AfterUnlock) {
        match self.lookup(token) {
            Some(key) if self.slots[key].in_os() => {
                if self.reap(key, out) == Reaped::Running {
                    // The truth (`aio_error`) says not finished: a forged signal.
                    add(&STALE_TOKENS, 1);
                }
            }
            _ => add(&STALE_TOKENS, 1),
        }
    }

    /// `aio_error` on every request in the OS. Returns how many finished, and
    /// whether any of them had lost its result to a full signal queue.
    pub(crate) fn scan(&mut self, out: &mut AfterUnlock) -> (u64, bool) {
        add(&SCANS, 1);
        let mut keys = std::mem::take(&mut self.scratch);
        keys.clear();
        keys.extend(self.slots.iter().filter(|(_, s)| s.in_os()).map(|(k, _)| k));
        let (mut found, mut lost) = (0, false);
        for &key in &keys {
            match self.reap(key, out) {
                Reaped::Running => {}
                Reaped::Done => found += 1,
                Reaped::Again => {
                    found += 1;
                    lost = true;
                }
            }
        }
        self.scratch = keys;
        add(&LOST_SIGNALS, found);
        (found, lost)
    }

    /// `aio_error` on the quiet requests only (they send no signal).
    pub(crate) fn poll_quiet(&mut self, out: &mut AfterUnlock) {
        let mut quiet = std::mem::take(&mut self.quiet);
        quiet.retain(|&token| match self.lookup(token) {
            Some(key) if self.slots[key].in_os() && self.slots[key].quiet => {
                self.reap(key, out) == Reaped::Running
            }
            _ => false,
        });
        // `reap` may have added requests run again meanwhile.
        quiet.append(&mut self.quiet);
        self.quiet = quiet;
    }

    /// Collects the result of `key` if `aio_error` says it is finished.
    pub(super) fn reap(&mut self, key: usize, out: &mut AfterUnlock) -> Reaped {
        let quiet_until = &mut self.quiet_until;
        let slot = &mut self.slots[key];
        let Status::Done(code) = slot.cb().status() else {
            return Reaped::Running;
        };
        let res = slot.cb().reap(code);
        let orphaned = matches!(slot.state, State::Orphaned);
        if code == libc::EAGAIN && !slot.quiet {
            *quiet_until = Some(std::time::Instant::now() + QUIET_SPELL);
        }
        if code == libc::EAGAIN && !slot.quiet {
            let cb = slot.cb();
            if !cb.is_idempotent() {
                // An O_APPEND write: running it again could append twice.
                self.leave_os(key);
                self.finish(key, Err(io::Error::other(OutcomeUnknown)), out);
                return Reaped::Done;
            }
            if !orphaned || cb.is_write() {
                // The I/O may have happened, but glibc could not queue the
                // completion signal and replaced the result with -1/EAGAIN.
                // Positioned requests are idempotent: run it again, without a
                // signal this time, so glibc keeps the result whatever the queue.
                // (An orphaned read is not worth it: nobody wants its data.)
                add(&QUIET_RESUBMITS, 1);
                add(&EAGAIN_RETRIES, 1);
                #[cfg(feature = "tracing")]
                out.events.push(super::trace::Event::LostResult);
                slot.quiet = true;
                slot.cb().set_notify(Notify::Quiet);
                return match slot.cb().submit() {
                    Ok(()) => {
                        self.quiet.push(Token::new(key, slot.generation));
                        out.kick_timer = true;
                        Reaped::Again
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                        // glibc is short of threads or memory: wait in the queue.
                        self.leave_os(key);
                        self.requeue_front(key);
                        Reaped::Again
                    }
                    Err(e) => {
                        self.leave_os(key);
                        self.finish(key, Err(e), out);
                        Reaped::Done
                    }
                };
            }
        }
        if code == libc::EAGAIN {
            // A quiet request's EAGAIN is the I/O's own (`WouldBlock`): the
            // signal queue was not the cause; end the quiet spell.
            self.quiet_until = None;
        }
        self.leave_os(key);
        self.finish(key, res, out);
        Reaped::Done
    }

    /// The request of `key` is no longer in the OS: the table's count and the
    /// `in_flight` gauge (an orphan leaves the gauge when it is freed).
    fn leave_os(&mut self, key: usize) {
        self.in_flight -= 1;
        if !matches!(self.slots[key].state, State::Orphaned) {
            sub(&IN_FLIGHT, 1);
        }
    }

    /// Puts a request that left the OS back at the front of the queue.
    fn requeue_front(&mut self, key: usize) {
        let slot = &mut self.slots[key];
        slot.state = match std::mem::replace(&mut slot.state, State::Orphaned) {
            State::Submitted(w) => State::Queued(w),
            State::Orphaned => {
                // Still detached: it runs when there is room, then is freed.
                sub(&IN_FLIGHT, 1);
                sub(&ORPHANED, 1);
                State::QueuedDetached
            }
            other => other,
        };
        add(&QUEUED, 1);
        let token = Token::new(key, slot.generation);
        self.queue.push_front(token);
    }

    /// Records the final result of a request that is not in the OS: wakes its
    /// future, or frees it if nobody waits.
    pub(super) fn finish(&mut self, key: usize, res: io::Result<usize>, out: &mut AfterUnlock) {
        let slot = &mut self.slots[key];
        if slot.started {
            add(&COMPLETED, 1);
        }
        #[cfg(feature = "tracing")]
        if let Some(at) = slot.started_at {
            let took = at.elapsed();
            if took >= super::trace::slow() {
                out.events.push(super::trace::Event::Slow {
                    took_ms: took.as_millis() as u64,
                    ok: res.is_ok(),
                });
            }
        }
        out.released.extend(slot.release.take());
        out.holds
            .extend(slot.holds.iter_mut().filter_map(Option::take));
        match std::mem::replace(&mut slot.state, State::Done(res)) {
            State::Orphaned => {
                out.orphans += 1;
                out.freed.extend(self.slots.remove(key).cb);
            }
            // Detached and refused at submission: nobody will collect it.
            State::QueuedDetached => out.freed.extend(self.slots.remove(key).cb),
            State::Submitted(w) | State::Queued(w) => {
                if let Some((group, index)) = &slot.group {
                    group.finished(*index, out);
                }
                out.wakers.extend(w);
            }
            State::Done(_) => {}
        }
    }

    /// The finished requests `tokens` of a group, removed from the table.
    pub(crate) fn take_done(&mut self, tokens: &[Token]) -> Vec<(io::Result<usize>, Aiocb)> {
        let mut res = Vec::with_capacity(tokens.len());
        for &t in tokens {
            // The group lists only finished requests, each once, and a batch's
            // slots are freed only here or by its `Drop`.
            let Some(key) = self.lookup(t) else {
                unreachable!("aiofs: internal: a batch's slot is gone");
            };
            res.push(self.remove_done(key));
        }
        res
    }
}
