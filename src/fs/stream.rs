//! The sequential stream over positioned AIO: a position, read-ahead and
//! write-behind, behaving as a sequential `std::fs::File` would.
//!
//! - **Read-ahead**: the first read at a position reads what was asked; a reader
//!   that goes on where it stopped gets up to `Config::read_ahead` (6 by
//!   default, at most [`MAX_WINDOW`]) positioned reads of up to [`MAX_CHUNK`]
//!   bytes in flight; a seek or random access drops them.
//!   End of file is never cached: when the reader reaches the end again, a fresh
//!   read looks for new data.
//! - **Write-behind**: `poll_write` copies into an owned buffer and returns; full
//!   buffers go out as positioned writes, several in flight. A failed write keeps
//!   its data, reports the error to the next write, flush or shutdown, and is
//!   retried by the next flush: a flush never reports success for data that is not
//!   in the file.
//! - **Read-your-writes**: a read first waits for every pending write; a write
//!   discards the read-ahead.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::ReadBuf;

use crate::ops::{ReadAt, WriteAt};
use crate::sys::fd::FdRef;

/// Reads in flight ahead of a sequential reader, at most.
const MAX_WINDOW: usize = crate::driver::MAX_READ_AHEAD;
/// The largest read-ahead request.
const MAX_CHUNK: usize = 512 << 10;
/// The smallest read request.
const MIN_CHUNK: usize = 16 << 10;
/// Write-behind requests in flight, at most, before `poll_write` waits.
const MAX_WRITES: usize = 4;
/// The largest write-behind chunk (smaller when `max_buf_size` is). Measured
/// with 256 MiB `write_all` + `sync_all` here (benches/compare, write-stream):
/// 2 MiB chunks ran at 0.5-1.2 GB/s with 715-1070 CPU µs/MiB, 1 MiB and 512 KiB
/// chunks at 1.1-1.2 GB/s with 650-700 µs/MiB, steadily.
const WRITE_CHUNK: usize = 1 << 20;

/// The stream state of a `File`.
#[derive(Debug)]
pub(crate) struct Stream {
    /// The position, shared with the `File`'s clones.
    cursor: Arc<Cursor>,
    read: ReadSide,
    write: WriteSide,
    /// A seek started by `start_seek`, completed by `poll_complete`.
    seek: Option<SeekFrom>,
}

#[derive(Debug, Default)]
struct ReadSide {
    /// Data read ahead: `data[off..]` is the file's content at `at`.
    data: Vec<u8>,
    off: usize,
    at: u64,
    /// The file's write epoch when `data` was read.
    data_epoch: u64,
    /// Reads in flight for the bytes right after `data`, consecutive.
    inflight: VecDeque<Chunk>,
    /// Reads kept in flight (1 ..= MAX_WINDOW) and their size.
    window: usize,
    chunk: usize,
    /// A short read ended the file here: no read-ahead past it until the reader
    /// gets there (then a fresh read looks again).
    stop: Option<u64>,
    spare: Vec<Vec<u8>>,
    /// A duplicate descriptor for every other read-ahead request: glibc runs one
    /// request per descriptor at a time, so two descriptors copy in parallel.
    /// Made when the window first widens (a sequential reader).
    alt: Option<FdRef>,
    /// The next request goes to `alt`.
    use_alt: bool,
    /// Where the last read ended: a read there is sequential.
    next_seq: Option<u64>,
}

#[derive(Debug)]
struct Chunk {
    pos: u64,
    len: usize,
    /// The file's write epoch when the read was submitted.
    epoch: u64,
    /// Submitted because the reader wanted these bytes now (not read ahead):
    /// only such a read may report the end of file.
    fresh: bool,
    read: ChunkRead,
}

#[derive(Debug)]
enum ChunkRead {
    Running(ReadAt<Vec<u8>>),
    /// Finished at its first poll (refused before submission).
    Ready(Option<crate::BufResult<usize, Vec<u8>>>),
}

