//! Descriptor ownership, and the small queries aiofs makes of a descriptor.
//!
//! An [`Fd`] owns one descriptor number. Requests hold it in an `Arc` until their
//! completion has been seen, so the number can never be closed and reused while
//! glibc may still run a request on it. [`Fd::take`] gives the number up to a
//! `std::fs::File` (`File::into_std`); the layers above make sure no request
//! can start on it after that.

use std::fs::File as StdFile;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::cvt;

/// Duplicates made by [`Fd::dup`] and not yet closed.
pub(crate) static DUPS_OPEN: AtomicU64 = AtomicU64::new(0);
/// Duplicates ever made by [`Fd::dup`].
pub(crate) static DUPS_OPENED: AtomicU64 = AtomicU64::new(0);

/// An open descriptor: closed when dropped, unless [`take`](Fd::take)n.
#[derive(Debug)]
pub(crate) struct Fd {
    raw: RawFd,
    /// Cleared by `take`: the number then belongs to someone else.
    owned: AtomicBool,
    /// A pool duplicate (counted in `DUPS_OPEN` while open).
    dup: bool,
}

impl Fd {
    pub(crate) fn new(fd: OwnedFd) -> Fd {
        Fd {
            raw: fd.into_raw_fd(),
            owned: AtomicBool::new(true),
            dup: false,
        }
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.raw
    }

    pub(crate) fn borrow(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is open while `self` lives: it is closed only by
        // `Drop`, and `take` is called only once no one uses the number (the
        // caller's contract); the borrow cannot outlive `self`.
        unsafe { BorrowedFd::borrow_raw(self.raw) }
    }

    /// The descriptor as a `std::fs::File` for the calls `std` already does
    /// well (metadata, `ftruncate`, `fchmod`); it is not closed afterwards.
    pub(crate) fn std(&self) -> ManuallyDrop<StdFile> {
        // SAFETY: as for `borrow`; `ManuallyDrop` keeps the `File` from closing a
        // descriptor it does not own.
        ManuallyDrop::new(unsafe { StdFile::from_raw_fd(self.raw) })
    }

    /// Gives up ownership: the number is returned and `Drop` will not close it.
    /// `None` if it was taken already.
    ///
    /// The caller makes sure no request is running or will start on it.
    pub(crate) fn take(&self) -> Option<OwnedFd> {
        if !self.owned.swap(false, Ordering::AcqRel) {
            return None;
        }
        if self.dup {
            DUPS_OPEN.fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: we owned the number (the flag was set) and give that ownership
        // to the returned `OwnedFd`; `Drop` no longer closes it.
        Some(unsafe { OwnedFd::from_raw_fd(self.raw) })
    }

    /// A duplicate (`F_DUPFD_CLOEXEC`) sharing the open file description;
    /// `pool`: one of aiofs's own (counted in `DUPS_OPEN`), not a user's clone.
    pub(crate) fn dup(&self, pool: bool) -> io::Result<Fd> {
        // SAFETY: `F_DUPFD_CLOEXEC` makes a new descriptor; it does not touch memory.
        let raw = cvt(unsafe { libc::fcntl(self.raw, libc::F_DUPFD_CLOEXEC, 0) })?;
        if pool {
            DUPS_OPEN.fetch_add(1, Ordering::Relaxed);
            DUPS_OPENED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Fd {
            raw,
            owned: AtomicBool::new(true),
            dup: pool,
        })
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.raw
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        if *self.owned.get_mut() {
            if self.dup {
                DUPS_OPEN.fetch_sub(1, Ordering::Relaxed);
            }
            // SAFETY: we own the number (never taken); nothing uses it any more
            // (every request holds an `Arc` of this `Fd`).
            drop(unsafe { OwnedFd::from_raw_fd(self.raw) });
        }
    }
}

/// The file status flags (`F_GETFL`): never waits for a device.
pub(crate) fn status_flags(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: `F_GETFL` only reads the flags of an open descriptor.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })
}

