//! The process-wide AIO driver: the completion table, the in-flight limit and
//! the notifiers that turn completion signals into wake-ups.
//!
//! It starts lazily, on the first request, from the installed [`Config`] and the
//! environment.

mod config;
mod listen;
mod paused;
mod pipe;
pub(crate) mod stats;
mod table;

use std::io;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Poll, Waker};

pub use config::{Config, Notifier, block_completion_signal};
pub(crate) use config::{DEFAULT_READ_AHEAD, MAX_READ_AHEAD};
pub use stats::{Stats, stats};

use crate::sys::aio::Aiocb;
use config::Settings;
pub(crate) use table::Group;
pub(crate) use table::Token;
use table::{AfterUnlock, Table};

/// How often the notifier looks for completions whose signal was lost (the
/// signal queue was full) or for queued requests that could not start.
const SAFETY_NET: std::time::Duration = std::time::Duration::from_millis(250);

pub(crate) struct Driver {
    table: Mutex<Table>,
    settings: Settings,
    listener: listen::Listener,
    /// The signal notifier's self-pipe of completion tokens (the pipe notifier's
    /// belongs to its thread).
    token_pipe: Option<std::os::fd::OwnedFd>,
}

static DRIVER: OnceLock<Result<Driver, (io::ErrorKind, String)>> = OnceLock::new();

/// The driver, started on first use.
///
/// # Errors
///
/// The error of the start (a bad `AIOFS_*` variable, no pipe, no thread), each
/// time: the driver does not start half-way.
pub(crate) fn get() -> io::Result<&'static Driver> {
    match DRIVER.get_or_init(Driver::start) {
        Ok(driver) => Ok(driver),
        Err((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
    }
}

/// The driver if it is running, for the notifier threads.
fn wait() -> Option<&'static Driver> {
    DRIVER.wait().as_ref().ok()
}

impl Driver {
    fn start() -> Result<Driver, (io::ErrorKind, String)> {
        let fail = |e: io::Error| (e.kind(), e.to_string());
        let settings = config::start_settings().map_err(fail)?;
        let token_pipe = match settings.notifier {
            Notifier::Pipe => {
                pipe::start(settings.signal).map_err(fail)?;
                None
            }
            Notifier::Signal => {
                let rd = pipe::token_pipe(settings.signal).map_err(fail)?;
                listen::start_watchdog().map_err(fail)?;
                Some(rd)
            }
        };
        Ok(Driver {
            table: Mutex::new(Table::new(
                settings.max_in_flight,
                settings.signal,
                settings.listio,
            )),
            settings,
            listener: listen::Listener::new(),
            token_pipe,
        })
    }

    /// The stream's read-ahead window (reads in flight); 0: none.
    pub(crate) fn read_ahead(&self) -> usize {
        self.settings.read_ahead
    }

