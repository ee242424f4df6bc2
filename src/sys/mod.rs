//! The operating system: the only code in the crate that calls `libc`.
//!
//! Everything here is a small `pub(crate)` function or type returning
//! `io::Result`; the layers above never see a raw pointer.

pub(crate) mod aio;
pub(crate) mod fd;
pub(crate) mod nowait;
pub(crate) mod pipe;
pub(crate) mod reactor;
pub(crate) mod signal;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod signalfd;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Turns a `-1`-on-error return value into an `io::Result`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The soft limit of `RLIMIT_SIGPENDING` (queued signals for this user), if the
/// platform has one.
pub(crate) fn sigpending_limit() -> Option<u64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        soft_limit(libc::RLIMIT_SIGPENDING)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// The soft limit of `RLIMIT_NOFILE` (open descriptors), if any.
pub(crate) fn nofile_limit() -> Option<u64> {
    soft_limit(libc::RLIMIT_NOFILE)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// The soft limit of `resource`; `None` if unlimited or unknown.
fn soft_limit(resource: Resource) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit` for the duration of the call.
    let ret = unsafe { libc::getrlimit(resource, &mut lim) };
    if ret == 0 && lim.rlim_cur != libc::RLIM_INFINITY {
        #[allow(clippy::useless_conversion)] // `rlim_t` is not `u64` everywhere
        return Some(u64::from(lim.rlim_cur));
    }
    None
}

/// This process's id (`getpid`; async-signal-safe).
pub(crate) fn pid() -> libc::pid_t {
    // SAFETY: `getpid` has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// Set in a child created by `fork` (glibc runs the `pthread_atfork` handlers).
static FORKED: AtomicBool = AtomicBool::new(false);

extern "C" fn in_forked_child() {
    // Runs in the child right after `fork`: async-signal-safe (one atomic store).
    FORKED.store(true, Ordering::Relaxed);
}

/// Arranges for [`forked`] to tell a child forked after this call from its
/// parent. Called once, when the driver starts.
pub(crate) fn watch_fork() -> io::Result<()> {
    // SAFETY: `in_forked_child` is async-signal-safe and lives for the whole
    // program; the other handlers are none.
    let ret = unsafe { libc::pthread_atfork(None, None, Some(in_forked_child)) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// Whether this process is a child forked (without exec) after [`watch_fork`]:
/// glibc's AIO threads and aiofs's notifier thread did not survive the fork.
pub(crate) fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}
