//! Descriptor ownership: one owner per fd, shared by every request that uses it.
//!
//! A request holds an [`FdRef`] until its completion has been seen, so the
//! descriptor number can never be closed and reused while glibc may still run
//! the request on it.

use std::fs::File as StdFile;
use std::io::{self, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

const SEEK_UNKNOWN: u8 = 0;
const SEEK_YES: u8 = 1;
const SEEK_NO: u8 = 2;

/// An open descriptor, shared by a `File` and its requests.
#[derive(Debug)]
pub(crate) struct Fd {
    file: StdFile,
    /// Whether positioned I/O works on it (`lseek` succeeds), cached at first use.
    seekable: AtomicU8,
    /// Set while `into_std` waits for the other references to go.
    waiting: AtomicBool,
    /// Woken when a reference is dropped while `waiting` is set.
    waiter: Arc<AtomicWaker>,
    /// Bumped when a write or `set_len` finishes: read-ahead older than that is stale.
    epoch: AtomicU64,
    /// `O_DIRECT` alignment, cached: 0 unknown, `NOT_DIRECT`, or `mem << 32 | offset`.
    direct: AtomicU64,
    /// The file status flags (`F_GETFL`), read once: `FLAGS_UNKNOWN` until then.
    /// They are shared with every duplicate, and aiofs never changes them.
    flags: AtomicI32,
    /// Set when the filesystem refused `preadv2(RWF_NOWAIT)`: reads take the AIO
    /// path only, for good.
    no_nowait: AtomicBool,
}

const FLAGS_UNKNOWN: i32 = i32::MIN;

const NOT_DIRECT: u64 = u64::MAX;
/// The `O_DIRECT` alignment when the filesystem does not say (`statx` without
/// `STATX_DIOALIGN`): a page, safe on every Linux filesystem and device.
const DEFAULT_DIRECT_ALIGN: u32 = 4096;

/// A counted reference to an [`Fd`]: cloning it keeps the descriptor open.
#[derive(Debug)]
pub(crate) struct FdRef {
    // Field order matters: `fd` is released before `wake` runs.
    fd: Arc<Fd>,
    wake: WakeOnDrop,
}

#[derive(Debug, Default)]
struct WakeOnDrop(Option<Arc<AtomicWaker>>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.wake();
        }
    }
}

impl FdRef {
    pub(crate) fn new(file: StdFile) -> FdRef {
        FdRef {
            fd: Arc::new(Fd {
                file,
                seekable: AtomicU8::new(SEEK_UNKNOWN),
                waiting: AtomicBool::new(false),
                waiter: Arc::new(AtomicWaker::new()),
                epoch: AtomicU64::new(0),
                direct: AtomicU64::new(0),
                flags: AtomicI32::new(FLAGS_UNKNOWN),
                no_nowait: AtomicBool::new(false),
            }),
            wake: WakeOnDrop(None),
        }
    }

    /// The standard file, for the calls `std` already does well.
    pub(crate) fn std(&self) -> &StdFile {
        &self.fd.file
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.file.as_raw_fd()
    }