    /// The largest read that tries the page cache first; 0: the fast path is off.
    pub(crate) fn nowait_max(&self) -> usize {
        self.settings.nowait_max
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent (every
        // mutation is completed before anything that can panic), so go on.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_table<R>(&self, f: impl FnOnce(&mut Table, &mut AfterUnlock) -> R) -> R {
        let mut out = AfterUnlock::default();
        let r = {
            let mut table = self.table();
            f(&mut table, &mut out)
        }; // lock released here
        out.run();
        r
    }

    /// Takes a request: it is in flight (or queued) when this returns `Ok`.
    pub(crate) fn submit(
        &'static self,
        cb: Aiocb,
        waker: &Waker,
    ) -> Result<Token, (io::Error, Aiocb)> {
        if self.settings.notifier == Notifier::Signal
            && let Err(e) = self.listener.ensure(self)
        {
            return Err((e, cb));
        }
        let ticket = paused::ticket();
        self.with_table(|t, out| t.submit(cb, waker, ticket, out))
    }

    /// Takes several requests, started together with `lio_listio` as far as the
    /// in-flight limit allows.
    pub(crate) fn submit_group(
        &'static self,
        cbs: Vec<Aiocb>,
        group: &std::sync::Arc<Group>,
    ) -> Result<Vec<Token>, (io::Error, Vec<Aiocb>)> {
        if self.settings.notifier == Notifier::Signal
            && let Err(e) = self.listener.ensure(self)
        {
            return Err((e, cbs));
        }
        let ticket = paused::ticket();
        self.with_table(|t, out| t.submit_group(cbs, group, ticket, out))
    }

    /// Takes the results of finished requests of a group.
    pub(crate) fn take_done(&'static self, tokens: &[Token]) -> Vec<(io::Result<usize>, Aiocb)> {
        if self.settings.notifier == Notifier::Signal {
            let _ = self.listener.ensure(self);
        }
        self.with_table(|t, _| t.take_done(tokens))
    }

    /// Whether a request could be submitted from here: under the signal
    /// notifier, a Tokio runtime must read the stream (the error says so). The
    /// page-cache fast path asks first, so that a read never succeeds or fails
    /// depending on the cache.
    pub(crate) fn can_submit(&'static self) -> io::Result<()> {
        if self.settings.notifier == Notifier::Signal {
            self.listener.ensure(self)?;
        }
        Ok(())
    }

    /// Makes sure someone reads the signal stream (signal notifier), for a
    /// group's future being polled.
    pub(crate) fn keep_listening(&'static self) {
        if self.settings.notifier == Notifier::Signal {
            let _ = self.listener.ensure(self);
        }
    }

    /// Orphans several requests (a dropped batch).
    pub(crate) fn orphan_many(&self, tokens: &[Token]) {
        self.with_table(|t, out| {
            for &token in tokens {
                t.orphan(token, out);
            }
        });
    }

    /// The result of `token`'s request, or `Pending` with the waker kept.
    pub(crate) fn poll(
        &'static self,
        token: Token,
        waker: &Waker,
    ) -> Poll<(io::Result<usize>, Aiocb)> {
        if self.settings.notifier == Notifier::Signal {
            // Take over the stream if the runtime that read it is gone. If that
            // fails (no runtime here), the watchdog's scans still complete us.
            let _ = self.listener.ensure(self);
        }
        self.table().poll(token, waker)
    }

    /// The future of `token` was dropped; the table keeps what the OS may touch.
    pub(crate) fn orphan(&self, token: Token) {
        self.with_table(|t, out| t.orphan(token, out));
    }

    /// The future of `token` lets go, but its request must still run.
    pub(crate) fn detach(&self, token: Token) {
        self.with_table(|t, out| t.detach(token, out));
    }

    /// Completion tokens from the self-pipe; `scan` when the pipe overflowed.
    fn complete(&self, tokens: &[usize], scan: bool) {
        self.with_table(|t, out| {
            for &raw in tokens {
                t.complete(Token::from_raw(raw), out);
            }
            if scan {
                t.scan(out);
            }
            t.fill(out);
        });
    }

    /// The signal notifier woke (or its watchdog ticks): completes the requests
    /// whose tokens the signal action put in the self-pipe. Scans instead when
    /// tokens may be missing: the pipe overflowed, or the signal is a standard
    /// one, whose instances the kernel merges.
    fn drain(&self, drain: &mut pipe::Drain) -> bool {
        let Some(rd) = &self.token_pipe else {
            return false;
        };
        let got = drain.run(self, rd);
        let merged = self.settings.signal < crate::sys::signal::sigrtmin();
        let overflow =
            crate::sys::signal::OVERFLOW.swap(false, std::sync::atomic::Ordering::AcqRel);
        if merged || overflow {
            self.scan();
        }
        got
    }

    /// Checks every request in flight.
    fn scan(&self) {
        self.with_table(|t, out| {
            t.scan(out);
            t.fill(out);
        });
    }

    /// The safety net: scans if anything is in flight or queued.
    fn tick(&self) {
        self.with_table(|t, out| {
            if t.is_busy() {
                t.scan(out);
                t.fill(out);
            }
        });
    }

    /// Wakes every waiting future (the signal stream's reader went away).
    fn wake_all(&self) {
        self.with_table(|t, out| t.all_wakers(out));
    }
}
