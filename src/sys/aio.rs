//! POSIX AIO: the control block and the `aio_*` calls.
//!
//! `aio_cancel` is deliberately absent: on glibc 2.36, cancelling the request at
//! the head of a descriptor's queue strands the requests queued behind it.
//!
//! An [`Aiocb`] owns everything the kernel-side worker touches: the `aiocb`
//! itself (boxed, so its address is stable), the buffer its `aio_buf` points
//! into, and a reference to the descriptor. Because it owns them, submitting is
//! a safe operation: the only way to free that memory is to drop the `Aiocb`,
//! and dropping one whose request is still in progress leaks it instead.

use std::any::Any;
use std::cell::UnsafeCell;
use std::io;
use std::mem;
use std::ptr::NonNull;
use std::sync::Arc;

use super::fd::Fd;
use crate::buf::{IoBuf, IoBufMut};

/// Which `aio_fsync` operation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncMode {
    /// `O_SYNC`: data and metadata, as `fsync(2)`.
    All,
    /// `O_DSYNC`: data, as `fdatasync(2)`.
    Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Sync(SyncMode),
}

/// What `aio_error` says of a submitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// `EINPROGRESS`: the worker may still touch the aiocb and the buffer.
    InProgress,
    /// Finished; `0` or the request's `errno`. `aio_return` may now be called once.
    Done(i32),
}

/// How the finished request says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notify {
    /// `SIGEV_SIGNAL` with this signal number, carrying this token.
    Signal(libc::c_int, usize),
    /// `SIGEV_NONE`: no signal; only `aio_error` tells. glibc can always keep
    /// such a request's result (no signal queue to overflow).
    Quiet,
}

/// The heap block: the aiocb, and the buffer it points into.
///
/// Allocated once and reached only through a raw pointer from
/// `Box::into_raw` until the request is over: glibc's worker writes into it
/// through pointers taken at submission, so it is never moved and never
/// reached through a Rust reference while in flight.
struct Block<B> {
    cb: UnsafeCell<libc::aiocb>,
    buf: B,
    /// Where in `buf` the transfer starts.
    off: usize,
}

/// One AIO request: its control block, buffer and descriptor, owned together.
pub(crate) struct Aiocb {
    /// `Box::into_raw` of a `Block<B>`; freed by `Drop` or `into_parts` only
    /// once the request is not in flight, leaked otherwise.
    block: NonNull<dyn Any>,
    /// The aiocb inside `block`.
    cb: NonNull<libc::aiocb>,
    /// Keeps `aio_fildes` open until the request is over.
    fd: Arc<Fd>,
    kind: Kind,
    /// Submitted and not yet reaped with `aio_return`.
    in_flight: bool,
    /// Running it twice does no harm (not a write to an `O_APPEND` descriptor).
    idempotent: bool,
}

// SAFETY: the block (its buffer `B: Send`) and the aiocb pointing into it are
// owned by this value alone; moving it to another thread moves that ownership.
// The raw pointers are never shared with another Rust value.
unsafe impl Send for Aiocb {}

