//! The pipe notifier's `signalfd`, and [`block_completion_signal`], which
//! turns it on.
//!
//! A completion signal interrupts some thread that does not block it, to run
//! the action that writes its token into the self-pipe. Once every thread
//! blocks the signal, the kernel keeps completions pending on the process
//! instead, and the `aiofs-notifier` thread reads many at a time from a
//! `signalfd`: no application thread is interrupted. The `signalfd` is opened
//! only once the application asks (reading it takes every pending instance of
//! the signal, including any meant for another handler).

use std::io;

use super::super::config::{self, Notifier};

#[cfg(any(target_os = "linux", target_os = "android"))]
use linux::open;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
    use std::sync::OnceLock;

    use super::super::super::stats::{self, SIGNALFD_SIGNALS, TOKENS};
    use super::super::super::{DRIVER, Driver};
    use crate::sys;

    /// The signalfd, once the application blocks the signal.
    static SIGNALFD_FD: OnceLock<OwnedFd> = OnceLock::new();

    /// Opens the signalfd for `signo` (once); the notifier thread and the
    /// runtimes' listeners (woken for it) pick it up.
    pub(super) fn open(signo: i32) -> io::Result<()> {
        if SIGNALFD_FD.get().is_none() {
            let sfd = sys::signalfd::open(signo)?;
            // A concurrent caller may have set one first: ours is then closed.
            let _ = SIGNALFD_FD.set(sfd);
            if let Some(Ok(driver)) = DRIVER.get() {
                let _ = driver.kick.wake();
                if let Some(listeners) = &driver.listeners {
                    listeners.signalfd_opened();
                }
            }
        }
        Ok(())
    }

    /// The signalfd, if it is open.
    pub(in super::super) fn signalfd_raw() -> Option<RawFd> {
        SIGNALFD_FD.get().map(AsRawFd::as_raw_fd)
    }

    /// The signalfd, if it is open (it stays open for the rest of the program).
    pub(in super::super) fn signalfd() -> Option<BorrowedFd<'static>> {
        SIGNALFD_FD.get().map(AsFd::as_fd)
    }

    /// Reads the signals that every thread blocks from the signalfd and
    /// completes their requests; returns whether there were any.
    pub(in super::super) fn drain_signalfd(driver: &Driver, tokens: &mut Vec<usize>) -> bool {
        let Some(sfd) = SIGNALFD_FD.get() else {
            return false;
        };
        tokens.clear();
        let n = sys::signalfd::read(sfd, tokens).unwrap_or(0);
        if n == 0 {
            return false;
        }
        stats::add(&sys::signal::SIGNALS, n as u64);
        stats::add(&SIGNALFD_SIGNALS, n as u64);
        stats::add(&TOKENS, tokens.len() as u64);
        driver.on_wake(tokens, true);
        true
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) use linux::{drain_signalfd, signalfd, signalfd_raw};

/// Blocks aiofs's completion signal in the calling thread (Linux, pipe notifier).
///
/// A completion signal interrupts some thread that does not block it, to run
/// the signal action that hands the token to the notifier thread: on a busy
/// process that is one more thread woken per completion. Once **every** thread
/// blocks the signal, the kernel keeps it pending instead, and the notifier
/// thread reads many at a time from a `signalfd`; no thread of yours is
/// interrupted at all. Threads inherit the mask of the thread that starts them,
/// so call this early in `main`, and in Tokio's `on_thread_start` for the
/// runtime's threads. Until every thread blocks it, completions simply keep
/// taking the signal action in the threads that do not: nothing is lost either
/// way. `stats().signalfd_signals` shows how many came through the `signalfd`.
///
/// Call it after [`Config::install`](crate::Config::install): it blocks the
/// signal number that the installed configuration (or `AIOFS_SIGNAL`, or the
/// default) names. From the first call on, aiofs reads every pending instance
/// of that signal: a signal that someone else sends to that number is taken too
/// (and ignored, unless it is a completion), so it may no longer reach another
/// handler for it. The number should be aiofs's alone anyway.
///
/// # Errors
///
/// `InvalidInput` under [`Notifier::Signal`], whose Tokio signal stream needs
/// the signal delivered to a thread; `Unsupported` off Linux; the errors of a
/// bad `AIOFS_*` variable; the error of opening the `signalfd` (e.g. `EMFILE`).
/// On any error the thread's signal mask is left as it was.
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// // This thread, and the threads it starts. (Refused under Notifier::Signal.)
/// if let Err(e) = aiofs::block_completion_signal() {
///     eprintln!("completions keep taking the signal action: {e}");
/// }
/// let rt = tokio::runtime::Builder::new_multi_thread()
///     .on_thread_start(|| {
///         // The mask is inherited already; this also covers threads started
///         // from elsewhere. It cannot fail once it worked on the main thread.
///         let _ = aiofs::block_completion_signal();
///     })
///     .enable_all()
///     .build()?;
/// rt.block_on(async {
///     let file = aiofs::File::from_std(tempfile::tempfile()?);
///     let (res, _) = file.write_at(b"hello".to_vec(), 0).await;
///     res.map(drop)
/// })?;
/// # Ok(())
/// # }
/// ```
pub fn block_completion_signal() -> io::Result<()> {
    let settings = config::current_settings()?;
    if settings.notifier == Notifier::Signal {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "aiofs: block_completion_signal is for the pipe notifier: Tokio's signal stream \
             (Notifier::Signal) needs the signal delivered to a thread",
        ));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // The signalfd first: if it cannot be had, the mask stays as it was
        // (a blocked signal nobody reads would pile up unseen).
        open(settings.signal)?;
        crate::sys::signalfd::block_in_this_thread(settings.signal)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "aiofs: block_completion_signal needs signalfd (Linux)",
        ))
    }
}

/// Sets up a Tokio runtime builder so that completions never interrupt a
/// thread: blocks aiofs's completion signal in the calling thread and, through
/// `on_thread_start`, in every thread the runtime starts (see
/// [`block_completion_signal`]). Completions are then read from a `signalfd`
/// by the runtime's own reactor, many per read.
///
/// Call it on the thread that builds the runtime (usually `main`), before
/// starting other threads, which inherit its mask. It sets the builder's
/// `on_thread_start`: if you need your own, call [`block_completion_signal`]
/// from it instead. It is in effect when [`Stats::signalfd_signals`] grows
/// and [`Stats::signals`] only by as much: no signal then runs the action.
///
/// [`Stats::signalfd_signals`]: crate::Stats::signalfd_signals
/// [`Stats::signals`]: crate::Stats::signals
///
/// # Errors
///
/// Those of [`block_completion_signal`] (on the calling thread); the builder
/// is left unchanged then.
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let mut builder = tokio::runtime::Builder::new_multi_thread();
/// if let Err(e) = aiofs::prepare_runtime(&mut builder) {
///     eprintln!("completions keep taking the signal action: {e}");
/// }
/// let rt = builder.enable_all().build()?;
/// rt.block_on(async {
///     let file = aiofs::File::from_std(tempfile::tempfile()?);
///     let (res, _) = file.write_at(b"hello".to_vec(), 0).await;
///     res.map(drop)
/// })?;
/// # Ok(())
/// # }
/// ```
pub fn prepare_runtime(
    builder: &mut tokio::runtime::Builder,
) -> io::Result<&mut tokio::runtime::Builder> {
    block_completion_signal()?;
    Ok(builder.on_thread_start(|| {
        // It worked on the building thread: it works here (same number,
        // signalfd already open).
        let _ = block_completion_signal();
    }))
}
