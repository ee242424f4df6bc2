//! The completion table: every request from submission to the collection of its
//! result, keyed by a [`Token`] that the completion signal carries.
//!
//! A slot moves `Queued → Submitted → Done`, or `Submitted → Orphaned → (freed)`
//! when its future is dropped. The table never frees the [`Aiocb`] of a request
//! the OS may still run: it is freed when `aio_error` says it is finished.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::task::{Poll, Waker};

use slab::Slab;

use super::paused::Ticket;
use super::stats::*;
use crate::sys::aio::{Aiocb, Status};

const HALF: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << HALF) - 1;

/// A slot's name: its index in the table and the generation of its occupant.
///
/// Carried in `sigev_value`, so it comes back in every completion signal. It is
/// only a hint: anyone may queue a signal with any value, and a slot may have been
/// reused. The table checks the generation and asks `aio_error` before acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token(usize);

impl Token {
    fn new(index: usize, generation: usize) -> Token {
        Token((generation << HALF) | (index & INDEX_MASK))
    }
    fn index(self) -> usize {
        self.0 & INDEX_MASK
    }
    fn generation(self) -> usize {
        self.0 >> HALF
    }
    pub(crate) fn from_raw(raw: usize) -> Token {
        Token(raw)
    }
}

enum State {
    /// Waiting for a place under the in-flight limit (or for a retry after `EAGAIN`).
    Queued(Option<Waker>),
    /// Queued, and its future detached: submitted when there is room, then
    /// orphaned (a write-behind of a dropped `File`).
    QueuedDetached,
    /// In the OS; the future waits.
    Submitted(Option<Waker>),
    /// In the OS; the future was dropped. Freed when it finishes.
    Orphaned,
    /// Finished; the result waits for the future to collect it.
    Done(io::Result<usize>),
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

    fn finished(&self, index: usize, out: &mut AfterUnlock) {
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(index);
        if let Some(w) = self.waker.take() {
            out.wakers.push(w);
        }
    }
}

struct Slot {
    generation: usize,
    /// The batch this request belongs to, and its index there.
    group: Option<(Arc<Group>, usize)>,
    /// Always `Some`, but for the moment of a `lio_listio` call.
    cb: Option<Aiocb>,
    state: State,
    /// Counted in `submitted` already (a resubmission is not counted again).
    started: bool,
    /// Holds a paused runtime's clock while the request is unfinished.
    ticket: Option<Ticket>,
}

impl Slot {
    fn cb(&mut self) -> &mut Aiocb {
        // `None` only inside `start_list`, which puts every aiocb back before it
        // returns, and never calls this meanwhile.
        self.cb
            .as_mut()
            .expect("aiofs: internal: slot without its aiocb")
    }
}

fn too_many() -> io::Error {
    io::Error::other("aiofs: too many requests in the completion table")
}

/// What to do once the table lock is released: wake these futures, free these
/// finished orphans (their buffers and descriptors).
#[derive(Default)]
pub(crate) struct AfterUnlock {
    pub(crate) wakers: Vec<Waker>,
    pub(crate) freed: Vec<Aiocb>,
    /// Finished orphans among `freed`: they leave the `in_flight` and `orphaned`
    /// gauges only once their buffer and descriptor are released.
    orphans: u64,
    /// Tickets of finished requests: released after the wake-ups, so a paused
    /// runtime has the woken task to run before its clock may move.
    tickets: Vec<Ticket>,
}

impl AfterUnlock {
    pub(crate) fn run(self) {
        self.wakers.into_iter().for_each(Waker::wake);
        drop(self.tickets);
        drop(self.freed);
        if self.orphans > 0 {
            sub(&IN_FLIGHT, self.orphans);
            sub(&ORPHANED, self.orphans);
        }
    }
}

