//! The process-wide AIO driver: the completion table, the in-flight limit and
//! the notifiers that turn completion signals into wake-ups.
//!
//! It starts lazily, on the first request, from the installed [`Config`] and the
//! environment. Files: `slots` (tokens and slot states), `table` (the state
//! machine and the `EAGAIN` policy), `admission` (the limit and the queue),
//! `completion` (the one completion path and its recovery rule), `notify`
//! (what wakes it: the pipe notifier's thread, the `signalfd`, Tokio's signal
//! stream), `hold` (paused clocks and runtime shutdowns), `config`, `stats`.

mod admission;
mod completion;
mod config;
mod hold;
mod notify;
mod slots;
pub(crate) mod stats;
mod table;
#[cfg(feature = "tracing")]
mod trace;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Poll, Waker};

pub use config::{Config, Notifier};
pub(crate) use config::{DEFAULT_READ_AHEAD, MAX_READ_AHEAD, Settings};
pub use notify::{block_completion_signal, prepare_runtime};
pub(crate) use slots::{Group, Release, Token};
pub use stats::{Stats, stats};
pub(crate) use table::is_outcome_unknown;

use crate::sys::aio::Aiocb;
use slots::AfterUnlock;
use table::Table;

pub(crate) struct Driver {
    table: Mutex<Table>,
    settings: Settings,
    /// The completion signal is a standard one: the kernel merges its instances.
    merged_signal: bool,
    /// The read end of the self-pipe the signal action writes tokens into.
    token_pipe: OwnedFd,
    /// Wakes the recovery timer's thread early.
    kick: mio::Waker,
    /// The runtimes' listeners: reading Tokio's signal stream (signal
    /// notifier), or the pipe and signalfd through their reactors (pipe
    /// notifier with runtime delivery).
    listeners: Option<notify::Listeners>,
    /// Requests in flight that no runtime listens for (submitted outside Tokio,
    /// or from a runtime without IO): the notifier thread reads for them.
    external: AtomicUsize,
}

static DRIVER: OnceLock<Result<Driver, (io::ErrorKind, String)>> = OnceLock::new();

/// The driver, started on first use.
///
/// # Errors
///
/// The error of the start (a bad `AIOFS_*` variable, no pipe, no thread), each
/// time: the driver does not start half-way. `Unsupported` in a child forked
/// (without exec) from a process that used aiofs: glibc's AIO threads and
/// aiofs's notifier did not survive the fork.
pub(crate) fn get() -> io::Result<&'static Driver> {
    check_not_forked()?;
    match DRIVER.get_or_init(Driver::start) {
        Ok(driver) => Ok(driver),
        Err((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
    }
}

/// `Unsupported` in a child forked (without exec) from a process that used
/// aiofs: glibc's AIO threads and aiofs's notifier did not survive the fork,
/// and the data its copies of `File`s hold is the parent's to write.
pub(crate) fn check_not_forked() -> io::Result<()> {
    if crate::sys::forked() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "aiofs: this process was created by fork() (without exec) from one that \
             used aiofs; glibc's AIO threads and aiofs's notifier do not survive a fork",
        ));
    }
    Ok(())
}

/// The driver if it is running, for the notifier threads.
fn wait() -> Option<&'static Driver> {
    DRIVER.wait().as_ref().ok()
}

impl Driver {
    fn start() -> Result<Driver, (io::ErrorKind, String)> {
        let fail = |e: io::Error| (e.kind(), e.to_string());
        let settings = config::start_settings().map_err(fail)?;
        crate::sys::watch_fork().map_err(fail)?;
        let started = notify::start(&settings).map_err(fail)?;
        Ok(Driver {
            table: Mutex::new(Table::new(
                settings.max_in_flight,
                settings.signal,
                settings.listio,
            )),
            merged_signal: settings.signal < crate::sys::signal::sigrtmin(),
            settings,
            token_pipe: started.token_pipe,
            kick: started.kick,
            listeners: match settings.notifier {
                Notifier::Signal => Some(notify::Listeners::new(notify::Kind::SignalStream)),
                Notifier::Pipe if settings.runtime_delivery => {
                    Some(notify::Listeners::new(notify::Kind::Fds))
                }
                Notifier::Pipe => None,
            },
            external: AtomicUsize::new(0),
        })
    }

