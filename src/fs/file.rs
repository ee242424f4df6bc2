//! `File`: positioned, owned-buffer AIO on a shared descriptor.

use std::fmt;
use std::fs::{Metadata, Permissions};
use std::future::{Future, poll_fn};
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use super::stream::Stream;
use super::{OpenOptions, asyncify};
use crate::BufResult;
use crate::buf::{IoBuf, IoBufMut};
use crate::driver::stats;
use crate::ops::{self, ReadAt, ReadvAt, Sync, WriteAt, WritevAt};
use crate::sys::aio::SyncMode;
use crate::sys::fd::FdRef;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The descriptor pool of an `O_DIRECT` file, by default.
const DIRECT_POOL: usize = 8;
/// The largest descriptor pool.
const MAX_POOL: usize = 64;

/// A file's descriptor pool for positioned reads.
#[derive(Debug, Default)]
struct Pool {
    /// 0: not decided yet (8 for O_DIRECT, else 1).
    size: AtomicUsize,
    fds: std::sync::Mutex<Vec<FdRef>>,
}

/// Tokio's default for `max_buf_size`: 2 MiB.
const DEFAULT_MAX_BUF_SIZE: usize = 2 * 1024 * 1024;

/// An open file, read and written with POSIX AIO.
///
/// Every positioned method takes `&self`: share a `File` (e.g. in an `Arc`) and
/// keep many requests in flight on it at once. Each takes its buffer by value and
/// gives it back with the result, so a request stays safe when its future is
/// dropped.
///
/// A request keeps the descriptor open until it finishes: dropping the `File`
/// while requests are in flight closes the descriptor only after the last one,
/// so no request can ever land on a reused descriptor number.
///
/// `File` is also `AsyncRead + AsyncWrite + AsyncSeek`, a drop-in for
/// `tokio::fs::File`, with read-ahead and write-behind: see the crate's README
/// ("The stream"). Buffered writes are written by `flush`, `shutdown`,
/// `sync_all`, `sync_data`, `metadata`, `set_len`, `try_clone`, `into_std`, any
/// read, and in the background when the `File` is dropped; only `flush`,
/// `shutdown`, `sync_all` and `sync_data` report their errors (and any later
/// write). The positioned methods bypass the stream's buffers.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("data");
/// let file = aiofs::File::create(&path).await?;
/// let (res, _) = file.write_all_at(b"hello, world".to_vec(), 0).await;
/// res?;
///
/// let file = aiofs::File::open(&path).await?;
/// let (res, buf) = file.read_at(Vec::with_capacity(5), 7).await;
/// assert_eq!(res?, 5);
/// assert_eq!(buf, b"world");
/// # Ok(())
/// # }
/// ```
pub struct File {
    fd: FdRef,
    max_buf_size: usize,
    /// Descriptors for this file's positioned reads.
    pool: Box<Pool>,
    /// Position, read-ahead and write-behind of `AsyncRead`/`AsyncWrite`/`AsyncSeek`.
    /// `&mut self` methods use it without locking; `&self` ones lock it.
    stream: Box<tokio::sync::Mutex<Stream>>,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.fd.raw())
            .field("max_buf_size", &self.max_buf_size)
            .finish()
    }
}

impl File {
    /// Opens a file read-only, as `tokio::fs::File::open`.
    ///
    /// # Errors
    ///
    /// Those of `std::fs::File::open` (e.g. `NotFound`, `PermissionDenied`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let file = aiofs::File::open("foo.txt").await?;
    /// # let _ = file; Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens a file write-only, creating it or truncating it, as
    /// `tokio::fs::File::create`.
    ///
    /// # Errors
    ///
    /// Those of `std::fs::File::create`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let file = aiofs::File::create("foo.txt").await?;
    /// # let _ = file; Ok(())
    /// # }
    /// ```
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Creates a new file for reading and writing, failing if it exists, as
    /// `tokio::fs::File::create_new`.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if the path exists; otherwise those of `open(2)`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let file = aiofs::File::create_new("foo.txt").await?;
    /// # let _ = file; Ok(())
    /// # }
    /// ```
    pub async fn create_new(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .await
    }