impl std::fmt::Debug for Aiocb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aiocb")
            .field("kind", &self.kind)
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl Aiocb {
    /// A read into `buf[off..bytes_total()]` from file position `pos`.
    pub(crate) fn read<B: IoBufMut>(fd: Arc<Fd>, buf: B, off: usize, pos: u64) -> Aiocb {
        Aiocb::new(fd, Kind::Read, buf, off, pos, |buf, off| {
            let len = buf.bytes_total().saturating_sub(off);
            (buf.stable_mut_ptr().wrapping_add(off), len)
        })
    }

    /// A write of `buf[off..bytes_init()]` at file position `pos`; `append`:
    /// the descriptor is `O_APPEND` (running it twice would append twice).
    pub(crate) fn write<B: IoBuf>(
        fd: Arc<Fd>,
        buf: B,
        off: usize,
        pos: u64,
        append: bool,
    ) -> Aiocb {
        let mut cb = Aiocb::new(fd, Kind::Write, buf, off, pos, |buf, off| {
            let len = buf.bytes_init().saturating_sub(off);
            // glibc only reads through `aio_buf` for a write.
            (buf.stable_ptr().wrapping_add(off).cast_mut(), len)
        });
        cb.idempotent = !append;
        cb
    }

    /// An `aio_fsync` of the descriptor.
    pub(crate) fn sync(fd: Arc<Fd>, mode: SyncMode) -> Aiocb {
        Aiocb::new(fd, Kind::Sync(mode), (), 0, 0, |_, _| {
            (std::ptr::null_mut(), 0)
        })
    }

    /// Places the block on the heap, then points its aiocb at the buffer in
    /// place (`span` gives the transfer's start and length).
    fn new<B: Send + 'static>(
        fd: Arc<Fd>,
        kind: Kind,
        buf: B,
        off: usize,
        pos: u64,
        span: fn(&mut B, usize) -> (*mut u8, usize),
    ) -> Aiocb {
        // SAFETY: `aiocb` is a plain C struct for which all-zero bytes is a valid
        // value (null pointers, zero counts, `SIGEV_NOTIFY` 0 is `SIGEV_SIGNAL`,
        // set again before submission).
        let zeroed: libc::aiocb = unsafe { mem::zeroed() };
        let raw: *mut Block<B> = Box::into_raw(Box::new(Block {
            cb: UnsafeCell::new(zeroed),
            buf,
            off,
        }));
        // SAFETY: `raw` is a fresh, unique allocation; nothing else refers to
        // it until this function returns. The buffer's pointer is taken after
        // the buffer reached its final place, and `B: IoBuf` keeps it stable.
        let cb = unsafe {
            let (ptr, len) = span(&mut (*raw).buf, off);
            let cb = UnsafeCell::raw_get(&raw const (*raw).cb);
            (*cb).aio_fildes = fd.raw();
            (*cb).aio_lio_opcode = match kind {
                Kind::Read => libc::LIO_READ,
                Kind::Write => libc::LIO_WRITE,
                Kind::Sync(_) => libc::LIO_NOP,
            };
            (*cb).aio_buf = ptr.cast();
            (*cb).aio_nbytes = len;
            // The caller checked `pos + len <= i64::MAX`.
            (*cb).aio_offset = pos as libc::off_t;
            (*cb).aio_sigevent.sigev_notify = libc::SIGEV_NONE;
            cb
        };
        let block: *mut dyn Any = raw;
        // `Box::into_raw` never returns null, and `cb` points into that box.
        let (Some(block), Some(cb)) = (NonNull::new(block), NonNull::new(cb)) else {
            unreachable!("aiofs: internal: Box::into_raw returned null");
        };
        Aiocb {
            block,
            cb,
            fd,
            kind,
            in_flight: false,
            idempotent: true,
        }
    }

    /// Sets how the finished request is announced.
    pub(crate) fn set_notify(&mut self, notify: Notify) {
        assert!(!self.in_flight, "aiofs: internal: notify set in flight");
        let cb = self.cb.as_ptr();
        // SAFETY: the request is not in flight (asserted), so no other thread
        // reads or writes the aiocb.
        unsafe {
            match notify {
                Notify::Signal(signo, token) => {
                    (*cb).aio_sigevent.sigev_notify = libc::SIGEV_SIGNAL;
                    (*cb).aio_sigevent.sigev_signo = signo;
                    (*cb).aio_sigevent.sigev_value = libc::sigval {
                        sival_ptr: token as *mut libc::c_void,
                    };
                }
                Notify::Quiet => (*cb).aio_sigevent.sigev_notify = libc::SIGEV_NONE,
            }
        }
    }

    /// Hands the request to glibc (`aio_read`, `aio_write` or `aio_fsync`).
    ///
    /// On success the request is in flight until [`Aiocb::status`] says `Done`
    /// and [`Aiocb::reap`] has been called.
    pub(crate) fn submit(&mut self) -> io::Result<()> {
        assert!(!self.in_flight, "aiofs: internal: request submitted twice");
        let cb = self.cb.as_ptr();
        // SAFETY: `cb` points into a heap block that also owns the buffer
        // `aio_buf` points into; `self.fd` keeps `aio_fildes` open. The block is
        // only freed once the request is not in flight (`Drop` leaks it while
        // `aio_error` says `EINPROGRESS`), so everything the worker touches
        // outlives the request.
        let ret = unsafe {
            match self.kind {
                Kind::Read => libc::aio_read(cb),
                Kind::Write => libc::aio_write(cb),
                Kind::Sync(SyncMode::All) => libc::aio_fsync(libc::O_SYNC, cb),
                Kind::Sync(SyncMode::Data) => libc::aio_fsync(libc::O_DSYNC, cb),
            }
        };
        super::cvt(ret)?;
        self.in_flight = true;
        Ok(())
    }

    /// Whether running the request a second time does no harm (positioned
    /// requests; not a write to an `O_APPEND` descriptor).
    pub(crate) fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Whether it writes to the file.
    pub(crate) fn is_write(&self) -> bool {
        self.kind == Kind::Write
    }

    /// Whether `lio_listio` can carry this request (reads and writes).
    pub(crate) fn is_listable(&self) -> bool {
        matches!(self.kind, Kind::Read | Kind::Write)
    }

    /// `aio_error`: the truth about a submitted request.
    pub(crate) fn status(&self) -> Status {
        if !self.in_flight {
            return Status::Done(0);
        }
        // SAFETY: `aio_error` only reads the aiocb, which is live (owned by the
        // block) and was submitted.
        match unsafe { libc::aio_error(self.cb.as_ptr()) } {
            libc::EINPROGRESS => Status::InProgress,
            // EINVAL: glibc does not know this aiocb; nothing can be running on it.
            -1 => Status::Done(
                io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EINVAL),
            ),
            code => Status::Done(code),
        }
    }

    /// `aio_return`, called exactly once after `status` said `Done(code)`.
    pub(crate) fn reap(&mut self, code: i32) -> io::Result<usize> {
        debug_assert!(self.in_flight);
        // SAFETY: the request is finished (`aio_error` was not `EINPROGRESS`), so
        // the worker no longer touches the aiocb; `aio_return` reads it once.
        let ret = unsafe { libc::aio_return(self.cb.as_ptr()) };
        self.in_flight = false;
        if code != 0 {
            Err(io::Error::from_raw_os_error(code))
        } else if ret < 0 {
            Err(io::Error::other(
                "aiofs: aio_return reported failure without an error code",
            ))
        } else {
            Ok(ret as usize)
        }
    }

    /// The buffer of a read back, its initialised length set to `off + n` when
    /// the OS reported `n` bytes read.
    pub(crate) fn into_read_buf<B: IoBufMut>(self, n: Option<usize>) -> B {
        let (mut buf, off) = self.into_parts::<B>();
        if let Some(n) = n {
            // SAFETY: the read is finished and `aio_return` reported `n` bytes written
            // into `buf[off..off + n]`; the bytes before `off` were initialised by the
            // caller (it only starts at `off` after an earlier read filled them).
            unsafe { buf.set_init(off + n) };
        }
        buf
    }

    /// The buffer back (write or fsync).
    pub(crate) fn into_buf<B: Send + 'static>(self) -> B {
        self.into_parts::<B>().0
    }

    fn into_parts<B: Send + 'static>(self) -> (B, usize) {
        assert!(
            !self.in_flight,
            "aiofs: internal: buffer taken while in flight"
        );
        let this = mem::ManuallyDrop::new(self);
        // SAFETY: `block` came from `Box::into_raw` and is freed only here or in
        // `Drop`, which will not run (`ManuallyDrop`); the request is not in
        // flight, so no worker refers to it.
        let block: Box<dyn Any> = unsafe { Box::from_raw(this.block.as_ptr()) };
        // SAFETY: `fd` is read out once and `this` is never used again.
        drop(unsafe { std::ptr::read(&this.fd) });
        match block.downcast::<Block<B>>() {
            Ok(block) => (block.buf, block.off),
            // Each op builds its aiocb from a `B` and asks for the same `B` back.
            Err(_) => unreachable!("aiofs: internal: buffer type mismatch"),
        }
    }
}

