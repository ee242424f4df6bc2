//! The file as requests see it.
//!
//! - [`Description`]: what POSIX calls the *open file description*, shared by a
//!   `File`, its clones (`try_clone` duplicates the descriptor) and every
//!   duplicate in its pool: the status flags, the `O_DIRECT` alignment, whether
//!   the filesystem refuses `RWF_NOWAIT`, and the *write epoch*, bumped when any
//!   write through any of them finishes, which tells read-ahead it may be stale.
//! - [`OpenFile`]: one per `File`: its own descriptor and the pool of
//!   duplicates its reads are spread over, and the count of requests using
//!   them, which `into_std` waits for before it gives the descriptor away.
//!
//! A request holds a [`Use`] from just before it reads the descriptor number
//! until the OS is done with it (the driver drops it then, before waking the
//! future). `into_std` closes the file to new uses once the count is zero: a
//! future created before and polled after gets an error, never a descriptor
//! number that may name another file by then.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;

use crate::sys::fd::{self as sysfd, CachedOpen, Fd};

const SEEK_UNKNOWN: u8 = 0;
const SEEK_YES: u8 = 1;
const SEEK_NO: u8 = 2;

/// The `O_DIRECT` alignment when the filesystem does not say (`statx` without
/// `STATX_DIOALIGN`): a page, safe on every Linux filesystem and device.
const DEFAULT_DIRECT_ALIGN: usize = 4096;

/// The open file description: shared by a `File`, its clones and duplicates.
#[derive(Debug)]
pub(crate) struct Description {
    /// `F_GETFL` (0 if it failed): shared by every duplicate, never changed by aiofs.
    flags: i32,
    /// For `O_DIRECT`: `(buffer address, file offset and length)` alignment.
    direct: Option<(usize, usize)>,
    /// Whether positioned I/O works on it (`lseek` succeeds), found at first use.
    seekable: AtomicU8,
    /// The filesystem refused `preadv2(RWF_NOWAIT)`: reads take the AIO path only.
    no_nowait: AtomicBool,
    /// Bumped when a write or `set_len` through any descriptor of it finishes.
    epoch: AtomicU64,
}

impl Description {
    /// Reads the flags, whether positioned I/O works, and for `O_DIRECT` the
    /// alignment: at open, on the blocking pool (`OpenOptions::open`), or in
    /// `File::from_std`. None of them waits for a device or a server (`fcntl`,
    /// `lseek`, `statx` with `AT_STATX_DONT_SYNC`, a `pread` of 0 bytes).
    fn new(fd: BorrowedFd<'_>) -> Description {
        let flags = sysfd::status_flags(fd).unwrap_or(0);
        Description::with_flags(fd, flags, sysfd::seekable(fd))
    }

    /// As [`new`](Self::new), for a regular file opened here with `flags`
    /// ([`OpenFile::open_cached`]): neither the flags nor the file's kind are
    /// asked again (one `lseek`, and for `O_DIRECT` one `statx`).
    fn regular(fd: BorrowedFd<'_>, flags: i32) -> Description {
        Description::with_flags(fd, flags, sysfd::seekable_regular(fd))
    }

    fn with_flags(fd: BorrowedFd<'_>, flags: i32, seekable: io::Result<bool>) -> Description {
        let direct = sysfd::is_direct(flags).then(|| {
            sysfd::direct_alignment(fd)
                .map_or((DEFAULT_DIRECT_ALIGN, DEFAULT_DIRECT_ALIGN), |(m, o)| {
                    (m as usize, o as usize)
                })
        });
        let seekable = match seekable {
            Ok(true) => SEEK_YES,
            Ok(false) => SEEK_NO,
            // Asked again (and the error reported) at the first request.
            Err(_) => SEEK_UNKNOWN,
        };
        Description {
            flags,
            direct,
            seekable: AtomicU8::new(seekable),
            no_nowait: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
        }
    }