    /// The settings the driver runs with.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
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
        out.run(|| {
            let _ = self.kick.wake();
        });
        r
    }

    /// Makes sure this runtime has a listener (it is spawned on first use):
    /// returns whether one listens here. Called on every submission and poll,
    /// so that a runtime that submits or waits always has its own listener.
    ///
    /// # Errors
    ///
    /// Under the signal notifier, outside a Tokio runtime with IO.
    fn listening(&'static self) -> io::Result<bool> {
        match &self.listeners {
            Some(l) => l.ensure(self),
            None => Ok(false),
        }
    }

    /// Whether a request could be submitted from here (under the signal
    /// notifier, a Tokio runtime with IO must read the stream).
    pub(crate) fn can_submit(&'static self) -> io::Result<()> {
        self.listening().map(drop)
    }

    /// Adds to `release` the count of external requests (no runtime listens
    /// for them) if so: the notifier thread then reads the pipe for them.
    fn account(&'static self, listening: bool, release: Option<Release>) -> Option<Release> {
        if listening || self.listeners.is_none() {
            return release;
        }
        if self.external.fetch_add(1, Ordering::AcqRel) == 0 {
            let _ = self.kick.wake();
        }
        Some(Box::new((release, External(self))))
    }

    /// Takes a request: it is in flight (or queued) when this returns `Ok`.
    /// `release` is dropped once the OS is done with it.
    pub(crate) fn submit(
        &'static self,
        cb: Aiocb,
        release: Option<Release>,
        waker: &Waker,
    ) -> Result<Token, (io::Error, Aiocb)> {
        let listening = match self.listening() {
            Ok(l) => l,
            Err(e) => return Err((e, cb)),
        };
        let release = self.account(listening, release);
        let hold = hold::paused();
        self.with_table(|t, out| t.submit(cb, release, waker, hold, out))
    }

    /// Takes several requests, started together with `lio_listio` as far as the
    /// in-flight limit allows.
    pub(crate) fn submit_group(
        &'static self,
        reqs: Vec<(Aiocb, Option<Release>)>,
        group: &std::sync::Arc<Group>,
    ) -> Result<Vec<Token>, (io::Error, Vec<Aiocb>)> {
        let listening = match self.listening() {
            Ok(l) => l,
            Err(e) => return Err((e, reqs.into_iter().map(|(cb, _)| cb).collect())),
        };
        let reqs = reqs
            .into_iter()
            .map(|(cb, release)| (cb, self.account(listening, release)))
            .collect();
        let hold = hold::paused();
        self.with_table(|t, out| t.submit_group(reqs, group, hold, out))
    }

    /// Takes the results of finished requests of a group.
    pub(crate) fn take_done(&'static self, tokens: &[Token]) -> Vec<(io::Result<usize>, Aiocb)> {
        self.with_table(|t, _| t.take_done(tokens))
    }

    /// A group's future is polled (and waits): keep a listener on this runtime.
    pub(crate) fn keep_listening(&'static self) {
        let _ = self.can_submit();
    }

    /// Orphans several requests (a dropped batch); `writes`: some are writes
    /// (they still run, and hold the runtime's shutdown).
    pub(crate) fn orphan_many(&self, tokens: &[Token], writes: bool) {
        if crate::sys::forked() {
            return; // see `orphan`
        }
        let hold = if writes { hold::exit() } else { None };
        self.with_table(|t, out| {
            for &token in tokens {
                t.orphan(token, hold.clone(), out);
            }
        });
    }

    /// The result of `token`'s request, or `Pending` with the waker kept.
    pub(crate) fn poll(
        &'static self,
        token: Token,
        waker: &Waker,
    ) -> Poll<(io::Result<usize>, Aiocb)> {
        // Under the signal notifier, a runtime that waits reads the stream. If
        // that fails (no runtime here), the recovery timer still completes us.
        let _ = self.can_submit();
        self.table().poll(token, waker)
    }

    /// The future of `token` was dropped; the table keeps what the OS may
    /// touch. `write`: it still runs, and holds the runtime's shutdown.
    pub(crate) fn orphan(&self, token: Token, write: bool) {
        if crate::sys::forked() {
            // A forked child's copy of the table may be locked for good (by a
            // thread that does not exist here): leak rather than hang.
            return;
        }
        let hold = if write { hold::exit() } else { None };
        self.with_table(|t, out| t.orphan(token, hold, out));
    }

    /// The future of `token` lets go, but its request must still run, and
    /// land before the current runtime (if any) finishes shutting down.
    pub(crate) fn detach(&self, token: Token) {
        if crate::sys::forked() {
            return; // see `orphan`
        }
        let hold = hold::exit();
        self.with_table(|t, out| t.detach(token, hold, out));
    }
}

/// Counts an external request until the OS is done with it.
struct External(&'static Driver);

impl Drop for External {
    fn drop(&mut self) {
        self.0.external.fetch_sub(1, Ordering::AcqRel);
    }
}

/// After detaching writes (a `File` dropped with buffered data): if the
/// current runtime is shutting down and refused the task that would hold it,
/// waits for them here, as its blocking pool would have.
pub(crate) fn wait_detached() {
    hold::wait_if_refused();
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::io::ErrorKind;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::Arc;

    use crate::sys::aio::Aiocb;
    use crate::sys::fd::Fd;

    /// An empty FIFO opened read-write and non-blocking: glibc's worker
    /// `pread`s it, gets `ESPIPE`, falls back to `read`, and gets the I/O's
    /// own `EAGAIN` every time. (The layers above refuse FIFOs; the driver is
    /// exercised directly.) The first `EAGAIN` could be a lost signal: the
    /// request runs once more, quietly; the quiet run's `EAGAIN` is final.
    #[test]
    fn a_genuine_eagain_is_would_block_after_one_quiet_retry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .expect("open the fifo");
        let fd = Arc::new(Fd::new(fifo.into()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let before = crate::stats();
        let (res, _) = rt.block_on(async {
            let driver = super::get().expect("driver");
            let mut cb = Some(Aiocb::read(fd, Vec::<u8>::with_capacity(16), 0, 0));
            let mut token = None;
            let done = poll_fn(|cx| {
                let t = match token {
                    Some(t) => t,
                    None => match driver.submit(cb.take().expect("aiocb"), None, cx.waker()) {
                        Ok(t) => *token.insert(t),
                        Err((e, _)) => panic!("submit: {e}"),
                    },
                };
                driver.poll(t, cx.waker())
            });
            tokio::time::timeout(std::time::Duration::from_secs(10), done)
                .await
                .expect("a genuine EAGAIN must finish, not spin")
        });
        let after = crate::stats();
        let err = res.expect_err("nothing to read");
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err:?}");
        assert_eq!(
            after.quiet_resubmits - before.quiet_resubmits,
            1,
            "{after:?}"
        );
    }
}