    /// The options builder, as `tokio::fs::File::options`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let file = aiofs::File::options().append(true).open("log").await?;
    /// # let _ = file; Ok(())
    /// # }
    /// ```
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps a `std::fs::File`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let std = tempfile::tempfile()?;
    /// let file = aiofs::File::from_std(std);
    /// # let _ = file; Ok(())
    /// # }
    /// ```
    pub fn from_std(std: std::fs::File) -> File {
        File::from_fd(FdRef::new(std), DEFAULT_MAX_BUF_SIZE)
    }

    fn from_fd(fd: FdRef, max_buf_size: usize) -> File {
        File {
            fd,
            max_buf_size,
            pool: Box::default(),
            stream: Box::new(tokio::sync::Mutex::new(Stream::new())),
        }
    }

    pub(crate) fn fd(&self) -> &FdRef {
        &self.fd
    }

    /// The descriptor for the next positioned read: the file's own, or one of
    /// its pool, in turn.
    pub(crate) fn read_fd(&self) -> FdRef {
        let size = self.fd_pool();
        if size <= 1 {
            return self.fd.clone();
        }
        let mut fds = self.pool.fds.lock().unwrap_or_else(|e| e.into_inner());
        while fds.len() < size - 1 {
            // A duplicate shares the open file description (flags, O_DIRECT).
            match self.fd.std().try_clone() {
                Ok(std) => {
                    stats::add(&stats::POOL_FDS, 1);
                    fds.push(FdRef::new(std));
                }
                // Out of descriptors: make do with those there are.
                Err(_) => break,
            }
        }
        // The least busy descriptor: each request in flight (or future not yet
        // finished) holds a reference to its descriptor; the pool and the
        // `File` hold one each.
        let own = self.fd.holders();
        let best = fds
            .iter()
            .take(size - 1)
            .enumerate()
            .min_by_key(|(i, fd)| (fd.holders(), *i));
        match best {
            Some((_, fd)) if fd.holders() < own => {
                stats::add(&stats::POOL_REQUESTS, 1);
                fd.clone()
            }
            _ => self.fd.clone(),
        }
    }