impl Drop for Aiocb {
    fn drop(&mut self) {
        if self.in_flight {
            match self.status() {
                Status::Done(code) => {
                    // Finished but never reaped: consume glibc's record, then free.
                    let _ = self.reap(code);
                }
                // The worker may still write into the aiocb and the buffer: never
                // free them. The table never drops an in-flight request; this is the
                // last line of defence, and it costs a leak instead of corruption
                // (the descriptor stays open too).
                Status::InProgress => {
                    mem::forget(Arc::clone(&self.fd));
                    return;
                }
            }
        }
        // SAFETY: `block` came from `Box::into_raw`; the request is not in flight,
        // so no worker refers to it, and it is not used again.
        drop(unsafe { Box::from_raw(self.block.as_ptr()) });
    }
}

/// The most requests one `lio_listio` call takes. glibc has no limit
/// (`AIO_LISTIO_MAX` is undefined) but keeps a pointer per request on the
/// caller's stack: 1024 keeps that at 8 KiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) const LISTIO_MAX: usize = 1024;
/// The most requests one `lio_listio` call takes (`AIO_LISTIO_MAX`). Untested.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) const LISTIO_MAX: usize = 16;

/// A value glibc never stores in `__error_code`: marks an aiocb that
/// `lio_listio` did not enqueue.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
const NOT_QUEUED: libc::c_int = -4_242;

