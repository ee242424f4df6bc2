//! `File`: positioned, owned-buffer AIO on a shared descriptor, and the
//! `tokio::fs::File` stream on top of it.

use std::fmt;
use std::fs::{Metadata, Permissions};
use std::future::{Future, poll_fn};
use std::io::{self, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use super::stream::{Shared, Target};
use super::{OpenOptions, asyncify};
use crate::BufResult;
use crate::buf::{IoBuf, IoBufMut};
use crate::ops::{self, OpenFile, ReadAt, ReadKind, ReadvAt, SyncMode, WriteAt, WritevAt};

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
/// read, and in the background when the `File` is dropped, in the order they
/// were made (where no request can be submitted, under the signal notifier
/// outside a runtime, the drop writes them with `pwrite`, after the writes in
/// flight before them); only `flush`, `shutdown`, `sync_all` and `sync_data`
/// report their errors (and any later write). The positioned methods bypass
/// the stream's buffers.
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
    file: Arc<OpenFile>,
    /// Position, read-ahead and write-behind, shared with the clones.
    shared: Arc<Shared>,
    max_buf_size: usize,
    /// This handle's waits on the stream's writes (kept across polls): before
    /// a read, and for a flush.
    settle: Target,
    flush: Target,
    /// A seek started by `start_seek`, completed by `poll_complete`.
    seek: Option<SeekFrom>,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.file.fd().as_raw_fd())
            .field("max_buf_size", &self.max_buf_size)
            .finish()
    }
}