    /// Spreads this file's positioned reads over `n` descriptors (the file's own
    /// and `n - 1` duplicates, made when first needed).
    ///
    /// glibc runs one request per descriptor at a time, so one descriptor gives
    /// a queue depth of one to the device. The default is 8 for an `O_DIRECT`
    /// file, where a disk needs many requests at once to reach its rate (8 was
    /// the best of 4, 8 and 16 at queue depth 32 in `benches/direct.rs` on a
    /// 2-core VM: more descriptors cost more thread wake-ups than they gain), and
    /// 1 otherwise: cached reads are fastest on one
    /// descriptor (one glibc worker drains the queue without waking others).
    /// Writes always use the file's own descriptor, in the order they were
    /// submitted, so two writes to overlapping ranges are never reordered.
    /// `n` is taken between 1 and 64. A read is assigned its descriptor when
    /// `read_at` is called (`stats().pool_requests` counts those sent to a
    /// duplicate).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// assert_eq!(file.fd_pool(), 1);
    /// file.set_fd_pool(4);
    /// assert_eq!(file.fd_pool(), 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_fd_pool(&self, n: usize) {
        self.pool
            .size
            .store(n.clamp(1, MAX_POOL), Ordering::Relaxed);
    }

    /// The number of descriptors this file's positioned reads are spread over.
    pub fn fd_pool(&self) -> usize {
        match self.pool.size.load(Ordering::Relaxed) {
            0 => {
                let n = if self.fd.direct_alignment().is_some() {
                    DIRECT_POOL
                } else {
                    1
                };
                self.pool.size.store(n, Ordering::Relaxed);
                n
            }
            n => n,
        }
    }

    /// Reads consecutive ranges from `pos` into `bufs` (each up to its capacity),
    /// submitted together with one `lio_listio`. The count is one number, as for
    /// `preadv`: the sum up to and including the first short segment; each
    /// buffer's length is set to what its own segment read.
    ///
    /// # Errors
    ///
    /// As [`read_at`](Self::read_at), for the whole range; an error after some
    /// bytes were read gives the count instead (as `preadv`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never blocks; requests in flight are orphaned.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("f");
    /// std::fs::write(&path, b"0123456789")?;
    /// let file = aiofs::File::open(&path).await?;
    /// let bufs = vec![Vec::with_capacity(4), Vec::with_capacity(4), Vec::with_capacity(4)];
    /// let (res, bufs) = file.readv_at(bufs, 0).await;
    /// assert_eq!(res?, 10);
    /// assert_eq!(bufs, [&b"0123"[..], b"4567", b"89"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn readv_at<B: IoBufMut>(&self, bufs: Vec<B>, pos: u64) -> ReadvAt<B> {
        ReadvAt::new(self, bufs, pos)
    }

    /// Writes `bufs` (their initialised bytes) to consecutive ranges from `pos`,
    /// submitted together with one `lio_listio`; the count is as for `pwritev`.
    ///
    /// # Errors
    ///
    /// As [`write_at`](Self::write_at), for the whole range.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never blocks; part of the data may be written.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// let (res, _) = file.writev_at(vec![b"hello ".to_vec(), b"world".to_vec()], 0).await;
    /// assert_eq!(res?, 11);
    /// # Ok(())
    /// # }
    /// ```
    pub fn writev_at<B: IoBuf>(&self, bufs: Vec<B>, pos: u64) -> WritevAt<B> {
        WritevAt::new(self, bufs, pos)
    }

    /// Waits for the stream's pending writes (write-behind) to be in the file.
    async fn flush_stream(&self) -> io::Result<()> {
        let mut stream = self.stream.lock().await;
        poll_fn(|cx| stream.poll_flush(cx, &self.fd)).await
    }

    /// The `std::fs::File` back, once the buffered writes are written and every
    /// request on this file has finished (requests whose futures were dropped
    /// included). Its offset is set to the stream position.
    ///
    /// An error of the buffered writes cannot be returned here: call
    /// [`flush`](tokio::io::AsyncWriteExt::flush) first to see it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the file (buffered writes still go out; the
    /// descriptor closes after its last request).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// let (res, _) = file.write_at(b"abc".to_vec(), 0).await;
    /// res?;
    /// let std = file.into_std().await;
    /// assert_eq!(std.metadata()?.len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn into_std(mut self) -> std::fs::File {
        {
            let stream = self.stream.get_mut();
            let _ = poll_fn(|cx| stream.poll_flush(cx, &self.fd)).await;
            let _ = stream.sync_offset(&self.fd);
        }
        let mut fd = self.fd.clone();
        // Reads on the pool's duplicates are this file's requests too.
        let pool: Vec<FdRef> = self
            .pool
            .fds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        drop(self);
        for dup in &pool {
            poll_fn(|cx| dup.poll_unique(cx)).await;
        }
        drop(pool);
        loop {
            poll_fn(|cx| fd.poll_unique(cx)).await;
            match fd.try_unwrap() {
                Ok(std) => return std,
                Err(back) => fd = back,
            }
        }
    }

    /// The `std::fs::File` back at once, or the `File` itself if writes are
    /// buffered or requests on it are still in flight.
    ///
    /// # Errors
    ///
    /// Gives a `File` back if any request still holds the descriptor or
    /// written data is still buffered.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// let std = file.try_into_std().expect("no request in flight");
    /// # let _ = std; Ok(())
    /// # }
    /// ```
    pub fn try_into_std(mut self) -> Result<std::fs::File, File> {
        let stream = self.stream.get_mut();
        if stream.has_pending_writes() {
            return Err(self);
        }
        let _ = stream.sync_offset(&self.fd);
        let max_buf_size = self.max_buf_size;
        let fd = self.fd.clone();
        drop(self);
        fd.try_unwrap()
            .map_err(|fd| File::from_fd(fd, max_buf_size))
    }

    /// Reads from `pos` into `buf`, from its start up to its capacity
    /// ([`IoBuf::bytes_total`]), and sets its length to the count read.
    ///
    /// `Vec::with_capacity(n)` and `vec![0; n]` both read up to `n` bytes. A
    /// count shorter than asked is legal before the end of file (as for `pread`);
    /// at or past the end of file the count is 0.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` if `pos` + capacity passes `i64::MAX` (nothing submitted);
    /// - `NotSeekable` (`ESPIPE`) for a pipe, socket or tty (nothing submitted);
    /// - the OS error of the read, e.g. `EBADF` for a file not open for reading,
    ///   `EINVAL` for a misaligned `O_DIRECT` request.
    ///
    /// The buffer comes back in every case.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never blocks; the request is orphaned and the buffer
    /// freed once the OS is done with it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("f");
    /// std::fs::write(&path, b"0123456789")?;
    /// let file = aiofs::File::open(&path).await?;
    /// let (res, buf) = file.read_at(vec![0; 4], 3).await;
    /// assert_eq!(res?, 4);
    /// assert_eq!(buf, b"3456");
    /// let (res, buf) = file.read_at(buf, 100).await;
    /// assert_eq!(res?, 0);
    /// assert!(buf.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> ReadAt<B> {
        ReadAt::new(self.read_fd(), buf, pos)
    }

    /// Reads exactly the buffer's capacity from `pos`, looping on short counts;
    /// the buffer's length is then its capacity.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the file ends first (the buffer's length is then the
    /// count read); otherwise those of [`read_at`](Self::read_at).
    ///
    /// # Cancel safety
    ///
    /// As for [`read_at`](Self::read_at); the bytes read so far are lost with the
    /// buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("f");
    /// std::fs::write(&path, b"0123456789")?;
    /// let file = aiofs::File::open(&path).await?;
    /// let (res, buf) = file.read_exact_at(Vec::with_capacity(8), 2).await;
    /// res?;
    /// assert_eq!(buf, b"23456789");
    /// let (res, _) = file.read_exact_at(Vec::with_capacity(8), 5).await;
    /// assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_exact_at<B: IoBufMut>(
        &self,
        buf: B,
        pos: u64,
    ) -> impl Future<Output = BufResult<(), B>> + Send + 'static {
        ops::read_exact_at(self.read_fd(), buf, pos)
    }

    /// Writes the buffer's initialised bytes ([`IoBuf::bytes_init`]) at `pos`;
    /// the count may be short (as for `pwrite`).
    ///
    /// With `O_APPEND` the data lands at the end of the file, whatever `pos` says
    /// (Linux `pwrite` semantics).
    ///
    /// This bypasses the `AsyncWrite` buffer: bytes written through `AsyncWrite`
    /// and not yet flushed may land later and overwrite it. Flush first when the
    /// two overlap.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` if `pos` + length passes `i64::MAX` (nothing submitted);
    /// - `NotSeekable` (`ESPIPE`) for a pipe, socket or tty (nothing submitted);
    /// - the OS error of the write, e.g. `EBADF` for a file not open for writing,
    ///   `ENOSPC`, `EFBIG`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never blocks; the write still runs to completion in
    /// the driver's care, and its outcome is not reported.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// let (res, buf) = file.write_at(b"hello".to_vec(), 10).await;
    /// assert_eq!(res?, 5);
    /// assert_eq!(buf, b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> WriteAt<B> {
        WriteAt::new(self.fd.clone(), buf, pos)
    }

    /// Writes all of the buffer's initialised bytes at `pos`, looping on short
    /// counts.
    ///
    /// # Errors
    ///
    /// `WriteZero` if a write wrote nothing; otherwise those of
    /// [`write_at`](Self::write_at).
    ///
    /// # Cancel safety
    ///
    /// As for [`write_at`](Self::write_at): part of the data may be written.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// let (res, _) = file.write_all_at("all of it", 0).await;
    /// res?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_all_at<B: IoBuf>(
        &self,
        buf: B,
        pos: u64,
    ) -> impl Future<Output = BufResult<(), B>> + Send + 'static {
        ops::write_all_at(self.fd.clone(), buf, pos)
    }

    /// Flushes data and metadata to the device: `aio_fsync(O_SYNC)`.
    ///
    /// Writes buffered by `AsyncWrite` are written first. glibc runs one
    /// descriptor's requests in order, so every positioned write submitted on
    /// this file before the call is covered too; await them first.
    ///
    /// # Errors
    ///
    /// The OS error of the sync (e.g. `EIO`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never blocks; the sync still runs.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// let (res, _) = file.write_all_at(b"durable".to_vec(), 0).await;
    /// res?;
    /// file.sync_all().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sync_all(&self) -> io::Result<()> {
        self.flush_stream().await?;
        Sync::new(self.fd.clone(), SyncMode::All).await
    }

    /// Flushes data (and the metadata needed to read it back) to the device:
    /// `aio_fsync(O_DSYNC)`, after the writes buffered by `AsyncWrite`.
    ///
    /// # Errors
    ///
    /// The OS error of the sync.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never blocks; the sync still runs.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// file.sync_data().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sync_data(&self) -> io::Result<()> {
        self.flush_stream().await?;
        Sync::new(self.fd.clone(), SyncMode::Data).await
    }

    /// The file's metadata (`fstat`, on Tokio's blocking pool), after the writes
    /// buffered by `AsyncWrite`.
    ///
    /// # Errors
    ///
    /// Those of `std::fs::File::metadata`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// assert_eq!(file.metadata().await?.len(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn metadata(&self) -> io::Result<Metadata> {
        self.flush_stream().await?;
        let fd = self.fd.clone();
        asyncify(move || fd.std().metadata()).await
    }

    /// Truncates or extends the file to `size` bytes (`ftruncate`), after the
    /// writes buffered by `AsyncWrite`. The stream position does not change.
    ///
    /// # Errors
    ///
    /// Those of `std::fs::File::set_len` (e.g. `EBADF` if not open for writing,
    /// `EFBIG`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// file.set_len(4096).await?;
    /// assert_eq!(file.metadata().await?.len(), 4096);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        let mut stream = self.stream.lock().await;
        poll_fn(|cx| stream.poll_flush(cx, &self.fd)).await?;
        stream.discard_read_ahead();
        let fd = self.fd.clone();
        let res = asyncify(move || {
            let res = fd.std().set_len(size);
            fd.bump_epoch();
            res
        })
        .await;
        drop(stream);
        res
    }

    /// Changes the file's permissions (`fchmod`).
    ///
    /// # Errors
    ///
    /// Those of `std::fs::File::set_permissions`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use std::os::unix::fs::PermissionsExt;
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// file.set_permissions(std::fs::Permissions::from_mode(0o600)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        let fd = self.fd.clone();
        asyncify(move || fd.std().set_permissions(perm)).await
    }

    /// A new `File` on a duplicate of the descriptor (`dup`), sharing the open
    /// file description. Buffered writes are written first; the clone shares the
    /// stream position (as a `dup`'ed descriptor shares its offset), each with its
    /// own buffers.
    ///
    /// # Errors
    ///
    /// Those of `dup` (e.g. `EMFILE`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let file = aiofs::File::from_std(tempfile::tempfile()?);
    /// let other = file.try_clone().await?;
    /// # let _ = other; Ok(())
    /// # }
    /// ```
    pub async fn try_clone(&self) -> io::Result<File> {
        {
            let mut stream = self.stream.lock().await;
            poll_fn(|cx| stream.poll_flush(cx, &self.fd)).await?;
            stream.sync_offset(&self.fd)?;
        }
        let cursor = self.stream.lock().await.cursor();
        let fd = self.fd.clone();
        let std = asyncify(move || fd.std().try_clone()).await?;
        Ok(File {
            fd: FdRef::new(std),
            max_buf_size: self.max_buf_size,
            pool: Box::default(),
            stream: Box::new(tokio::sync::Mutex::new(Stream::with_cursor(cursor))),
        })
    }

    /// Sets the largest buffer the `AsyncRead`/`AsyncWrite` adapters use per
    /// request (default 2 MiB, as Tokio).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let mut file = aiofs::File::from_std(tempfile::tempfile()?);
    /// file.set_max_buf_size(1 << 20);
    /// assert_eq!(file.max_buf_size(), 1 << 20);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_max_buf_size(&mut self, max_buf_size: usize) {
        self.max_buf_size = max_buf_size;
    }

    /// The largest buffer the `AsyncRead`/`AsyncWrite` adapters use per request.
    pub fn max_buf_size(&self) -> usize {
        self.max_buf_size
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // Unflushed writes still go out, in the background; only `flush` and
        // `sync_all` can report their errors.
        self.stream.get_mut().detach(&self.fd);
    }
}

impl AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.stream
            .get_mut()
            .poll_read(cx, &me.fd, me.max_buf_size, buf)
    }
}

impl AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.stream
            .get_mut()
            .poll_write(cx, &me.fd, me.max_buf_size, &[buf])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let slices: Vec<&[u8]> = bufs.iter().map(|b| &**b).collect();
        me.stream
            .get_mut()
            .poll_write(cx, &me.fd, me.max_buf_size, &slices)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.stream.get_mut().poll_flush(cx, &me.fd)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for File {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        self.get_mut().stream.get_mut().start_seek(position)
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let me = self.get_mut();
        me.stream.get_mut().poll_complete_seek(cx, &me.fd)
    }
}

impl From<std::fs::File> for File {
    fn from(std: std::fs::File) -> File {
        File::from_std(std)
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File::from_std(std::fs::File::from(fd))
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.borrow()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}