// glibc's 64-bit layout: `__error_code` (int) sits 16 bytes before `aio_offset`,
// with `__return_value` (ssize_t) between them.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
const _: () = {
    assert!(mem::size_of::<libc::aiocb>() == 168);
    assert!(mem::offset_of!(libc::aiocb, aio_offset) == 128);
};

/// Marks `cb` as not enqueued, so that after a failed `lio_listio` the ones
/// glibc did enqueue (their error code becomes `EINPROGRESS`, then the result)
/// can be told from the ones it did not.
fn mark_not_queued(cb: *mut libc::aiocb) {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    // SAFETY: `cb` points to a live aiocb not in flight; by the layout asserted
    // above, `__error_code` is the `c_int` 16 bytes before `aio_offset`, inside
    // the struct, suitably aligned.
    unsafe {
        let offset = (&raw mut (*cb).aio_offset).cast::<u8>();
        offset.sub(16).cast::<libc::c_int>().write(NOT_QUEUED);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
    let _ = cb;
}

/// After a failed `lio_listio` whose error was `call_error`: whether glibc
/// queued `cb` all the same.
fn was_queued(cb: *mut libc::aiocb, call_error: Option<i32>) -> bool {
    // SAFETY: `aio_error` only reads the live aiocb.
    let code = unsafe { libc::aio_error(cb) };
    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    {
        // glibc marks a request it could not enqueue (no worker thread) with
        // the call's `EAGAIN` and forgets it. (A queued request that finished
        // within the call and lost its signal would show the same code: it is
        // then run again, which positioned requests allow.)
        code != NOT_QUEUED && !(code == libc::EAGAIN && call_error == Some(libc::EAGAIN))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
    {
        // Without the marker only a request still in progress is known to be
        // queued; the others are treated as not queued and submitted again (a
        // positioned request is idempotent).
        let _ = call_error;
        code == libc::EINPROGRESS
    }
}

/// Submits reads and writes with one `lio_listio(LIO_NOWAIT)` call (split at
/// [`LISTIO_MAX`]). Each request keeps its own completion signal.
///
/// Returns, for each request, whether it is in flight. On a partial failure
/// glibc returns -1 while the requests it queued keep running: each aiocb is
/// checked, and those not queued get the call's error.
pub(crate) fn lio_listio(cbs: &mut [&mut Aiocb]) -> Vec<io::Result<()>> {
    let mut out = Vec::with_capacity(cbs.len());
    for group in cbs.chunks_mut(LISTIO_MAX) {
        let mut list: Vec<*mut libc::aiocb> = Vec::with_capacity(group.len());
        for cb in group.iter_mut() {
            assert!(
                !cb.in_flight && cb.is_listable(),
                "aiofs: internal: bad lio_listio entry"
            );
            let p = cb.cb.as_ptr();
            mark_not_queued(p);
            list.push(p);
        }
        // SAFETY: every pointer is a live aiocb owned by its `Aiocb`, whose block
        // also owns the buffer and the descriptor reference (see `submit`); the
        // list itself is only read during the call; `sig` is null (each request
        // has its own `aio_sigevent`).
        let ret = unsafe {
            libc::lio_listio(
                libc::LIO_NOWAIT,
                list.as_ptr(),
                list.len() as libc::c_int,
                std::ptr::null_mut(),
            )
        };
        if ret == 0 {
            for cb in group.iter_mut() {
                cb.in_flight = true;
                out.push(Ok(()));
            }
        } else {
            let err = io::Error::last_os_error();
            for (cb, &p) in group.iter_mut().zip(&list) {
                if was_queued(p, err.raw_os_error()) {
                    cb.in_flight = true;
                    out.push(Ok(()));
                } else {
                    out.push(Err(match err.raw_os_error() {
                        Some(code) => io::Error::from_raw_os_error(code),
                        None => io::Error::other(err.to_string()),
                    }));
                }
            }
        }
    }
    out
}