    /// For an `O_DIRECT` description, the alignment its transfers need:
    /// `(buffer address, file offset and length)`. `None` without `O_DIRECT`.
    pub(crate) fn direct_alignment(&self) -> Option<(usize, usize)> {
        self.direct
    }

    /// Whether the description was opened with `O_APPEND`.
    pub(crate) fn is_append(&self) -> bool {
        sysfd::is_append(self.flags)
    }

    /// The write epoch: changes whenever a write or `set_len` finishes.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A write or `set_len` finished.
    pub(crate) fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether a page-cache-only read (`RWF_NOWAIT`) may be tried: not on
    /// `O_DIRECT` (it would wait for the device on the caller's thread), not
    /// once the filesystem refused it.
    pub(crate) fn nowait_allowed(&self) -> bool {
        self.direct.is_none() && !self.no_nowait.load(Ordering::Relaxed)
    }

    /// The filesystem refused `RWF_NOWAIT`: never try it again here.
    pub(crate) fn refuse_nowait(&self) {
        self.no_nowait.store(true, Ordering::Relaxed);
    }
}

/// What [`OpenFile::open_cached`] did.
#[derive(Debug)]
pub(crate) enum Inline {
    /// Opened here: a regular file, and its size as the kernel has it now
    /// (a hint, as [`OpenFile::size_hint`]).
    Opened(Arc<OpenFile>, u64),
    /// Not done here: finish it on the blocking pool ([`Reopen::finish`]).
    Blocking(Reopen),
}

/// A read-only open to finish where waiting is allowed (the blocking pool),
/// holding what the attempt on the calling thread opened, if anything.
#[derive(Debug)]
pub(crate) struct Reopen {
    held: Held,
    /// The open's flags (`O_RDONLY` and the caller's).
    flags: i32,
}

#[derive(Debug)]
enum Held {
    Nothing,
    /// A FIFO's reading end, opened without waiting for a writer.
    Fifo(std::os::fd::OwnedFd),
    /// Another kind of file that is not a regular one (a device, a
    /// directory), opened with `O_NONBLOCK`.
    Other(std::os::fd::OwnedFd),
}

impl Reopen {
    /// Finishes the open, waiting as an open without `O_NONBLOCK` does: call
    /// it on the blocking pool. `open` opens the path as the caller asked.
    ///
    /// - Nothing opened yet: `open`.
    /// - A FIFO: the reading end already open is kept, once a writer has
    ///   opened the FIFO (`sys::fd::wait_for_writer`), and made blocking. It is
    ///   not opened again: a writer that waited in its own open was let
    ///   through by this one, and may have written and closed already; a new
    ///   open would wait for the next writer, and closing this one first would
    ///   lose that writer's data (or fail its writes with `EPIPE`).
    /// - Another kind: `open`, and the one opened without waiting is closed
    ///   only then, here: a tty is not hung up in between, and its close may
    ///   wait (for its output to drain). A device that allows one open at a
    ///   time (`EBUSY`) is opened again once it is closed.
    ///
    /// # Errors
    ///
    /// Those of `open`; for a FIFO, those of `poll` or `fcntl` (none expected).
    pub(crate) fn finish(
        self,
        open: impl Fn() -> io::Result<std::fs::File>,
    ) -> io::Result<std::fs::File> {
        use std::os::fd::AsFd;
        match self.held {
            Held::Nothing => open(),
            Held::Fifo(fd) => {
                sysfd::wait_for_writer(fd.as_fd())?;
                sysfd::clear_nonblock(fd.as_fd(), self.flags)?;
                Ok(std::fs::File::from(fd))
            }
            Held::Other(fd) => {
                let opened = open();
                drop(fd);
                match opened {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => open(),
                    opened => opened,
                }
            }
        }
    }
}