impl File {
    /// Opens a file read-only, as `tokio::fs::File::open`.
    ///
    /// A regular file whose path the kernel's lookup cache holds is opened
    /// on the calling thread, with no thread hop; anything else on Tokio's
    /// blocking pool, as `tokio::fs` does (see [`OpenOptions::open`]).
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
        File::from_open_file(OpenFile::from_owned(std.into()), Shared::new())
    }

    pub(crate) fn from_open_file(file: Arc<OpenFile>, shared: Arc<Shared>) -> File {
        File {
            file,
            shared,
            max_buf_size: DEFAULT_MAX_BUF_SIZE,
            settle: None,
            flush: None,
            seek: None,
        }
    }

    pub(crate) fn open_file(&self) -> &Arc<OpenFile> {
        &self.file
    }

    /// Spreads this file's positioned reads over up to `n` descriptors (the
    /// file's own and `n - 1` duplicates).
    ///
    /// glibc runs one request per descriptor at a time, so one descriptor gives
    /// a queue depth of one to the device. Duplicates are made when the reads
    /// in flight need them (every descriptor already runs one) and closed
    /// after two seconds unused; the whole process keeps at most
    /// [`Config::max_pool_fds`](crate::Config::max_pool_fds) of them, and a
    /// read runs on the descriptors there are when no more can be had. By
    /// default a file spreads its reads over up to 8 descriptors when they
    /// wait for the device (an `O_DIRECT` file, or reads the page cache
    /// missed), over 2 for the stream's read-ahead, and keeps other reads on
    /// its own descriptor (cached reads are fastest on one: one glibc worker
    /// drains the queue without waking others). `set_fd_pool(n)` replaces all
    /// of these with `n`, between 1 and 64.
    ///
    /// Writes always use the file's own descriptor, which glibc runs in the
    /// order they were submitted. To be sure two positioned writes to
    /// overlapping ranges land in order, await the first before submitting the
    /// second: a write whose result glibc lost to a full signal queue is run
    /// again when the driver finds it, after any write submitted meanwhile
    /// (the stream's writes always wait this way).
    /// `stats().pool_fds` counts the duplicates open, `pool_requests` the reads
    /// sent to one.
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
        self.file.set_pool_size(n);
    }

    /// The most descriptors this file's positioned reads (other than those
    /// that missed the page cache) are spread over: `set_fd_pool`'s value, or
    /// 8 for an `O_DIRECT` file and 1 otherwise.
    pub fn fd_pool(&self) -> usize {
        self.file.pool_size(ReadKind::Plain)
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
        ReadvAt::new(&self.file, bufs, pos)
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
        WritevAt::new(&self.file, bufs, pos)
    }

    /// Writes the stream's buffered data and waits for it, reporting the first
    /// error (`sync_all`, `sync_data`).
    async fn flush_stream(&self) -> io::Result<()> {
        let mut target = None;
        poll_fn(|cx| {
            self.shared
                .with(cx, |s, cx| s.poll_flush(cx, &self.file, &mut target))
        })
        .await
    }

    /// Waits for the stream's writes made before the call to be written or to
    /// fail, without reporting errors (`metadata`, `set_len`).
    async fn settle_stream(&self) {
        let mut target = None;
        poll_fn(|cx| {
            self.shared
                .with(cx, |s, cx| s.poll_quiesce(cx, &self.file, &mut target))
        })
        .await
    }

    /// The `std::fs::File` back, once the buffered writes are written and every
    /// request submitted on this file has finished (requests whose futures were
    /// dropped included). Its offset is set to the stream position.
    ///
    /// A request future of this file created before and polled after this
    /// call fails (`ErrorKind::NotConnected`) without touching the descriptor,
    /// which by then belongs to the `std::fs::File`. An error of the buffered
    /// writes cannot be returned here: call
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
        let _ = poll_fn(|cx| {
            let (file, flush) = (&self.file, &mut self.flush);
            self.shared.with(cx, |s, cx| s.poll_flush(cx, file, flush))
        })
        .await;
        let _ = poll_fn(|cx| {
            let file = &self.file;
            self.shared.with(cx, |s, cx| s.poll_sync_offset(cx, file))
        })
        .await;
        let file = Arc::clone(&self.file);
        drop(self);
        poll_fn(|cx| file.poll_close(cx)).await;
        match file.take_fd() {
            Some(fd) => std::fs::File::from(fd),
            // Only `into_std` and `try_into_std` take it, and each consumes
            // the only `File` of this `OpenFile`.
            None => unreachable!("aiofs: internal: descriptor taken twice"),
        }
    }

    /// The `std::fs::File` back at once, or the `File` itself if writes are
    /// buffered or requests on it are still in flight.
    ///
    /// # Errors
    ///
    /// Gives the `File` back if any request still uses the descriptor or
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
    pub fn try_into_std(self) -> Result<std::fs::File, File> {
        if self.shared.with_now(|s| s.has_pending_writes()) || !self.file.is_idle() {
            return Err(self);
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let synced = self
            .shared
            .with_now(|s| s.poll_sync_offset(&mut cx, &self.file));
        if synced.is_pending() || self.file.poll_close(&mut cx).is_pending() {
            // The offset needs the file's size (after an O_APPEND write), or a
            // request started meanwhile.
            return Err(self);
        }
        let file = Arc::clone(&self.file);
        drop(self);
        match file.take_fd() {
            Some(fd) => Ok(std::fs::File::from(fd)),
            None => unreachable!("aiofs: internal: descriptor taken twice"),
        }
    }

    /// Gives up the data written through `AsyncWrite` that is not in the file
    /// and is not being written now (buffered bytes, and writes that failed,
    /// which a flush would otherwise retry), with the error not yet reported.
    /// Returns the number of bytes given up.
    ///
    /// A write that keeps failing (`EBADF`, `EFBIG`, `ENOSPC` that will not
    /// clear) is reported by every `flush` until its data is written or given
    /// up: this is how to give it up. The file and its clones share the
    /// buffers: this gives up theirs too.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tokio::io::AsyncWriteExt;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("f");
    /// # std::fs::write(&path, b"")?;
    /// // Opened read-only: every write fails with EBADF.
    /// let mut file = aiofs::File::open(&path).await?;
    /// file.write_all(b"lost").await?; // buffered: accepted
    /// assert!(file.flush().await.is_err());
    /// assert!(file.flush().await.is_err()); // retried, fails again
    /// assert_eq!(file.discard_unwritten(), 4);
    /// file.flush().await?; // nothing left to write
    /// # Ok(())
    /// # }
    /// ```
    pub fn discard_unwritten(&mut self) -> u64 {
        self.flush = None;
        self.settle = None;
        self.shared.with_now(|s| s.discard_unwritten())
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
        ReadAt::new(Arc::clone(&self.file), buf, pos)
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
    ) -> impl Future<Output = BufResult<(), B>> + Send + 'static + use<B> {
        ops::read_exact_at(Arc::clone(&self.file), buf, pos)
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
        WriteAt::new(Arc::clone(&self.file), buf, pos)
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
    ) -> impl Future<Output = BufResult<(), B>> + Send + 'static + use<B> {
        ops::write_all_at(Arc::clone(&self.file), buf, pos)
    }

    /// Flushes data and metadata to the device: `aio_fsync(O_SYNC)`.
    ///
    /// Writes buffered by `AsyncWrite` are written first. glibc runs one
    /// descriptor's requests in order, so every positioned write submitted on
    /// this file before the call is covered too; await them first.
    ///
    /// Concurrent syncs of one `File` share one `aio_fsync` (group commit): a
    /// call made while a sync runs waits for it to finish and then shares the
    /// next one with every other call made meanwhile. Each call's result is
    /// that of a sync that started after the call.
    ///
    /// # Errors
    ///
    /// The OS error of the sync (e.g. `EIO`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never blocks. A sync already submitted runs to its
    /// end (its result discarded); a call dropped while it waits for the next
    /// round of a shared sync leaves that round to the other callers, and if
    /// none is left, no sync starts for it.
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
        self.file.sync(SyncMode::All).await
    }

    /// Flushes data (and the metadata needed to read it back) to the device:
    /// `aio_fsync(O_DSYNC)`, after the writes buffered by `AsyncWrite`.
    /// Concurrent calls share their syncs as for [`sync_all`](Self::sync_all).
    ///
    /// # Errors
    ///
    /// The OS error of the sync.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never blocks. A sync already submitted runs to its
    /// end (its result discarded); a call dropped while it waits for the next
    /// round of a shared sync leaves that round to the other callers, and if
    /// none is left, no sync starts for it.
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
        self.file.sync(SyncMode::Data).await
    }

    /// The file's metadata (`fstat`, on Tokio's blocking pool), once the writes
    /// buffered by `AsyncWrite` before the call are written (or failed: their
    /// error is not reported here, but by the next write, flush or sync).
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
        self.settle_stream().await;
        let file = Arc::clone(&self.file);
        asyncify(move || file.with_std(|f| f.metadata())).await
    }

    /// Truncates or extends the file to `size` bytes (`ftruncate`), once the
    /// writes buffered by `AsyncWrite` before the call are written (or failed:
    /// their error is reported by the next write, flush or sync). The stream
    /// position does not change; read-ahead of this file and its clones is
    /// dropped.
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
        self.settle_stream().await;
        let file = Arc::clone(&self.file);
        let res = asyncify(move || {
            let res = file.with_std(|f| f.set_len(size));
            // Done (or failed part-way): read-ahead older than this is stale.
            file.description().bump_epoch();
            res
        })
        .await;
        self.shared.with_now(|s| s.discard_read_ahead());
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
        let file = Arc::clone(&self.file);
        asyncify(move || file.with_std(|f| f.set_permissions(perm))).await
    }

    /// A new `File` on a duplicate of the descriptor (`dup`), sharing the open
    /// file description, as `tokio::fs::File::try_clone`. The data written
    /// through `AsyncWrite` before the call is written first.
    ///
    /// As `dup`'ed descriptors share their offset, the clones share one stream:
    /// one position (each read or write through any of them moves it, atomically:
    /// two clones writing at once never write over each other, two reading at
    /// once never read the same bytes), one read-ahead and one write-behind
    /// buffer (a flush through any of them writes what any of them buffered).
    /// Writes through any of them, positioned or not, and `set_len`, drop the
    /// read-ahead of all of them.
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
        // As Tokio: the writes made before are in the file (a failure among
        // them is reported by the next write, flush or sync).
        self.settle_stream().await;
        // `dup` never waits for a device.
        let file = self.file.try_clone()?;
        self.shared.with_now(|s| s.add_handle());
        Ok(File {
            file,
            shared: Arc::clone(&self.shared),
            max_buf_size: self.max_buf_size,
            settle: None,
            flush: None,
            seek: None,
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
        // The last handle of the stream hands its unflushed writes to the
        // driver, which writes them in the background and holds the runtime's
        // shutdown for them; only `flush` and `sync_*` can report their errors.
        // Another handle left: they stay with it, started now.
        let detached = self.shared.with_now(|s| s.drop_handle(&self.file));
        if detached {
            crate::driver::wait_detached();
        }
    }
}

