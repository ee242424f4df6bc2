//! The operating system: the only code in the crate that calls `libc`.
//!
//! Everything here is a small `pub(crate)` function or type returning
//! `io::Result`; the layers above never see a raw pointer.

pub(crate) mod aio;
pub(crate) mod fd;
pub(crate) mod nowait;
pub(crate) mod pipe;
pub(crate) mod signal;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod signalfd;

use std::io;

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
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid, writable `rlimit` for the duration of the call.
        let ret = unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut lim) };
        if ret == 0 && lim.rlim_cur != libc::RLIM_INFINITY {
            #[allow(clippy::useless_conversion)] // `rlim_t` is not `u64` everywhere
            return Some(u64::from(lim.rlim_cur));
        }
        None
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}
