//! `preadv2(RWF_NOWAIT)`: a read served from the page cache on the calling
//! thread, or refused at once (`EAGAIN`) when it would have to wait for the
//! device.
//!
//! A cached 4 KiB read costs about a microsecond this way, against a round trip
//! through glibc's AIO thread, the completion signal and a wake-up for the AIO
//! path. Linux only; elsewhere every read takes the AIO path.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::buf::IoBufMut;

/// Test seam: this many more reads that would return data report 0 bytes
/// instead, as Linux 5.9 and 5.10 may do (`man preadv2`, BUGS).
static FAKE_EOF: AtomicU64 = AtomicU64::new(0);

/// Makes the next `count` page-cache reads that would return data report 0
/// bytes instead (a test seam for the false end of file of Linux 5.9/5.10).
pub(crate) fn fake_eof(count: u64) {
    FAKE_EOF.store(count, Ordering::SeqCst);
}

fn take_fake_eof() -> bool {
    FAKE_EOF
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}

/// What a page-cache-only read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// This many bytes were read into the buffer. 0 is NOT proof of the end of
    /// the file: Linux 5.9 and 5.10 may return 0 before it (`man preadv2`).
    Read(usize),
    /// The data is not (all) in the page cache: nothing was read.
    Miss,
    /// The descriptor's filesystem (or the kernel) refuses `RWF_NOWAIT`.
    Unsupported,
    /// Another error: the AIO path will meet it and report it.
    Failed,
}

/// Reads `buf[off..bytes_total()]` from position `pos` if the page cache holds
/// it, setting the buffer's initialised length to `off + n`. The first `off`
/// bytes of `buf` must be initialised; the caller checked `pos + len <= i64::MAX`.
pub(crate) fn read<B: IoBufMut>(fd: BorrowedFd<'_>, buf: &mut B, off: usize, pos: u64) -> Outcome {
    #[cfg(any(
        all(target_os = "linux", any(target_env = "gnu", target_env = "musl")),
        target_os = "android"
    ))]
    {
        let len = buf.bytes_total().saturating_sub(off);
        let iov = libc::iovec {
            iov_base: buf.stable_mut_ptr().wrapping_add(off).cast(),
            iov_len: len,
        };
        // SAFETY: `iov` describes `buf[off..bytes_total()]`, valid for writes
        // (`IoBufMut`) and exclusively borrowed for the call; `fd` is borrowed, so
        // open. The call is synchronous: nothing touches the buffer after it.
        let n = unsafe {
            libc::preadv2(
                fd.as_raw_fd(),
                &iov,
                1,
                pos as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        if n > 0 && take_fake_eof() {
            // The bytes read stay beyond the buffer's initialised length.
            return Outcome::Read(0);
        }
        if n >= 0 {
            let n = n as usize;
            // SAFETY: the kernel wrote `n <= len` bytes at `buf[off..]`; the first
            // `off` bytes were initialised by the caller.
            unsafe { buf.set_init(off + n) };
            return Outcome::Read(n);
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Outcome::Miss,
            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS) => {
                Outcome::Unsupported
            }
            _ => Outcome::Failed,
        }
    }
    #[cfg(not(any(
        all(target_os = "linux", any(target_env = "gnu", target_env = "musl")),
        target_os = "android"
    )))]
    {
        let _ = (fd, buf, off, pos);
        Outcome::Unsupported
    }
}