/// Whether positioned reads and writes work on the descriptor: `Ok(false)`
/// for a pipe, socket or tty (`lseek` fails with `ESPIPE`), and for a file
/// whose `pread` does although `lseek` succeeds (an `eventfd`, for one): glibc's
/// worker would fall back from `pread` to a plain `read` and consume it.
/// Never waits for a device.
pub(crate) fn seekable(fd: BorrowedFd<'_>) -> io::Result<bool> {
    if !seekable_regular(fd)? {
        return Ok(false);
    }
    let kind = file_type(fd)?;
    if kind == libc::S_IFREG || kind == libc::S_IFBLK {
        return Ok(true);
    }
    // Another kind (a character device, an anonymous inode): a `pread` of 0
    // bytes tells, without reading (the kernel checks for positioned reads
    // first). A descriptor not open for reading cannot be asked: allowed.
    if status_flags(fd)? & libc::O_ACCMODE == libc::O_WRONLY {
        return Ok(true);
    }
    let mut byte = 0u8;
    // SAFETY: a read of 0 bytes into a valid one-byte buffer.
    let ret = unsafe { libc::pread(fd.as_raw_fd(), (&raw mut byte).cast(), 0, 0) };
    if ret < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESPIPE) {
        return Ok(false);
    }
    // Any other error (`EISDIR`...) is the read's own: it will say so.
    Ok(true)
}

/// [`seekable`] for a descriptor known to be a regular file: whether `lseek`
/// works (a regular file may refuse it: a FUSE file opened as a stream, some
/// `/proc` and `debugfs` files).
pub(crate) fn seekable_regular(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: `lseek(fd, 0, SEEK_CUR)` changes nothing and touches no memory.
    let ret = unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_CUR) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        return if err.raw_os_error() == Some(libc::ESPIPE) {
            Ok(false)
        } else {
            Err(err)
        };
    }
    Ok(true)
}

/// `statx` of the open descriptor for `mask`, answered from the in-memory
/// inode (`AT_STATX_DONT_SYNC`: no device or server is asked).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn statx_cached(fd: BorrowedFd<'_>, mask: u32) -> io::Result<libc::statx> {
    // SAFETY: all-zero is a valid `statx` to be filled.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an empty path with `AT_EMPTY_PATH` names the open descriptor;
    // `stx` is valid for writes.
    cvt(unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
            mask,
            &mut stx,
        )
    })?;
    Ok(stx)
}

/// `fstat` of the open descriptor (off Linux).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: all-zero bytes are a valid `stat` to be filled.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes; the descriptor is open.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// The file type bits of `st_mode` (`S_IFREG`, ...), from the in-memory inode.
fn file_type(fd: BorrowedFd<'_>) -> io::Result<libc::mode_t> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let stx = statx_cached(fd, libc::STATX_TYPE)?;
        Ok(libc::mode_t::from(stx.stx_mode) & libc::S_IFMT)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Ok(fstat(fd)?.st_mode & libc::S_IFMT)
    }
}

/// The descriptor's offset (`lseek(SEEK_CUR)`).
pub(crate) fn offset(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: as in `seekable`.
    let ret = unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_CUR) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as u64)
    }
}

/// Sets the descriptor's offset (`lseek(SEEK_SET)`).
pub(crate) fn set_offset(fd: BorrowedFd<'_>, pos: u64) -> io::Result<()> {
    let pos = libc::off_t::try_from(pos)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "aiofs: offset past i64::MAX"))?;
    // SAFETY: `lseek` only sets the offset of an open descriptor.
    let ret = unsafe { libc::lseek(fd.as_raw_fd(), pos, libc::SEEK_SET) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The size of the file (`fstat`).
///
/// On a local filesystem this reads the in-memory inode of an open file; on a
/// network filesystem it may ask the server: call it off the runtime threads
/// where the size must be exact (`SeekFrom::End`).
pub(crate) fn size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: all-zero bytes are a valid `stat` to be filled.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes; the descriptor is open.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_size.max(0) as u64)
}

/// The size of the file as the kernel has it now, without asking a device or
/// a server (`statx` with `AT_STATX_DONT_SYNC`; `fstat` off Linux): may run
/// on a runtime thread.
pub(crate) fn cached_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        Ok(statx_cached(fd, libc::STATX_SIZE)?.stx_size)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Ok(fstat(fd)?.st_size.max(0) as u64)
    }
}

/// The alignment `O_DIRECT` transfers on this descriptor need: `(buffer
/// address, file offset and length)`, from `statx(STATX_DIOALIGN)`; `None` when
/// the filesystem does not say (or off Linux).
///
/// Asked with `AT_STATX_DONT_SYNC`: the answer comes from the in-memory inode
/// of the open file and the block device, never from a device or a server, so
/// it may run on a runtime thread.
pub(crate) fn direct_alignment(fd: BorrowedFd<'_>) -> Option<(u32, u32)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let stx = statx_cached(fd, libc::STATX_DIOALIGN).ok()?;
        if stx.stx_mask & libc::STATX_DIOALIGN == 0 {
            return None;
        }
        let pow2 = |v: u32| v.is_power_of_two().then_some(v);
        Some((
            pow2(stx.stx_dio_mem_align)?,
            pow2(stx.stx_dio_offset_align)?,
        ))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = fd;
        None
    }
}

