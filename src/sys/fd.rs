//! Descriptor ownership: one owner per fd, shared by every request that uses it.
//!
//! A request holds an [`FdRef`] until its completion has been seen, so the
//! descriptor number can never be closed and reused while glibc may still run
//! the request on it.

use std::fs::File as StdFile;
use std::io::{self, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
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
}

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

    /// The write epoch: changes whenever a write or `set_len` finishes.
    pub(crate) fn epoch(&self) -> u64 {
        self.fd.epoch.load(Ordering::Acquire)
    }

    /// A write or `set_len` finished.
    pub(crate) fn bump_epoch(&self) {
        self.fd.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the descriptor was opened with `O_APPEND` (false if unknown).
    pub(crate) fn is_append(&self) -> bool {
        // SAFETY: `F_GETFL` only reads the flags of an open descriptor we own.
        let flags = unsafe { libc::fcntl(self.raw(), libc::F_GETFL) };
        flags != -1 && flags & libc::O_APPEND != 0
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