/// How a read is about to reach AIO: decides how many descriptors it may be
/// spread over (glibc runs one request per descriptor at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadKind {
    /// The page cache did not hold it: it waits for the device.
    Miss,
    /// Any other read (batches, vectored, large reads, fast path off).
    Plain,
    /// The stream's read-ahead.
    Ahead,
}

/// Descriptors for an `O_DIRECT` file's reads, by default: 8 was the best of
/// 4, 8 and 16 at queue depth 32 (`benches/compare --only direct`).
pub(crate) const DIRECT_POOL: usize = 8;
/// Descriptors for reads that missed the page cache, by default.
pub(crate) const MISS_POOL: usize = 8;
/// Descriptors for the stream's read-ahead: two glibc workers copy in parallel.
const AHEAD_POOL: usize = 2;
/// The largest pool.
pub(crate) const MAX_POOL: usize = 64;
/// A duplicate unused for this long is closed (at the file's next read).
const IDLE: Duration = Duration::from_secs(2);

/// One descriptor of a file's pool and the AIO requests it carries now.
#[derive(Debug)]
struct Lane {
    fd: Arc<Fd>,
    busy: AtomicUsize,
}

#[derive(Debug)]
struct PoolEntry {
    lane: Arc<Lane>,
    last_used: Instant,
}

/// A `File` as its requests see it.
#[derive(Debug)]
pub(crate) struct OpenFile {
    desc: Arc<Description>,
    /// The file's own descriptor: lane 0 of `pool`.
    own: Arc<Lane>,
    /// Duplicates, made when the queue depth needs them.
    pool: Mutex<Vec<PoolEntry>>,
    /// `set_fd_pool`; 0: the defaults by [`ReadKind`].
    pool_size: AtomicUsize,
    /// Requests using the descriptors now, and the [`CLOSED`] bit.
    uses: AtomicUsize,
    /// Woken when `uses` falls to zero (for `into_std`).
    closer: AtomicWaker,
    /// Group commit of `sync_all` and `sync_data`.
    syncs: [super::fsync::Group; 2],
}

const CLOSED: usize = 1 << (usize::BITS - 1);

impl OpenFile {
    /// A new file on `fd`, with its own open file description.
    pub(crate) fn from_owned(fd: std::os::fd::OwnedFd) -> Arc<OpenFile> {
        OpenFile::new(Fd::new(fd))
    }

    /// Opens `path` read-only (with `extra` flags) here and now if that
    /// cannot wait: the path is in the kernel's lookup cache (no device or
    /// server is asked), the open does not wait (`O_NONBLOCK`: not for a
    /// FIFO's writer, nor for a lease to be broken) and the file is a regular
    /// one (see `sys::fd::open_cached`). Otherwise [`Inline::Blocking`]:
    /// finish it on the blocking pool with [`Reopen::finish`].
    ///
    /// # Errors
    ///
    /// Those the lookup cache answers (`NotFound`...), and `InvalidInput`
    /// for a path with a NUL byte.
    pub(crate) fn open_cached(path: &std::path::Path, extra: i32) -> io::Result<Inline> {
        let flags = libc::O_RDONLY | extra;
        Ok(match sysfd::open_cached(path, flags)? {
            CachedOpen::Regular { fd, size } => {
                let fd = Fd::new(fd);
                let desc = Arc::new(Description::regular(fd.borrow(), flags));
                Inline::Opened(OpenFile::with_description(fd, desc), size)
            }
            // Not waiting is what was asked: this is the open.
            CachedOpen::Special { fd, .. } if extra & libc::O_NONBLOCK != 0 => {
                let file = OpenFile::from_owned(fd);
                let size = file.size_hint();
                Inline::Opened(file, size)
            }
            CachedOpen::Special { fd, fifo: true } => Inline::Blocking(Reopen {
                held: Held::Fifo(fd),
                flags,
            }),
            CachedOpen::Special { fd, fifo: false } => Inline::Blocking(Reopen {
                held: Held::Other(fd),
                flags,
            }),
            CachedOpen::Elsewhere => Inline::Blocking(Reopen {
                held: Held::Nothing,
                flags,
            }),
        })
    }