impl AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let (file, max, settle, seek) = (&me.file, me.max_buf_size, &mut me.settle, &mut me.seek);
        me.shared
            .with(cx, |s, cx| s.poll_read(cx, file, max, buf, settle, seek))
    }
}

impl AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_slices(cx, &[buf])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let slices: Vec<&[u8]> = bufs.iter().map(|b| &**b).collect();
        self.get_mut().write_slices(cx, &slices)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let (file, flush) = (&me.file, &mut me.flush);
        me.shared.with(cx, |s, cx| s.poll_flush(cx, file, flush))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl File {
    fn write_slices(&mut self, cx: &mut Context<'_>, src: &[&[u8]]) -> Poll<io::Result<usize>> {
        let (file, max, settle, seek) = (
            &self.file,
            self.max_buf_size,
            &mut self.settle,
            &mut self.seek,
        );
        let res = self
            .shared
            .with(cx, |s, cx| s.poll_write(cx, file, max, src, settle, seek));
        if let Poll::Ready(Ok(n)) = res
            && n > 0
        {
            // A flush or read of this handle still waiting was cancelled (the
            // handle writes): the next one must also cover these bytes.
            self.flush = None;
            self.settle = None;
        }
        res
    }
}

impl AsyncSeek for File {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let me = self.get_mut();
        if me.seek.is_some() {
            return Err(io::Error::other(
                "aiofs: a seek is already pending: call poll_complete before start_seek",
            ));
        }
        me.seek = Some(position);
        // A read of this handle still waiting was cancelled: the seek waits
        // for the writes made before it, afresh.
        me.settle = None;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let me = self.get_mut();
        let (file, seek, settle) = (&me.file, &mut me.seek, &mut me.settle);
        me.shared
            .with(cx, |s, cx| s.poll_complete_seek(cx, file, seek, settle))
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

// The one `unsafe` outside `sys/` and `buf/` (see ARCHITECTURE.md): the trait's
// method is unsafe by definition; this only forwards the caller's promise.
#[allow(unsafe_code)]
impl FromRawFd for File {
    /// Wraps a raw descriptor, as `tokio::fs::File::from_raw_fd`.
    ///
    /// # Safety
    ///
    /// `fd` must be an open descriptor that the caller owns and gives to the
    /// `File` (it is closed when the `File` and its requests are done), as for
    /// `std::fs::File::from_raw_fd`.
    unsafe fn from_raw_fd(fd: RawFd) -> File {
        // SAFETY: the caller owns `fd` and gives it up (this function's contract).
        File::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.fd().borrow()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.file.fd().as_raw_fd()
    }
}