impl ChunkRead {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<crate::BufResult<usize, Vec<u8>>> {
        match self {
            ChunkRead::Running(r) => Pin::new(r).poll(cx),
            ChunkRead::Ready(done) => match done.take() {
                Some(d) => Poll::Ready(d),
                None => Poll::Ready((
                    Err(io::Error::other("aiofs: internal: read taken twice")),
                    Vec::new(),
                )),
            },
        }
    }
}

#[derive(Debug, Default)]
struct WriteSide {
    /// Accepted, not yet submitted: the bytes for file position `at`.
    buf: Vec<u8>,
    at: u64,
    /// Submitted (or failed and waiting for a retry), oldest first.
    inflight: VecDeque<WriteChunk>,
    /// The first error not yet reported to the caller.
    error: Option<io::Error>,
    spare: Vec<Vec<u8>>,
}

/// One write-behind request: loops on short writes; keeps its data on error.
#[derive(Debug)]
struct WriteChunk {
    buf: Option<Vec<u8>>,
    pos: u64,
    written: usize,
    len: usize,
    write: Option<WriteAt<Vec<u8>>>,
    /// Failed; retried only by a later flush or write (not in the same poll).
    failed: bool,
}

impl WriteChunk {
    fn new(buf: Vec<u8>, pos: u64) -> WriteChunk {
        WriteChunk {
            len: buf.len(),
            buf: Some(buf),
            pos,
            written: 0,
            write: None,
            failed: false,
        }
    }

    /// Drives the request; `Ready(Ok)` when all of it is written.
    fn poll(&mut self, cx: &mut Context<'_>, fd: &FdRef) -> Poll<io::Result<()>> {
        loop {
            if self.failed {
                return Poll::Ready(Err(io::Error::other(
                    "aiofs: internal: failed chunk polled",
                )));
            }
            let write = match &mut self.write {
                Some(w) => w,
                None => {
                    if self.written >= self.len {
                        return Poll::Ready(Ok(()));
                    }
                    let Some(buf) = self.buf.take() else {
                        return Poll::Ready(Err(io::Error::other(
                            "aiofs: internal: chunk lost its buffer",
                        )));
                    };
                    let at = self.pos + self.written as u64;
                    self.write
                        .insert(WriteAt::with_offset(fd.clone(), buf, self.written, at))
                }
            };
            let (res, buf) = ready!(Pin::new(write).poll(cx));
            self.write = None;
            self.buf = Some(buf);
            match res {
                Ok(0) => {
                    self.failed = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "aiofs: the OS wrote 0 bytes",
                    )));
                }
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Submits what is left without waiting for it (a `File` dropped unflushed):
    /// the driver keeps the request until the OS is done.
    fn detach(mut self, fd: &FdRef) {
        if self.write.is_none() {
            if self.written >= self.len {
                return;
            }
            let Some(buf) = self.buf.take() else { return };
            let at = self.pos + self.written as u64;
            self.write = Some(WriteAt::with_offset(fd.clone(), buf, self.written, at));
        }
        if let Some(w) = self.write.take() {
            // Submitted now, or when the in-flight limit lets it; the driver then
            // keeps it until it completes. (A short write's rest is not retried.)
            w.detach();
        }
    }
}

/// The stream position, shared by a `File` and its `try_clone`s as a descriptor
/// offset is shared by `dup`s: `UNKNOWN` until first use (then read from the
/// descriptor's offset), `AT_END` after an `O_APPEND` write (the end of file,
/// resolved when next needed).
#[derive(Debug)]
pub(crate) struct Cursor(AtomicU64);

const UNKNOWN: u64 = u64::MAX;
const AT_END: u64 = u64::MAX - 1;

impl Cursor {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
    fn set(&self, pos: u64) {
        self.0.store(pos, Ordering::Release);
    }
}

impl Stream {
    pub(crate) fn new() -> Stream {
        Stream::with_cursor(Arc::new(Cursor(AtomicU64::new(UNKNOWN))))
    }

    /// A stream sharing `cursor` (a clone's).
    pub(crate) fn with_cursor(cursor: Arc<Cursor>) -> Stream {
        Stream {
            cursor,
            read: ReadSide::default(),
            write: WriteSide::default(),
            seek: None,
        }
    }