    /// The file's size as the kernel has it now, without asking a device or a
    /// server: a hint (for sizing a whole-file read), not for `SeekFrom::End`.
    pub(crate) fn size_hint(&self) -> u64 {
        sysfd::cached_size(self.own.fd.borrow()).unwrap_or(0)
    }

    fn new(fd: Fd) -> Arc<OpenFile> {
        let desc = Arc::new(Description::new(fd.borrow()));
        OpenFile::with_description(fd, desc)
    }

    /// A file on `fd`, which shares the open file description `desc`.
    pub(crate) fn with_description(fd: Fd, desc: Arc<Description>) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            desc,
            own: Arc::new(Lane {
                fd: Arc::new(fd),
                busy: AtomicUsize::new(0),
            }),
            pool: Mutex::new(Vec::new()),
            pool_size: AtomicUsize::new(0),
            uses: AtomicUsize::new(0),
            closer: AtomicWaker::new(),
            syncs: Default::default(),
        })
    }

    pub(crate) fn description(&self) -> &Arc<Description> {
        &self.desc
    }

    /// The file's own descriptor.
    pub(crate) fn fd(&self) -> &Arc<Fd> {
        &self.own.fd
    }

    /// Starts a use of the descriptors.
    ///
    /// # Errors
    ///
    /// Once `into_std` gave the descriptor away.
    pub(crate) fn begin(self: &Arc<Self>) -> io::Result<Use> {
        if self.uses.fetch_add(1, Ordering::AcqRel) & CLOSED != 0 {
            self.end_use();
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "aiofs: the File was converted with into_std: this request was not submitted",
            ));
        }
        Ok(Use {
            file: Arc::clone(self),
            lane: None,
            write: false,
        })
    }

    fn end_use(&self) {
        if self.uses.fetch_sub(1, Ordering::AcqRel) & !CLOSED == 1 {
            self.closer.wake();
        }
    }

    /// Closes the file to new uses once none is running (`into_std`).
    pub(crate) fn poll_close(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.closer.register(cx.waker());
        match self
            .uses
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(CLOSED) => {} // closed already
            // Requests run: `end_use` wakes us when the last one is done.
            Err(_) => return Poll::Pending,
        }
        // Closed: the duplicates go (requests holding one cannot start).
        self.lock_pool().clear();
        Poll::Ready(())
    }

    /// Whether no request uses the descriptors now.
    pub(crate) fn is_idle(&self) -> bool {
        self.uses.load(Ordering::Acquire) & !CLOSED == 0
    }

    fn lock_pool(&self) -> MutexGuard<'_, Vec<PoolEntry>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the most descriptors reads are spread over (`set_fd_pool`).
    pub(crate) fn set_pool_size(&self, n: usize) {
        self.pool_size
            .store(n.clamp(1, MAX_POOL), Ordering::Relaxed);
    }

    /// The most descriptors reads of `kind` are spread over.
    pub(crate) fn pool_size(&self, kind: ReadKind) -> usize {
        match self.pool_size.load(Ordering::Relaxed) {
            0 if self.desc.direct.is_some() => DIRECT_POOL,
            0 => match kind {
                ReadKind::Miss => MISS_POOL,
                ReadKind::Plain => 1,
                ReadKind::Ahead => AHEAD_POOL,
            },
            n => n,
        }
    }

    /// The descriptor an AIO read of `kind` goes to: the least busy of the
    /// first [`pool_size`](Self::pool_size), a new duplicate if they are all
    /// busy and the process's bound allows one. The use then counts on it.
    pub(crate) fn lane_for_read(
        &self,
        mut use_: Use,
        kind: ReadKind,
        max_dups: usize,
    ) -> (Arc<Fd>, Use) {
        let size = self.pool_size(kind);
        let lane = if size <= 1 {
            Arc::clone(&self.own)
        } else {
            self.pick(size, max_dups)
        };
        lane.busy.fetch_add(1, Ordering::AcqRel);
        let fd = Arc::clone(&lane.fd);
        use_.lane = Some(lane);
        (fd, use_)
    }

    /// The descriptor for a write (always the file's own: glibc runs one
    /// descriptor's requests in order, so writes are never reordered).
    pub(crate) fn lane_for_write(&self, mut use_: Use) -> (Arc<Fd>, Use) {
        use_.write = true;
        (Arc::clone(&self.own.fd), use_)
    }

    /// The descriptor for an `aio_fsync`: the file's own, behind its writes.
    pub(crate) fn lane_for_sync(&self, use_: Use) -> (Arc<Fd>, Use) {
        (Arc::clone(&self.own.fd), use_)
    }

    fn pick(&self, size: usize, max_dups: usize) -> Arc<Lane> {
        let now = Instant::now();
        let mut pool = self.lock_pool();
        // Idle duplicates go back to the system.
        pool.retain(|e| {
            e.lane.busy.load(Ordering::Acquire) > 0 || now.duration_since(e.last_used) < IDLE
        });
        let own_busy = self.own.busy.load(Ordering::Acquire);
        let mut best: Option<(usize, usize)> = None; // (busy, index)
        for (i, e) in pool.iter().take(size - 1).enumerate() {
            let b = e.lane.busy.load(Ordering::Acquire);
            if best.is_none_or(|(bb, _)| b < bb) {
                best = Some((b, i));
            }
        }
        let least = best.map_or(own_busy, |(b, _)| b.min(own_busy));
        if least > 0
            && pool.len() < size - 1
            && (sysfd::DUPS_OPEN.load(Ordering::Relaxed) as usize) < max_dups
            && let Ok(dup) = self.own.fd.dup(true)
        {
            // Every descriptor is busy: one more runs a request at once.
            let lane = Arc::new(Lane {
                fd: Arc::new(dup),
                busy: AtomicUsize::new(0),
            });
            pool.push(PoolEntry {
                lane: Arc::clone(&lane),
                last_used: now,
            });
            #[cfg(feature = "tracing")]
            tracing::debug!(
                descriptors = pool.len() + 1,
                process_duplicates = sysfd::DUPS_OPEN.load(Ordering::Relaxed),
                "aiofs: a file's descriptor pool grew (every descriptor was busy)"
            );
            crate::driver::stats::add(&crate::driver::stats::POOL_REQUESTS, 1);
            return lane;
        }
        match best {
            Some((b, i)) if b < own_busy => {
                pool[i].last_used = now;
                crate::driver::stats::add(&crate::driver::stats::POOL_REQUESTS, 1);
                Arc::clone(&pool[i].lane)
            }
            _ => Arc::clone(&self.own),
        }
    }

    /// `aio_fsync` of the file (`O_SYNC` or `O_DSYNC`), shared with the
    /// concurrent syncs of this `File` (group commit: see `fsync::Group`).
    pub(crate) async fn sync(self: &Arc<Self>, mode: crate::sys::aio::SyncMode) -> io::Result<()> {
        let group = match mode {
            crate::sys::aio::SyncMode::All => &self.syncs[0],
            crate::sys::aio::SyncMode::Data => &self.syncs[1],
        };
        group.sync(self, mode).await
    }

    /// The descriptor's offset (`lseek(SEEK_CUR)`: never waits).
    pub(crate) fn offset(&self) -> io::Result<u64> {
        sysfd::offset(self.own.fd.borrow())
    }

    /// Sets the descriptor's offset (for `into_std`).
    pub(crate) fn set_offset(&self, pos: u64) -> io::Result<()> {
        sysfd::set_offset(self.own.fd.borrow(), pos)
    }

    /// The file's size (`fstat`): may wait (a network filesystem asks its
    /// server): call it on the blocking pool.
    pub(crate) fn size(self: &Arc<Self>) -> io::Result<u64> {
        let _use = self.begin()?;
        sysfd::size(self.own.fd.borrow())
    }

    /// Runs a `std::fs::File` call (metadata, `ftruncate`, `fchmod`) on the
    /// descriptor, as a use of it: call it on the blocking pool.
    pub(crate) fn with_std<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&std::fs::File) -> io::Result<R>,
    ) -> io::Result<R> {
        let _use = self.begin()?;
        f(&self.own.fd.std())
    }

    /// Writes `buf` at `pos` with `pwrite` on the calling thread, as a use of
    /// the descriptor: for the data of a `File` dropped where no request can
    /// be submitted (the signal notifier outside a runtime).
    ///
    /// # Errors
    ///
    /// `Unsupported` in a child forked (without exec): the data is the
    /// parent's, which writes it itself.
    pub(crate) fn write_all_blocking(self: &Arc<Self>, buf: &[u8], pos: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        crate::driver::check_not_forked()?;
        let _use = self.begin()?;
        if self.desc.is_append() {
            std::io::Write::write_all(&mut &*self.own.fd.std(), buf)
        } else {
            self.own.fd.std().write_all_at(buf, pos)
        }
    }

    /// A new `OpenFile` on a duplicate of the descriptor, sharing the open
    /// file description (`try_clone`).
    pub(crate) fn try_clone(self: &Arc<Self>) -> io::Result<Arc<OpenFile>> {
        let _use = self.begin()?;
        let fd = self.own.fd.dup(false)?;
        Ok(OpenFile::with_description(fd, Arc::clone(&self.desc)))
    }

    /// The descriptor, given away once [`poll_close`](Self::poll_close) closed
    /// the file to new uses. `None` if it was given away already.
    pub(crate) fn take_fd(&self) -> Option<std::os::fd::OwnedFd> {
        // (`uses` may read `CLOSED | 1` for a moment: a `begin` that backs out.)
        self.own.fd.take()
    }

    /// Whether positioned I/O works on the descriptor (pipes, sockets and ttys
    /// are refused with `ESPIPE`: glibc's worker would fall back from `pread`
    /// to a plain `read` and consume the stream).
    pub(crate) fn check_seekable(&self) -> io::Result<()> {
        match self.desc.seekable.load(Ordering::Relaxed) {
            SEEK_YES => Ok(()),
            SEEK_NO => Err(io::Error::from_raw_os_error(libc::ESPIPE)),
            _ => match sysfd::seekable(self.own.fd.borrow()) {
                Ok(true) => {
                    self.desc.seekable.store(SEEK_YES, Ordering::Relaxed);
                    Ok(())
                }
                Ok(false) => {
                    self.desc.seekable.store(SEEK_NO, Ordering::Relaxed);
                    Err(io::Error::from_raw_os_error(libc::ESPIPE))
                }
                // Any other error (e.g. EBADF) is not cached: report it as is.
                Err(e) => Err(e),
            },
        }
    }
}

/// One request's use of a file's descriptors: counted from before the
/// descriptor number is read until the OS is done with the request.
#[derive(Debug)]
pub(crate) struct Use {
    file: Arc<OpenFile>,
    /// The descriptor an AIO read runs on (its busy count).
    lane: Option<Arc<Lane>>,
    /// A write: finishing it bumps the write epoch.
    write: bool,
}

impl Use {
    pub(crate) fn file(&self) -> &Arc<OpenFile> {
        &self.file
    }
}

impl Drop for Use {
    fn drop(&mut self) {
        if self.write {
            // Whatever happened, the file may have changed: read-ahead older
            // than this is stale (whether the write's future waits for it or not).
            self.file.desc.bump_epoch();
        }
        if let Some(lane) = &self.lane {
            lane.busy.fetch_sub(1, Ordering::AcqRel);
        }
        self.file.end_use();
    }
}