    pub(crate) fn borrow(&self) -> BorrowedFd<'_> {
        self.fd.file.as_fd()
    }

    /// How many references to this descriptor exist: a measure of how busy it
    /// is (each request in flight holds one).
    pub(crate) fn holders(&self) -> usize {
        Arc::strong_count(&self.fd)
    }

    /// The write epoch: changes whenever a write or `set_len` finishes.
    pub(crate) fn epoch(&self) -> u64 {
        self.fd.epoch.load(Ordering::Acquire)
    }

    /// A write or `set_len` finished.
    pub(crate) fn bump_epoch(&self) {
        self.fd.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// For an `O_DIRECT` descriptor, the alignment its transfers need:
    /// `(buffer address, file offset and length)`, from `statx(STATX_DIOALIGN)`,
    /// 4096 when the filesystem does not say. `None` without `O_DIRECT`.
    pub(crate) fn direct_alignment(&self) -> Option<(usize, usize)> {
        let cached = match self.fd.direct.load(Ordering::Relaxed) {
            0 => {
                let v = self.query_direct();
                self.fd.direct.store(v, Ordering::Relaxed);
                v
            }
            v => v,
        };
        (cached != NOT_DIRECT).then_some(((cached >> 32) as usize, (cached & 0xffff_ffff) as usize))
    }

    fn query_direct(&self) -> u64 {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            if self
                .status_flags()
                .is_none_or(|flags| flags & libc::O_DIRECT == 0)
            {
                return NOT_DIRECT;
            }
            // SAFETY: all-zero is a valid `statx` to be filled.
            let mut stx: libc::statx = unsafe { std::mem::zeroed() };
            // SAFETY: an empty path with `AT_EMPTY_PATH` names the open descriptor;
            // `stx` is valid for writes.
            let ret = unsafe {
                libc::statx(
                    self.raw(),
                    c"".as_ptr(),
                    libc::AT_EMPTY_PATH,
                    libc::STATX_DIOALIGN,
                    &mut stx,
                )
            };
            let (mut mem, mut off) = (DEFAULT_DIRECT_ALIGN, DEFAULT_DIRECT_ALIGN);
            if ret == 0 && stx.stx_mask & libc::STATX_DIOALIGN != 0 {
                if stx.stx_dio_mem_align.is_power_of_two() {
                    mem = stx.stx_dio_mem_align;
                }
                if stx.stx_dio_offset_align.is_power_of_two() {
                    off = stx.stx_dio_offset_align;
                }
            }
            (u64::from(mem) << 32) | u64::from(off)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            NOT_DIRECT
        }
    }

    /// Whether a page-cache-only read (`RWF_NOWAIT`) may be tried: not on
    /// `O_DIRECT` (it would wait for the device on the caller's thread), not
    /// once the filesystem refused it.
    pub(crate) fn nowait_allowed(&self) -> bool {
        !self.fd.no_nowait.load(Ordering::Relaxed) && self.direct_alignment().is_none()
    }

    /// The filesystem refused `RWF_NOWAIT`: never try it again on this descriptor.
    pub(crate) fn refuse_nowait(&self) {
        self.fd.no_nowait.store(true, Ordering::Relaxed);
    }

    /// Whether the descriptor was opened with `O_APPEND` (false if unknown).
    pub(crate) fn is_append(&self) -> bool {
        self.status_flags()
            .is_some_and(|flags| flags & libc::O_APPEND != 0)
    }

    /// `F_GETFL`, cached; `None` if it failed.
    fn status_flags(&self) -> Option<i32> {
        let flags = match self.fd.flags.load(Ordering::Relaxed) {
            FLAGS_UNKNOWN => {
                // SAFETY: `F_GETFL` only reads the flags of an open descriptor we own.
                let flags = unsafe { libc::fcntl(self.raw(), libc::F_GETFL) };
                if flags == -1 {
                    return None;
                }
                self.fd.flags.store(flags, Ordering::Relaxed);
                flags
            }
            flags => flags,
        };
        Some(flags)
    }

    /// Refuses a descriptor that cannot seek (pipe, socket, tty) with `ESPIPE`.
    ///
    /// glibc's worker falls back from `pread` to a plain `read` on `ESPIPE`, which
    /// would consume a stream: such descriptors must never reach `aio_read`.
    pub(crate) fn check_seekable(&self) -> io::Result<()> {
        match self.fd.seekable.load(Ordering::Relaxed) {
            SEEK_YES => Ok(()),
            SEEK_NO => Err(espipe()),
            _ => match (&self.fd.file).stream_position() {
                Ok(_) => {
                    self.fd.seekable.store(SEEK_YES, Ordering::Relaxed);
                    Ok(())
                }
                Err(e) if e.raw_os_error() == Some(libc::ESPIPE) => {
                    self.fd.seekable.store(SEEK_NO, Ordering::Relaxed);
                    Err(espipe())
                }
                // Any other error (e.g. EBADF) is not cached: report it as is.
                Err(e) => Err(e),
            },
        }
    }

    /// Ready once this is the only reference left.
    pub(crate) fn poll_unique(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.fd.waiting.store(true, Ordering::SeqCst);
        self.fd.waiter.register(cx.waker());
        if Arc::strong_count(&self.fd) == 1 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The standard file back, if this is the only reference.
    pub(crate) fn try_unwrap(self) -> Result<StdFile, FdRef> {
        let fd = Arc::clone(&self.fd);
        drop(self);
        match Arc::try_unwrap(fd) {
            Ok(inner) => Ok(inner.file),
            Err(fd) => Err(FdRef {
                fd,
                wake: WakeOnDrop(None),
            }),
        }
    }
}

impl Clone for FdRef {
    fn clone(&self) -> FdRef {
        FdRef {
            fd: Arc::clone(&self.fd),
            wake: WakeOnDrop(None),
        }
    }
}

impl Drop for FdRef {
    fn drop(&mut self) {
        // `into_std` is waiting: wake it once our count is gone (`fd` drops first).
        if self.fd.waiting.load(Ordering::SeqCst) {
            self.wake.0 = Some(Arc::clone(&self.fd.waiter));
        }
    }
}

/// `ESPIPE` ("Illegal seek", `ErrorKind::NotSeekable`), as `pread` would give.
fn espipe() -> io::Error {
    io::Error::from_raw_os_error(libc::ESPIPE)
}