pub(crate) struct Table {
    slots: Slab<Slot>,
    next_generation: usize,
    /// Requests waiting for a place, oldest first.
    queue: VecDeque<Token>,
    in_flight: usize,
    limit: usize,
    signo: i32,
    /// Reused by `scan`: the keys of the requests in the OS.
    scratch: Vec<usize>,
    /// Reused by `fill`: the requests about to start.
    run: Vec<(Token, usize)>,
    /// Start several queued requests with one `lio_listio`.
    listio: bool,
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
            scratch: Vec::new(),
            run: Vec::new(),
            listio,
        }
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.in_flight > 0 || !self.queue.is_empty()
    }

    fn lookup(&self, token: Token) -> Option<usize> {
        let key = token.index();
        match self.slots.get(key) {
            Some(slot) if slot.generation == token.generation() => Some(key),
            _ => None,
        }
    }

    /// Puts a new request in a slot, queued behind those already waiting.
    fn enqueue(
        &mut self,
        mut cb: Aiocb,
        waker: Option<Waker>,
        group: Option<(Arc<Group>, usize)>,
        ticket: Option<Ticket>,
    ) -> Token {
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & (usize::MAX >> HALF);
        if self.next_generation == 0 {
            self.next_generation = 1;
        }
        let entry = self.slots.vacant_entry();
        let token = Token::new(entry.key(), generation);
        cb.set_notify(self.signo, token.0);
        entry.insert(Slot {
            generation,
            cb: Some(cb),
            state: State::Queued(waker),
            started: false,
            group,
            ticket,
        });
        add(&QUEUED, 1);
        self.queue.push_back(token);
        token
    }

    /// Whether `n` more slots still have an index that fits in a token.
    fn has_room(&self, n: usize) -> bool {
        self.slots.len().saturating_add(n) <= INDEX_MASK
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
        waker: &Waker,
        ticket: Option<Ticket>,
        out: &mut AfterUnlock,
    ) -> Result<Token, (io::Error, Aiocb)> {
        if !self.has_room(1) {
            return Err((too_many(), cb));
        }
        // Through the queue, so requests start in the order they came.
        let token = self.enqueue(cb, Some(waker.clone()), None, ticket);
        self.fill(out);
        self.count_waiting(&[token]);
        Ok(token)
    }

    /// Takes several requests at once: they are started together (one
    /// `lio_listio`) as far as the in-flight limit allows, the rest queued.
    pub(crate) fn submit_group(
        &mut self,
        cbs: Vec<Aiocb>,
        group: &Arc<Group>,
        ticket: Option<Ticket>,
        out: &mut AfterUnlock,
    ) -> Result<Vec<Token>, (io::Error, Vec<Aiocb>)> {
        if !self.has_room(cbs.len()) {
            return Err((too_many(), cbs));
        }
        let tokens: Vec<Token> = cbs
            .into_iter()
            .enumerate()
            .map(|(index, cb)| {
                let group = Some((Arc::clone(group), index));
                self.enqueue(cb, None, group, ticket.clone())
            })
            .collect();
        self.fill(out);
        self.count_waiting(&tokens);
        Ok(tokens)
    }

    /// Records that the request of `key` is now in the OS.
    fn mark_started(&mut self, key: usize) {
        let slot = &mut self.slots[key];
        if !slot.started {
            slot.started = true;
            add(&SUBMITTED, 1);
        }
        self.in_flight += 1;
        add(&IN_FLIGHT, 1);
        slot.state = match std::mem::replace(&mut slot.state, State::Orphaned) {
            State::Queued(w) | State::Submitted(w) => State::Submitted(w),
            State::QueuedDetached => {
                add(&ORPHANED, 1);
                State::Orphaned
            }
            other => other,
        };
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

    /// `aio_*` for a queued slot.
    fn start(&mut self, key: usize) -> io::Result<()> {
        self.slots[key].cb().submit()?;
        self.mark_started(key);
        Ok(())
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
    /// is submitted when there is room. The driver frees it when it completes.
    pub(crate) fn detach(&mut self, token: Token, out: &mut AfterUnlock) {
        let Some(key) = self.lookup(token) else {
            return;
        };
        match self.slots[key].state {
            State::Queued(_) => self.slots[key].state = State::QueuedDetached,
            _ => self.orphan(token, out),
        }
    }

    /// The future of `token` was dropped.
    pub(crate) fn orphan(&mut self, token: Token, out: &mut AfterUnlock) {
        let Some(key) = self.lookup(token) else {
            return;
        };
        let slot = &mut self.slots[key];
        match slot.state {
            State::Queued(_) => {
                // Not in the OS: free it now (its stale token in `queue` is skipped).
                sub(&QUEUED, 1);
                out.freed.extend(self.slots.remove(key).cb);
            }
            State::Done(_) => out.freed.extend(self.slots.remove(key).cb),
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

    /// A completion signal named `token`.
    pub(crate) fn complete(&mut self, token: Token, out: &mut AfterUnlock) {
        match self.lookup(token) {
            Some(key) if matches!(self.slots[key].state, State::Submitted(_) | State::Orphaned) => {
                if !self.reap(key, out) {
                    // The truth (`aio_error`) says not finished: a forged signal.
                    add(&STALE_TOKENS, 1);
                }
            }
            _ => add(&STALE_TOKENS, 1),
        }
    }

    /// `aio_error` on every request in the OS.
    pub(crate) fn scan(&mut self, out: &mut AfterUnlock) {
        add(&SCANS, 1);
        let mut keys = std::mem::take(&mut self.scratch);
        keys.clear();
        keys.extend(
            self.slots
                .iter()
                .filter(|(_, s)| matches!(s.state, State::Submitted(_) | State::Orphaned))
                .map(|(k, _)| k),
        );
        for &key in &keys {
            self.reap(key, out);
        }
        self.scratch = keys;
    }

    /// Every waiting future's waker (the signal notifier's reader went away).
    pub(crate) fn all_wakers(&self, out: &mut AfterUnlock) {
        for (_, slot) in &self.slots {
            if let State::Queued(Some(w)) | State::Submitted(Some(w)) = &slot.state {
                out.wakers.push(w.clone());
            }
            if let (State::Queued(_) | State::Submitted(_), Some((group, _))) =
                (&slot.state, &slot.group)
                && let Some(w) = group.waker.take()
            {
                out.wakers.push(w);
            }
        }
    }

    /// Collects the result of `key` if `aio_error` says it is finished.
    fn reap(&mut self, key: usize, out: &mut AfterUnlock) -> bool {
        let slot = &mut self.slots[key];
        let Status::Done(code) = slot.cb().status() else {
            return false;
        };
        let res = slot.cb().reap(code);
        self.in_flight -= 1;
        let orphaned = matches!(slot.state, State::Orphaned);
        if !orphaned {
            sub(&IN_FLIGHT, 1);
        }
        if code == libc::EAGAIN && !orphaned && !self.slots[key].cb().is_idempotent() {
            // An O_APPEND write: running it again could append twice.
            let err = io::Error::other(
                "aiofs: outcome unknown: glibc could not queue the completion signal \
                 (RLIMIT_SIGPENDING full) of an O_APPEND write; the data may or may not have been appended",
            );
            return self.finish(key, Err(err), out);
        }
        if code == libc::EAGAIN && !orphaned {
            // The I/O may have happened, but glibc could not queue the completion
            // signal (RLIMIT_SIGPENDING) and replaced the result with -1/EAGAIN.
            // The outcome is unknown; positioned requests are idempotent: run it again.
            add(&EAGAIN_RETRIES, 1);
            match self.start(key) {
                Ok(()) => return true,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    let slot = &mut self.slots[key];
                    slot.state = match std::mem::replace(&mut slot.state, State::Orphaned) {
                        State::Submitted(w) => State::Queued(w),
                        other => other,
                    };
                    add(&QUEUED, 1);
                    let token = Token::new(key, slot.generation);
                    self.queue.push_front(token);
                    return true;
                }
                Err(e) => return self.finish(key, Err(e), out),
            }
        }
        self.finish(key, res, out)
    }

    fn finish(&mut self, key: usize, res: io::Result<usize>, out: &mut AfterUnlock) -> bool {
        let slot = &mut self.slots[key];
        if slot.started {
            add(&COMPLETED, 1);
        }
        out.tickets.extend(slot.ticket.take());
        match std::mem::replace(&mut slot.state, State::Done(res)) {
            State::Orphaned => {
                out.orphans += 1;
                out.freed.extend(self.slots.remove(key).cb);
            }
            State::Submitted(w) | State::Queued(w) => {
                if let Some((group, index)) = &slot.group {
                    group.finished(*index, out);
                }
                out.wakers.extend(w);
            }
            _ => {}
        }
        true
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

    /// Submits queued requests while there is room: several at once with one
    /// `lio_listio`, one alone with `aio_read`/`aio_write`/`aio_fsync`.
    pub(crate) fn fill(&mut self, out: &mut AfterUnlock) {
        // Called on every submission and completion: reuse one list.
        let mut run = std::mem::take(&mut self.run);
        loop {
            let room = self.limit.saturating_sub(self.in_flight);
            if room == 0 {
                break;
            }
            // The next startable requests, oldest first.
            run.clear();
            while run.len() < room {
                let Some(token) = self.queue.pop_front() else {
                    break;
                };
                let Some(key) = self.lookup(token) else {
                    continue; // dropped while queued
                };
                if matches!(
                    self.slots[key].state,
                    State::Queued(_) | State::QueuedDetached
                ) {
                    run.push((token, key));
                }
            }
            if run.is_empty() {
                break;
            }
            // Group members always go through `lio_listio` (they came in one
            // call); other requests when the switch allows.
            let listable = run.len() >= 2
                && (self.listio || run.iter().all(|&(_, k)| self.slots[k].group.is_some()))
                && run.iter().all(|&(_, k)| self.slots[k].cb().is_listable());
            let stalled = if listable {
                self.start_list(&run, out)
            } else {
                self.start_each(&run, out)
            };
            if stalled {
                break;
            }
        }
        run.clear();
        self.run = run;
    }

    /// Starts `run` one by one; on `EAGAIN` puts the rest back at the front of
    /// the queue and returns true (retried after the next completion).
    fn start_each(&mut self, run: &[(Token, usize)], out: &mut AfterUnlock) -> bool {
        for (i, &(_, key)) in run.iter().enumerate() {
            match self.start(key) {
                Ok(()) => sub(&QUEUED, 1),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    add(&EAGAIN_RETRIES, 1);
                    for &(t, _) in run[i..].iter().rev() {
                        self.queue.push_front(t);
                    }
                    return true;
                }
                Err(e) => {
                    sub(&QUEUED, 1);
                    self.finish(key, Err(e), out);
                }
            }
        }
        false
    }

    /// Starts `run` with one `lio_listio`.
    fn start_list(&mut self, run: &[(Token, usize)], out: &mut AfterUnlock) -> bool {
        let mut cbs: Vec<Aiocb> = run
            .iter()
            .filter_map(|&(_, k)| self.slots[k].cb.take())
            .collect();
        let results = {
            let mut refs: Vec<&mut Aiocb> = cbs.iter_mut().collect();
            crate::sys::aio::lio_listio(&mut refs)
        };
        add(&LISTIO_CALLS, 1);
        add(&LISTIO_REQUESTS, run.len() as u64);
        let mut again = Vec::new();
        for ((&(token, key), cb), res) in run.iter().zip(cbs.drain(..)).zip(results) {
            self.slots[key].cb = Some(cb);
            match res {
                Ok(()) => {
                    sub(&QUEUED, 1);
                    self.mark_started(key);
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    add(&EAGAIN_RETRIES, 1);
                    again.push(token);
                }
                Err(e) => {
                    sub(&QUEUED, 1);
                    self.finish(key, Err(e), out);
                }
            }
        }
        for &t in again.iter().rev() {
            self.queue.push_front(t);
        }
        !again.is_empty()
    }
}
