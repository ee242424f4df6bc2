//! `signalfd`: completion signals read as data by the notifier thread, when the
//! application blocks the signal in its own threads (Linux).
//!
//! A signal that every thread blocks stays pending on the process; the
//! notifier thread reads it from a `signalfd` (many per `read`), with its token
//! in `ssi_ptr`. No thread is interrupted to run a handler. Signals that do
//! reach a thread that does not block them still run the action of
//! [`super::signal`]: every completion is seen exactly once either way (the
//! kernel dequeues each signal once).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A signal set holding only `signo`.
fn set_of(signo: i32) -> io::Result<libc::sigset_t> {
    // SAFETY: an all-zero `sigset_t` is valid storage for `sigemptyset` to fill.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid for writes.
    super::cvt(unsafe { libc::sigemptyset(&mut set) })?;
    // SAFETY: `set` is initialised; a bad `signo` fails with EINVAL.
    super::cvt(unsafe { libc::sigaddset(&mut set, signo) })?;
    Ok(set)
}

/// Blocks `signo` in the calling thread (`pthread_sigmask(SIG_BLOCK)`).
pub(crate) fn block_in_this_thread(signo: i32) -> io::Result<()> {
    let set = set_of(signo)?;
    // SAFETY: `set` is a valid signal set; the old mask is not asked for.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// A non-blocking, close-on-exec `signalfd` for `signo`.
pub(crate) fn open(signo: i32) -> io::Result<OwnedFd> {
    let set = set_of(signo)?;
    // SAFETY: -1 asks for a new descriptor; `set` is a valid signal set.
    let fd =
        super::cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    // SAFETY: `signalfd` returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads the pending completion signals: appends the token of each `SI_ASYNCIO`
/// one to `tokens`, returns how many signals were read (0: none pending).
pub(crate) fn read(fd: &OwnedFd, tokens: &mut Vec<usize>) -> io::Result<usize> {
    const BATCH: usize = 64;
    // SAFETY: all-zero bytes are a valid `signalfd_siginfo` (integers only).
    let mut infos: [libc::signalfd_siginfo; BATCH] = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    let mut total = 0;
    loop {
        // SAFETY: `infos` is valid for writes of `BATCH * size` bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), infos.as_mut_ptr().cast(), BATCH * size) };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(total),
                _ => return Err(err),
            }
        }
        let count = n as usize / size;
        for info in &infos[..count] {
            if info.ssi_code == libc::SI_ASYNCIO {
                tokens.push(info.ssi_ptr as usize);
            }
        }
        total += count;
        if count < BATCH {
            return Ok(total);
        }
    }
}