    /// Whether any write is accepted but not known to be in the file.
    pub(crate) fn has_pending_writes(&self) -> bool {
        !self.write.buf.is_empty() || !self.write.inflight.is_empty()
    }

    /// The shared position, for a clone.
    pub(crate) fn cursor(&self) -> Arc<Cursor> {
        Arc::clone(&self.cursor)
    }

    /// The position, resolving it from the descriptor the first time, and after
    /// appends (the end of file: callers drain the writes first).
    fn position(&mut self, fd: &FdRef) -> io::Result<u64> {
        let mut f = fd.std();
        let pos = match self.cursor.get() {
            AT_END => f.seek(SeekFrom::End(0))?,
            UNKNOWN => f.stream_position()?,
            pos => return Ok(pos),
        };
        self.cursor.set(pos);
        Ok(pos)
    }

    fn at_end(&self) -> bool {
        self.cursor.get() == AT_END
    }

    // ----- read -----

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        fd: &FdRef,
        max_buf_size: usize,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Read-your-writes: everything written before must be in the file.
        ready!(self.poll_flush(cx, fd))?;
        let mut pos = self.position(fd)?;
        if let Some(target) = self.seek.take() {
            // A seek was started but not completed: complete it now.
            pos = self.apply_seek(fd, target)?;
        }
        if dst.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let max_chunk = max_buf_size.clamp(MIN_CHUNK, MAX_CHUNK);
        let r = &mut self.read;
        if r.data_epoch != fd.epoch() {
            // Written since (positioned writes, `set_len`): read again.
            r.drop_data();
        }
        loop {
            // Bytes at `pos` already read ahead?
            let end = r.at + (r.data.len() - r.off) as u64;
            if pos >= r.at && pos < end {
                let start = r.off + (pos - r.at) as usize;
                let n = dst
                    .remaining()
                    .min(r.data.len() - start)
                    .min(max_buf_size.max(1));
                dst.put_slice(&r.data[start..start + n]);
                pos += n as u64;
                r.off = start + n;
                r.at = pos;
                self.cursor.set(pos);
                r.top_up(cx, fd, pos);
                return Poll::Ready(Ok(()));
            }
            r.drop_data();

            // The next read in flight is for `pos`? If not (random access),
            // forget the read-ahead.
            if r.inflight.front().is_some_and(|c| c.pos != pos) {
                r.inflight.clear();
            }
            if r.inflight.is_empty() {
                // A fresh read, even where the file ended before (it may have grown).
                r.stop = None;
                let limit = read_ahead_limit();
                if r.next_seq == Some(pos) && limit >= 2 {
                    // The reader goes on where the last read ended: read ahead.
                    if r.window < 2 {
                        r.window = 2;
                        r.chunk = dst.remaining().clamp(MIN_CHUNK, max_chunk);
                    }
                    let len = r.chunk.max(dst.remaining().min(max_chunk));
                    r.submit(cx, fd, pos, len, true);
                    r.top_up(cx, fd, pos);
                } else {
                    // First read here: exactly what was asked (as `tokio::fs`),
                    // no read-ahead until the reader proves sequential.
                    r.window = 0;
                    let len = dst.remaining().min(max_buf_size).max(1);
                    r.submit_exact(cx, fd, pos, len);
                }
            }
            let Some(front) = r.inflight.front_mut() else {
                return Poll::Ready(Err(io::Error::other("aiofs: internal: no read in flight")));
            };
            let (res, buf) = ready!(front.read.poll(cx));
            let Some(chunk) = r.inflight.pop_front() else {
                return Poll::Ready(Err(io::Error::other("aiofs: internal: read vanished")));
            };
            if chunk.epoch != fd.epoch() {
                // A write finished after this read was submitted: it may be stale.
                r.recycle(buf);
                r.inflight.clear();
                continue;
            }
            match res {
                Ok(n) => {
                    r.data = buf;
                    r.off = 0;
                    r.at = chunk.pos;
                    r.data_epoch = chunk.epoch;
                    r.next_seq = Some(chunk.pos + n as u64);
                    if n < chunk.len {
                        // Short: the file ends here (for now). Reads beyond it are
                        // for a gap or past the end: drop them.
                        r.stop = Some(chunk.pos + n as u64);
                        r.inflight.clear();
                        if n == 0 {
                            if !chunk.fresh {
                                // Read ahead, maybe long ago: the file may have grown
                                // since. Look again before reporting the end.
                                r.drop_data();
                                r.window = 0;
                                r.next_seq = None;
                                continue;
                            }
                            r.window = 0;
                            r.next_seq = None;
                            return Poll::Ready(Ok(()));
                        }
                    } else if r.window >= 2 {
                        // Sequential: widen the window.
                        r.window = (r.window + 1).min(read_ahead_limit().max(2));
                        r.chunk = (r.chunk * 2).min(max_chunk);
                        if r.alt.is_none() && r.window > 2 {
                            // No second descriptor (EMFILE...): one is enough.
                            r.alt = fd.std().try_clone().ok().map(FdRef::new);
                        }
                    }
                }
                Err(e) => {
                    r.recycle(buf);
                    r.inflight.clear();
                    r.window = 0;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Forgets everything read ahead (after a write, `set_len`, or positioned
    /// writes through `&File`). Reads in flight are orphaned, never waited for.
    pub(crate) fn discard_read_ahead(&mut self) {
        self.read.inflight.clear();
        self.read.drop_data();
        self.read.window = 0;
        self.read.stop = None;
    }

    // ----- write -----

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        fd: &FdRef,
        max_buf_size: usize,
        src: &[&[u8]],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.write.take_error() {
            return Poll::Ready(Err(e));
        }
        let total: usize = src.iter().map(|s| s.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if let Some(target) = self.seek.take() {
            ready!(self.poll_flush(cx, fd))?;
            self.apply_seek(fd, target)?;
        }
        let append = fd.is_append();
        let pos = if append { 0 } else { self.position(fd)? };
        self.discard_read_ahead();
        let chunk = max_buf_size.clamp(1, WRITE_CHUNK);
        let w = &mut self.write;
        // Not contiguous with the buffered bytes (a seek in between): send those.
        if !append && !w.buf.is_empty() && w.at + w.buf.len() as u64 != pos {
            w.submit(cx, fd);
        }
        // Room for more? Wait for the oldest writes when too many are in flight.
        while w.inflight.len() >= MAX_WRITES || (w.buf.len() >= chunk) {
            if w.buf.len() >= chunk && w.inflight.len() < MAX_WRITES {
                w.submit(cx, fd);
                continue;
            }
            ready!(w.poll_front(cx, fd))?;
        }
        if w.buf.is_empty() {
            w.at = pos;
            if w.buf.capacity() == 0 {
                // A whole chunk at once: growing by doubling would copy it again
                // and again.
                w.spare.retain(|b| b.capacity() >= chunk);
                w.buf = w.spare.pop().unwrap_or_else(|| Vec::with_capacity(chunk));
            }
        }
        let mut n = 0;
        for s in src {
            let take = s.len().min(chunk - w.buf.len());
            w.buf.extend_from_slice(&s[..take]);
            n += take;
            if take < s.len() {
                break;
            }
        }
        if w.buf.len() >= chunk {
            w.submit(cx, fd);
        }
        self.cursor
            .set(if append { AT_END } else { pos + n as u64 });
        Poll::Ready(Ok(n))
    }

    /// Submits buffered bytes and waits for every write; the first error, once.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>, fd: &FdRef) -> Poll<io::Result<()>> {
        let w = &mut self.write;
        if !w.buf.is_empty() {
            w.submit(cx, fd);
        }
        // Drive every request (not only the oldest) so they all make progress.
        let mut pending = false;
        for c in w.inflight.iter_mut() {
            if c.failed {
                continue;
            }
            match c.poll(cx, fd) {
                Poll::Pending => pending = true,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    if w.error.is_none() {
                        w.error = Some(e);
                    }
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        w.reap_done();
        if let Some(e) = w.take_error() {
            return Poll::Ready(Err(e));
        }
        if w.inflight.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            // Failed chunks were armed for a retry by `take_error` earlier: go again.
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    // ----- seek -----

    pub(crate) fn start_seek(&mut self, target: SeekFrom) -> io::Result<()> {
        if self.seek.is_some() {
            return Err(io::Error::other(
                "aiofs: a seek is already pending: call poll_complete before start_seek",
            ));
        }
        self.seek = Some(target);
        Ok(())
    }

    pub(crate) fn poll_complete_seek(
        &mut self,
        cx: &mut Context<'_>,
        fd: &FdRef,
    ) -> Poll<io::Result<u64>> {
        match self.seek {
            None => {
                if self.at_end() {
                    ready!(self.poll_flush(cx, fd))?;
                }
                Poll::Ready(self.position(fd))
            }
            Some(target) => {
                if matches!(target, SeekFrom::End(_)) || self.at_end() {
                    // The end of file counts every write made before.
                    ready!(self.poll_flush(cx, fd))?;
                }
                self.seek = None;
                Poll::Ready(self.apply_seek(fd, target))
            }
        }
    }

    fn apply_seek(&mut self, fd: &FdRef, target: SeekFrom) -> io::Result<u64> {
        let new = match target {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => offset(self.position(fd)?, d),
            SeekFrom::End(d) => offset(fd.std().metadata()?.len(), d),
        };
        // As `lseek`: a position must be a valid `off_t`.
        match new.filter(|&p| p <= i64::MAX as u64) {
            Some(p) => {
                if self.cursor.get() != p {
                    // Moved: what was read ahead may have changed through another
                    // descriptor since; read again from the new place.
                    self.discard_read_ahead();
                }
                self.cursor.set(p);
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "aiofs: invalid seek to a negative position or past i64::MAX",
            )),
        }
    }

    // ----- conversions -----

    /// Sets the descriptor's offset to the stream position (for `into_std`).
    pub(crate) fn sync_offset(&mut self, fd: &FdRef) -> io::Result<()> {
        if self.cursor.get() != UNKNOWN {
            let p = self.position(fd)?;
            let mut f = fd.std();
            f.seek(SeekFrom::Start(p))?;
        }
        Ok(())
    }

    /// Hands pending writes to the driver without waiting (the `File` is dropped).
    pub(crate) fn detach(&mut self, fd: &FdRef) {
        let w = &mut self.write;
        if !w.buf.is_empty() {
            let buf = std::mem::take(&mut w.buf);
            w.inflight.push_back(WriteChunk::new(buf, w.at));
        }
        for c in w.inflight.drain(..) {
            c.detach(fd);
        }
    }
}

/// `from + delta`, if it is neither negative nor past `u64::MAX`.
fn offset(from: u64, delta: i64) -> Option<u64> {
    if delta >= 0 {
        from.checked_add(delta as u64)
    } else {
        from.checked_sub(delta.unsigned_abs())
    }
}

impl ReadSide {
    fn drop_data(&mut self) {
        let buf = std::mem::take(&mut self.data);
        self.recycle(buf);
        self.off = 0;
    }

    /// Keeps a buffer for the next read-ahead request. Only buffers of the
    /// current request size are worth keeping: a fresh allocation of that size
    /// costs a page fault per 4 KiB once glibc gave the memory back to the OS.
    fn recycle(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() < self.chunk || buf.capacity() < MIN_CHUNK {
            return;
        }
        buf.clear();
        if self.spare.len() < MAX_WINDOW + 2 {
            self.spare.push(buf);
        } else if let Some(small) = self.spare.iter_mut().min_by_key(|b| b.capacity())
            && small.capacity() < buf.capacity()
        {
            *small = buf;
        }
    }

    fn buffer(&mut self, len: usize) -> Vec<u8> {
        // Smaller spares will never fit again (the request size only grows
        // until the next reset): let them go.
        self.spare.retain(|b| b.capacity() >= len);
        match self.spare.pop() {
            Some(b) => b,
            None => Vec::with_capacity(len),
        }
    }

    /// Starts a read of exactly `len` bytes at `pos`, the reader's own.
    fn submit_exact(&mut self, cx: &mut Context<'_>, fd: &FdRef, pos: u64, len: usize) {
        self.start(
            cx,
            fd.clone(),
            fd.epoch(),
            Vec::with_capacity(len),
            pos,
            true,
        );
    }

    /// Starts a read-ahead of at least `len` bytes at `pos` (on the file's
    /// descriptor and its duplicate in turn); returns its length.
    fn submit(
        &mut self,
        cx: &mut Context<'_>,
        fd: &FdRef,
        pos: u64,
        len: usize,
        fresh: bool,
    ) -> usize {
        let buf = self.buffer(len);
        let len = buf.capacity();
        let target = match (&self.alt, self.use_alt) {
            (Some(alt), true) => alt.clone(),
            _ => fd.clone(),
        };
        self.use_alt = !self.use_alt;
        self.start(cx, target, fd.epoch(), buf, pos, fresh);
        len
    }

    /// Submits a read (its first poll) and queues it to be collected in order.
    fn start(
        &mut self,
        cx: &mut Context<'_>,
        target: FdRef,
        epoch: u64,
        buf: Vec<u8>,
        pos: u64,
        fresh: bool,
    ) {
        let len = buf.capacity();
        let mut read = ReadAt::new(target, buf, pos);
        let read = match Pin::new(&mut read).poll(cx) {
            Poll::Ready(done) => ChunkRead::Ready(Some(done)),
            Poll::Pending => ChunkRead::Running(read),
        };
        self.inflight.push_back(Chunk {
            pos,
            len,
            epoch,
            fresh,
            read,
        });
    }

    /// Keeps `window` reads in flight after `pos`, up to the end seen so far.
    fn top_up(&mut self, cx: &mut Context<'_>, fd: &FdRef, pos: u64) {
        let mut next = match self.inflight.back() {
            Some(c) => c.pos + c.len as u64,
            None => (self.at + (self.data.len() - self.off) as u64).max(pos),
        };
        while self.inflight.len() < self.window {
            if self.stop.is_some_and(|s| next >= s) {
                return;
            }
            let len = self.chunk;
            next += self.submit(cx, fd, next, len, false) as u64;
        }
    }
}

impl WriteSide {
    /// Sends the buffered bytes as one positioned write.
    fn submit(&mut self, cx: &mut Context<'_>, fd: &FdRef) {
        let buf = std::mem::take(&mut self.buf);
        let mut chunk = WriteChunk::new(buf, self.at);
        self.at += chunk.len as u64;
        // First poll submits it; its result is collected later, in order.
        if let Poll::Ready(Err(e)) = chunk.poll(cx, fd)
            && self.error.is_none()
        {
            self.error = Some(e);
        }
        self.inflight.push_back(chunk);
    }

    /// Waits for the oldest write; an error is returned (once) and its data kept.
    fn poll_front(&mut self, cx: &mut Context<'_>, fd: &FdRef) -> Poll<io::Result<()>> {
        if let Some(c) = self.inflight.front_mut()
            && !c.failed
            && let Err(e) = ready!(c.poll(cx, fd))
            && self.error.is_none()
        {
            self.error = Some(e);
        }
        self.reap_done();
        match self.take_error() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Drops the finished writes at the front, recycling their buffers.
    fn reap_done(&mut self) {
        while let Some(c) = self.inflight.front() {
            if c.failed || c.write.is_some() || c.written < c.len {
                break;
            }
            if let Some(c) = self.inflight.pop_front()
                && let Some(mut b) = c.buf
                && self.spare.len() < MAX_WRITES + 1
            {
                b.clear();
                self.spare.push(b);
            }
        }
    }

    /// The error to report, once; the failed writes are then armed for a retry
    /// by the next flush (their data is still here).
    fn take_error(&mut self) -> Option<io::Error> {
        let e = self.error.take()?;
        for c in self.inflight.iter_mut() {
            c.failed = false;
        }
        Some(e)
    }
}

/// The read-ahead window of the driver's settings ([`Config::read_ahead`]);
/// below 2, no read-ahead.
///
/// [`Config::read_ahead`]: crate::Config::read_ahead
fn read_ahead_limit() -> usize {
    crate::driver::get().map_or(crate::driver::DEFAULT_READ_AHEAD, |d| d.read_ahead())
}
