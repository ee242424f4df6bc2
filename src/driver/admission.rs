//! Admission: the in-flight limit, the FIFO queue behind it, and how queued
//! requests reach the OS (one by one, or together with `lio_listio`).
//!
//! `EAGAIN` at submission means glibc lacks a thread or memory for now: the
//! request goes back to the front of the queue and is tried again after the
//! next completion or recovery tick. While nothing else of ours is in flight no
//! completion can free what glibc lacks, so such refusals are counted and,
//! after [`IDLE_REFUSALS`], the request fails with that `EAGAIN`.

use std::io;
use std::sync::atomic::Ordering;

use super::completion::UNREAD_BACKED_OFF;
use super::slots::{AfterUnlock, State, Token};
use super::stats::*;
use super::table::Table;
use crate::sys::aio::{Aiocb, Notify};

/// Refusals with nothing of ours in flight before a request fails (about two
/// seconds of recovery ticks).
const IDLE_REFUSALS: u8 = 8;

impl Table {
    /// Records that the request of `key` is now in the OS.
    fn mark_started(&mut self, key: usize, out: &mut AfterUnlock) {
        let slot = &mut self.slots[key];
        if !slot.started {
            slot.started = true;
            // SeqCst, paired with the notifier's store of
            // `UNREAD_BACKED_OFF` then load of this count: either it sees
            // this request, or this sees its flag below.
            SUBMITTED.fetch_add(1, Ordering::SeqCst);
            #[cfg(feature = "tracing")]
            {
                slot.started_at = Some(std::time::Instant::now());
            }
        }
        if slot.quiet {
            // No signal will come: the recovery timer polls it.
            self.quiet.push(Token::new(key, slot.generation));
            out.kick_timer = true;
        }
        if UNREAD_BACKED_OFF.load(Ordering::SeqCst)
            && UNREAD_BACKED_OFF.swap(false, Ordering::SeqCst)
        {
            // The notifier thread sleeps long: it should look for this
            // request's completion soon (its runtime may not be driven).
            out.kick_timer = true;
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

    /// Sets the notification a queued request of `key` will be submitted with:
    /// its token in a signal, or none while the signal queue is thought full.
    fn arm(&mut self, key: usize) {
        let signo = self.signo;
        if let Some(until) = self.quiet_until {
            if std::time::Instant::now() < until {
                self.slots[key].quiet = true;
            } else {
                self.quiet_until = None;
            }
        }
        let slot = &mut self.slots[key];
        let notify = if slot.quiet {
            Notify::Quiet
        } else {
            Notify::Signal(signo, Token::new(key, slot.generation).raw())
        };
        slot.cb().set_notify(notify);
    }

    /// `aio_*` for a queued slot.
    fn start(&mut self, key: usize, out: &mut AfterUnlock) -> io::Result<()> {
        self.arm(key);
        self.slots[key].cb().submit()?;
        self.mark_started(key, out);
        Ok(())
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

    /// A queued request was refused with `EAGAIN`: back to the front of the
    /// queue, or failed if glibc keeps refusing while nothing of ours runs.
    /// Returns whether it went back to the queue.
    fn refused(&mut self, token: Token, key: usize, out: &mut AfterUnlock) -> bool {
        add(&EAGAIN_RETRIES, 1);
        #[cfg(feature = "tracing")]
        out.events.push(super::trace::Event::Refused {
            in_flight: self.in_flight,
        });
        if self.in_flight == 0 {
            let slot = &mut self.slots[key];
            slot.idle_refusals += 1;
            if slot.idle_refusals >= IDLE_REFUSALS {
                sub(&QUEUED, 1);
                let err = io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "aiofs: glibc refused the request {IDLE_REFUSALS} times with EAGAIN \
                         (no AIO thread or memory) while nothing else was in flight"
                    ),
                );
                self.finish(key, Err(err), out);
                return false;
            }
        }
        self.queue.push_front(token);
        true
    }

    /// Starts `run` one by one; on `EAGAIN` puts the rest back at the front of
    /// the queue and returns true (retried after the next completion or tick).
    fn start_each(&mut self, run: &[(Token, usize)], out: &mut AfterUnlock) -> bool {
        for (i, &(token, key)) in run.iter().enumerate() {
            match self.start(key, out) {
                Ok(()) => sub(&QUEUED, 1),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    for &(t, _) in run[i + 1..].iter().rev() {
                        self.queue.push_front(t);
                    }
                    return self.refused(token, key, out);
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
        for &(_, key) in run {
            self.arm(key);
        }
        let mut cbs: Vec<Aiocb> = run
            .iter()
            .filter_map(|&(_, k)| self.slots[k].cb.take())
            .collect();
        let results = {
            let mut refs: Vec<&mut Aiocb> = cbs.iter_mut().collect();
            crate::sys::aio::lio_listio(&mut refs)
        };
        add(
            &LISTIO_CALLS,
            run.len().div_ceil(crate::sys::aio::LISTIO_MAX) as u64,
        );
        add(&LISTIO_REQUESTS, run.len() as u64);
        let mut again = Vec::new();
        for ((&(token, key), cb), res) in run.iter().zip(cbs.drain(..)).zip(results) {
            self.slots[key].cb = Some(cb);
            match res {
                Ok(()) => {
                    sub(&QUEUED, 1);
                    self.mark_started(key, out);
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => again.push((token, key)),
                Err(e) => {
                    sub(&QUEUED, 1);
                    self.finish(key, Err(e), out);
                }
            }
        }
        let mut stalled = false;
        for &(t, k) in again.iter().rev() {
            stalled |= self.refused(t, k, out);
        }
        stalled
    }
}
