//! The self-pipe: `pipe2(O_CLOEXEC | O_NONBLOCK)`, written from the signal handler.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Creates a non-blocking, close-on-exec pipe: `(read end, write end)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for `pipe2` to fill.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    super::cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // SAFETY: as above, for `pipe`.
        super::cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        for fd in fds {
            // SAFETY: `fd` was just returned by `pipe` and is open.
            unsafe {
                super::cvt(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
                super::cvt(libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK))?;
            }
        }
    }
    // SAFETY: `pipe2` succeeded: both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes `bytes` with one `write(2)`; async-signal-safe (no allocation, no lock).
///
/// Returns false if the pipe is full (or the write failed in any other way).
pub(crate) fn write_from_handler(fd: RawFd, bytes: &[u8]) -> bool {
    // SAFETY: `bytes` is valid for reads of its length; `write` is async-signal-safe.
    // A stale or closed `fd` makes `write` fail with EBADF, nothing worse.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    n == bytes.len() as isize
}

/// Reads what is available into `buf`; `Ok(0)` means the pipe is drained.
pub(crate) fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of its length and `fd` is open.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(err),
        }
    }
}

/// Whether any of `fds` has data to read now (`poll` with no wait).
pub(crate) fn any_readable(fds: &[BorrowedFd<'_>]) -> bool {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 2];
    for (p, fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd.as_raw_fd();
        p.events = libc::POLLIN;
    }
    let n = fds.len().min(pfds.len());
    // SAFETY: `pfds[..n]` is a valid array of `pollfd`, the descriptors are
    // borrowed (open); a timeout of 0 never blocks.
    let ret = unsafe { libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, 0) };
    ret > 0 && pfds[..n].iter().any(|p| p.revents & libc::POLLIN != 0)
}