/// Whether `flags` (from [`status_flags`]) include `O_DIRECT`.
pub(crate) fn is_direct(flags: i32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        flags & libc::O_DIRECT != 0
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let _ = flags;
        false
    }
}

/// Whether `flags` (from [`status_flags`]) include `O_APPEND`.
pub(crate) fn is_append(flags: i32) -> bool {
    flags & libc::O_APPEND != 0
}

/// What [`open_cached`] did.
#[derive(Debug)]
pub(crate) enum CachedOpen {
    /// A regular file, opened; `size` is its size as the kernel has it now.
    /// `O_NONBLOCK` was cleared again unless the caller asked for it.
    Regular { fd: OwnedFd, size: u64 },
    /// Another kind of file (a FIFO, a device, a directory), opened with
    /// `O_NONBLOCK` still set: without the wait an open without it may do
    /// (a FIFO's for a writer, a tty's for its carrier). Finish the open where
    /// waiting is allowed, and close this one there (its close may wait too).
    Special { fd: OwnedFd, fifo: bool },
    /// Not opened: the path is not all in the cache, the open would have to
    /// wait (a lease being broken), or the kernel cannot say. Open it where
    /// waiting is allowed; that open reports the real outcome.
    Elsewhere,
}

/// Whether `openat2` with `RESOLVE_CACHED` works here: unknown, yes, no.
#[cfg(any(target_os = "linux", target_os = "android"))]
static CACHED_OPEN: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
#[cfg(any(target_os = "linux", target_os = "android"))]
const CACHED_OPEN_YES: u8 = 1;
#[cfg(any(target_os = "linux", target_os = "android"))]
const CACHED_OPEN_NO: u8 = 2;

/// `openat2(AT_FDCWD, path, flags | O_CLOEXEC, RESOLVE_CACHED)`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn openat2_cached(path: &std::ffi::CStr, flags: i32) -> io::Result<OwnedFd> {
    /// `struct open_how` (`linux/openat2.h`), version 0 (24 bytes).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_CACHED,
    };
    // SAFETY: `path` is a NUL-terminated string and `how` a valid `open_how`
    // of the size given, both live for the call, which keeps no pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &raw const how,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `openat2` returned a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Whether `openat2` (Linux 5.6) with `RESOLVE_CACHED` (5.12) works here,
/// asked once with arguments valid wherever it does (an `O_PATH` open of
/// `/`): a caller's open may be refused for its own flags (`O_TMPFILE`
/// read-only, `O_DIRECT` where the filesystem refuses it, `O_NOATIME` on
/// another user's file), which says nothing about the next one. A seccomp
/// policy refusing `openat2` answers `EPERM` or `ENOSYS`: no.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn cached_open_works() -> bool {
    match CACHED_OPEN.load(Ordering::Relaxed) {
        CACHED_OPEN_YES => return true,
        CACHED_OPEN_NO => return false,
        _ => {}
    }
    let answer = match openat2_cached(c"/", libc::O_PATH) {
        // EAGAIN: the flag is known (an older kernel says EINVAL).
        Ok(_) => CACHED_OPEN_YES,
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => CACHED_OPEN_YES,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EPERM | libc::EOPNOTSUPP)
            ) =>
        {
            CACHED_OPEN_NO
        }
        // No descriptor or memory to spare now (`EMFILE`, `ENOMEM`): ask again
        // next time.
        Err(_) => return false,
    };
    CACHED_OPEN.store(answer, Ordering::Relaxed);
    answer == CACHED_OPEN_YES
}

