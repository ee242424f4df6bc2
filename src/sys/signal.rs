//! The completion signal: its number, and the `SA_SIGINFO` action that writes
//! each completion's token into the self-pipe (read by the pipe notifier's
//! thread, or by the signal notifier's task when Tokio's stream wakes it).
//!
//! glibc queues a real-time signal to the process for every finished request
//! (`rt_sigqueueinfo`, `si_code = SI_ASYNCIO`, `si_value` = the request's token).
//! The action registered here (through `signal-hook-registry`, which installs
//! it with `SA_RESTART | SA_SIGINFO`, chains any earlier handler and preserves
//! `errno`) writes the token into the self-pipe. It allocates nothing and takes
//! no lock.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

/// The write end of the self-pipe, or -1 before the pipe notifier starts.
static PIPE_WR: AtomicI32 = AtomicI32::new(-1);
/// The process that installed the action: a child forked without exec shares
/// the pipe with its parent and must never write into it.
static OWNER: AtomicI32 = AtomicI32::new(0);
/// Set by the handler when the pipe was full: the reader must scan every slot.
pub(crate) static OVERFLOW: AtomicBool = AtomicBool::new(false);
/// Signals seen by the handler (every `si_code`).
pub(crate) static SIGNALS: AtomicU64 = AtomicU64::new(0);
/// Times the pipe was full.
pub(crate) static OVERFLOWS: AtomicU64 = AtomicU64::new(0);

/// The default completion signal: `SIGRTMIN() + 6` (38 with glibc).
pub(crate) fn default_signal() -> i32 {
    sigrtmin() + 6
}

/// The first real-time signal: signals below it are not queued.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}
#[cfg(any(target_os = "linux", target_os = "android"))]
fn sigrtmax() -> i32 {
    libc::SIGRTMAX()
}
/// The first real-time signal: signals below it are not queued.
#[cfg(target_os = "freebsd")]
pub(crate) fn sigrtmin() -> i32 {
    65
}
#[cfg(target_os = "freebsd")]
fn sigrtmax() -> i32 {
    126
}
/// The first real-time signal: signals below it are not queued.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn sigrtmin() -> i32 {
    libc::SIGUSR2
}
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn sigrtmax() -> i32 {
    libc::SIGUSR2
}

/// Checks that `signo` can carry completions: a real signal, not one that
/// `signal-hook-registry` and Tokio forbid (`SIGKILL`, `SIGSTOP`, `SIGILL`,
/// `SIGFPE`, `SIGSEGV`), and not one reserved by the C library.
pub(crate) fn validate(signo: i32) -> io::Result<()> {
    let max = sigrtmax().max(libc::SIGUSR2);
    if signo < 1 || signo > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("aiofs: signal {signo} is not a signal number (1..={max})"),
        ));
    }
    if signal_hook_registry::FORBIDDEN.contains(&signo) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "aiofs: signal {signo} cannot carry completions (SIGKILL, SIGSTOP, SIGILL, SIGFPE and SIGSEGV are forbidden)"
            ),
        ));
    }
    let rtmin = sigrtmin();
    if signo > libc::SIGSYS && signo < rtmin {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "aiofs: signal {signo} is reserved by the C library (below SIGRTMIN = {rtmin})"
            ),
        ));
    }
    Ok(())
}

/// Installs the pipe notifier's action for `signo`, writing tokens to `pipe_wr`.
///
/// The caller keeps `pipe_wr` open for the life of the process.
pub(crate) fn register_pipe_action(signo: i32, pipe_wr: RawFd) -> io::Result<()> {
    validate(signo)?;
    OWNER.store(super::pid(), Ordering::Release);
    PIPE_WR.store(pipe_wr, Ordering::Release);
    // SAFETY: `on_signal` is async-signal-safe: it uses atomics, `getpid(2)` and `write(2)` only,
    // allocates nothing and takes no lock. `validate` refused the forbidden signals
    // for which `register_sigaction` would panic.
    unsafe { signal_hook_registry::register_sigaction(signo, on_signal) }?;
    Ok(())
}

fn on_signal(info: &libc::siginfo_t) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
    // Only glibc's completion notices carry a token. Anything else sent to this
    // signal number is not ours (it still reaches handlers chained before ours).
    if info.si_code != libc::SI_ASYNCIO {
        return;
    }
    // `getpid` is async-signal-safe (and not cached by glibc 2.25 and later).
    if super::pid() != OWNER.load(Ordering::Acquire) {
        return; // a forked child: the pipe is its parent's
    }
    let token = si_value(info);
    let fd = PIPE_WR.load(Ordering::Acquire);
    if fd < 0 || !super::pipe::write_from_handler(fd, &token.to_ne_bytes()) {
        // Full pipe: the reader is already woken by the data in it; tell it to scan.
        OVERFLOWS.fetch_add(1, Ordering::Relaxed);
        OVERFLOW.store(true, Ordering::Release);
    }
}

/// The `si_value` a completion signal carries, as a token.
fn si_value(info: &libc::siginfo_t) -> usize {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: for `SI_ASYNCIO` (and every queued signal) the kernel fills the
        // `_rt` member of the union that `si_value` reads.
        unsafe { info.si_value().sival_ptr as usize }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        info.si_value.sival_ptr as usize
    }
}