/// Opens `path` with `flags` (`O_CLOEXEC` added) if it can be done without
/// waiting, so that it may run on a runtime thread:
///
/// - every component of the path must be in the kernel's lookup cache
///   (`openat2` with `RESOLVE_CACHED`): no device or server is asked;
/// - the open itself must not wait: `O_NONBLOCK` is added (as io_uring's
///   inline open does), so a FIFO does not wait for a writer and a file with
///   a lease being broken fails with `EWOULDBLOCK` (then: `Elsewhere`);
/// - only a regular file is kept ([`CachedOpen::Regular`], with its size:
///   one `statx` with `AT_STATX_DONT_SYNC`, from the in-memory inode); any
///   other kind is handed back still non-blocking ([`CachedOpen::Special`]).
///
/// What it cannot avoid: a filesystem whose open asks a daemon (FUSE sends
/// `FUSE_OPEN` and waits for the answer) or a fanotify permission listener.
///
/// # Errors
///
/// Only those the cache answers, which an open elsewhere would repeat:
/// `ENOENT` (a cached negative entry), `ENOTDIR`, `EACCES`, `ELOOP`,
/// `ENAMETOOLONG`; and `InvalidInput` for a path with a NUL byte. Any other
/// failure is [`CachedOpen::Elsewhere`]: the open elsewhere reports it.
pub(crate) fn open_cached(path: &std::path::Path, flags: i32) -> io::Result<CachedOpen> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsFd;
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "file name contained an unexpected NUL byte",
            )
        })?;
        if !cached_open_works() {
            return Ok(CachedOpen::Elsewhere);
        }
        let fd = match openat2_cached(&path, flags | libc::O_NONBLOCK) {
            Ok(fd) => fd,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(
                        libc::ENOENT
                        | libc::ENOTDIR
                        | libc::EACCES
                        | libc::ELOOP
                        | libc::ENAMETOOLONG,
                    ) => Err(e),
                    // EAGAIN: not all cached, or a lease being broken (or a
                    // driver that would wait); EINVAL, EPERM...: flags openat2
                    // refuses where open(2) may not, or a device refusing a
                    // non-blocking open: the blocking open says what holds.
                    _ => Ok(CachedOpen::Elsewhere),
                };
            }
        };
        let Ok(stx) = statx_cached(fd.as_fd(), libc::STATX_TYPE | libc::STATX_SIZE) else {
            // The kind is unknown: as any kind but a regular file.
            return Ok(CachedOpen::Special { fd, fifo: false });
        };
        let kind = libc::mode_t::from(stx.stx_mode) & libc::S_IFMT;
        if kind != libc::S_IFREG {
            return Ok(CachedOpen::Special {
                fd,
                fifo: kind == libc::S_IFIFO,
            });
        }
        if flags & libc::O_NONBLOCK == 0 && clear_nonblock(fd.as_fd(), flags).is_err() {
            return Ok(CachedOpen::Special { fd, fifo: false });
        }
        Ok(CachedOpen::Regular {
            fd,
            size: stx.stx_size,
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (path, flags);
        Ok(CachedOpen::Elsewhere)
    }
}

/// Clears the `O_NONBLOCK` [`open_cached`] added, leaving the other status
/// flags as `flags` (those it was opened with) made them (`F_SETFL` changes
/// only `O_APPEND`, `O_NONBLOCK`, `O_DIRECT`, `O_NOATIME` and `O_ASYNC`).
pub(crate) fn clear_nonblock(fd: BorrowedFd<'_>, flags: i32) -> io::Result<()> {
    // SAFETY: `F_SETFL` only sets the status flags of an open descriptor.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) })?;
    Ok(())
}

/// Waits until the FIFO whose reading end `fd` is (opened with
/// `O_NONBLOCK`, so the open did not wait) has a writer, or had one since
/// `fd` was opened: what an open without `O_NONBLOCK` waits for. It may wait
/// forever: call it where waiting is allowed.
///
/// Linux tells in three ways: data to read (`POLLIN`); a writer that came and
/// went (`POLLHUP`, which a FIFO's reading end reports only once a writer was
/// seen since it was opened); a writer there now that wrote nothing yet
/// (`tee` of one byte into a pipe of ours, which does not consume it, fails
/// with `EAGAIN` where, with no writer, it returns 0). A writer's open wakes
/// no `poll`: that last case is checked every few milliseconds (1 ms, then
/// doubling up to 50 ms). Without `tee` (a pipe refused), only the first two.
pub(crate) fn wait_for_writer(fd: BorrowedFd<'_>) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let scratch = super::pipe::pipe().ok();
    let mut timeout_ms: libc::c_int = 0;
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid `pollfd` for the call.
        let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ret > 0 {
            return Ok(()); // POLLIN, POLLHUP (or POLLERR: the read will say)
        }
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some((_, into)) = &scratch {
            // SAFETY: both descriptors are open; `tee` copies at most one byte
            // between two pipes, touching no memory of ours.
            let n =
                unsafe { libc::tee(fd.as_raw_fd(), into.as_raw_fd(), 1, libc::SPLICE_F_NONBLOCK) };
            match n {
                0 => {} // no writer yet
                n if n > 0 => return Ok(()),
                _ if io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) => {
                    return Ok(());
                }
                _ => {} // cannot tell: poll on
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            timeout_ms = -1;
            continue;
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            timeout_ms = if scratch.is_some() {
                (timeout_ms * 2).clamp(1, 50)
            } else {
                -1
            };
        }
    }
}
