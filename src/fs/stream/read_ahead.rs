//! Read-ahead: the first read at a position reads what was asked; a reader
//! that goes on where it stopped gets up to `Config::read_ahead` (6 by
//! default, at most [`MAX_WINDOW`]) positioned reads of up to [`MAX_CHUNK`]
//! bytes in flight; a seek or random access drops them. End of file is never
//! cached: when the reader reaches the end again, a fresh read looks for new
//! data. Data read before a write (through any clone or duplicate of the open
//! file description) finished is never served: the description's write epoch
//! tells.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::ReadBuf;

use crate::BufResult;
use crate::ops::{OpenFile, ReadAt};

/// Reads in flight ahead of a sequential reader, at most.
const MAX_WINDOW: usize = crate::driver::MAX_READ_AHEAD;
/// The largest read-ahead request.
const MAX_CHUNK: usize = 512 << 10;
/// The smallest read request.
const MIN_CHUNK: usize = 16 << 10;

#[derive(Debug, Default)]
pub(super) struct ReadSide {
    /// Data read ahead: `data[off..]` is the file's content at `at`.
    data: Vec<u8>,
    off: usize,
    at: u64,
    /// The write epoch when `data` was read.
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
    /// Where the last read ended: a read there is sequential.
    next_seq: Option<u64>,
}

#[derive(Debug)]
struct Chunk {
    pos: u64,
    len: usize,
    /// The write epoch when the read was submitted.
    epoch: u64,
    /// Submitted because the reader wanted these bytes now (not read ahead):
    /// only such a read may report the end of file.
    fresh: bool,
    read: ChunkRead,
}

#[derive(Debug)]
enum ChunkRead {
    Running(ReadAt<Vec<u8>>),
    /// Finished at its first poll (from the page cache, or refused).
    Ready(Option<BufResult<usize, Vec<u8>>>),
}

impl ChunkRead {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<BufResult<usize, Vec<u8>>> {
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

impl ReadSide {
    /// Reads at `pos` into `dst`; returns the new position.
    pub(super) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        mut pos: u64,
        max_buf_size: usize,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<u64>> {
        let max_chunk = max_buf_size.clamp(MIN_CHUNK, MAX_CHUNK);
        let epoch = file.description().epoch();
        if self.data_epoch != epoch {
            // Written since (positioned writes, `set_len`, a clone): read again.
            self.drop_data();
        }
        loop {
            // Bytes at `pos` already read ahead?
            let end = self.at + (self.data.len() - self.off) as u64;
            if pos >= self.at && pos < end {
                let start = self.off + (pos - self.at) as usize;
                let n = dst
                    .remaining()
                    .min(self.data.len() - start)
                    .min(max_buf_size.max(1));
                dst.put_slice(&self.data[start..start + n]);
                pos += n as u64;
                self.off = start + n;
                self.at = pos;
                self.top_up(cx, file, pos);
                return Poll::Ready(Ok(pos));
            }
            self.drop_data();

            // The next read in flight is for `pos`? If not (random access),
            // forget the read-ahead.
            if self.inflight.front().is_some_and(|c| c.pos != pos) {
                self.inflight.clear();
            }
            if self.inflight.is_empty() {
                // A fresh read, even where the file ended before (it may have grown).
                self.stop = None;
                let limit = read_ahead_limit();
                if self.next_seq == Some(pos) && limit >= 2 {
                    // The reader goes on where the last read ended: read ahead.
                    if self.window < 2 {
                        self.window = 2;
                        self.chunk = dst.remaining().clamp(MIN_CHUNK, max_chunk);
                    }
                    let len = self.chunk.max(dst.remaining().min(max_chunk));
                    self.submit(cx, file, pos, len, true);
                    self.top_up(cx, file, pos);
                } else {
                    // First read here: exactly what was asked (as `tokio::fs`),
                    // no read-ahead until the reader proves sequential.
                    self.window = 0;
                    let len = dst.remaining().min(max_buf_size).max(1);
                    self.start(cx, file, Vec::with_capacity(len), pos, true, false);
                }
            }
            let Some(front) = self.inflight.front_mut() else {
                return Poll::Ready(Err(io::Error::other("aiofs: internal: no read in flight")));
            };
            let (res, buf) = ready!(front.read.poll(cx));
            let Some(chunk) = self.inflight.pop_front() else {
                return Poll::Ready(Err(io::Error::other("aiofs: internal: read vanished")));
            };
            if chunk.epoch != file.description().epoch() {
                // A write finished after this read was submitted: it may be stale.
                self.recycle(buf);
                self.inflight.clear();
                continue;
            }
            match res {
                Ok(n) => {
                    self.data = buf;
                    self.off = 0;
                    self.at = chunk.pos;
                    self.data_epoch = chunk.epoch;
                    self.next_seq = Some(chunk.pos + n as u64);
                    if n < chunk.len {
                        // Short: the file ends here (for now). Reads beyond it are
                        // for a gap or past the end: drop them.
                        self.stop = Some(chunk.pos + n as u64);
                        self.inflight.clear();
                        if n == 0 {
                            self.window = 0;
                            self.next_seq = None;
                            if !chunk.fresh {
                                // Read ahead, maybe long ago: the file may have grown
                                // since. Look again before reporting the end.
                                self.drop_data();
                                continue;
                            }
                            return Poll::Ready(Ok(pos));
                        }
                    } else if self.window >= 2 {
                        // Sequential: widen the window.
                        self.window = (self.window + 1).min(read_ahead_limit().max(2));
                        self.chunk = (self.chunk * 2).min(max_chunk);
                    }
                }
                Err(e) => {
                    self.recycle(buf);
                    self.inflight.clear();
                    self.window = 0;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Forgets everything read ahead (after a write, `set_len`, a seek).
    /// Reads in flight are orphaned, never waited for.
    pub(super) fn discard(&mut self) {
        self.inflight.clear();
        self.drop_data();
        self.window = 0;
        self.stop = None;
    }

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

    /// Starts a read-ahead of at least `len` bytes at `pos`; returns its length.
    fn submit(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        pos: u64,
        len: usize,
        fresh: bool,
    ) -> usize {
        let buf = self.buffer(len);
        let len = buf.capacity();
        self.start(cx, file, buf, pos, fresh, true);
        len
    }

    /// Submits a read (its first poll) and queues it to be collected in order.
    fn start(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        buf: Vec<u8>,
        pos: u64,
        fresh: bool,
        ahead: bool,
    ) {
        let len = buf.capacity();
        let epoch = file.description().epoch();
        let mut read = if ahead {
            ReadAt::ahead(Arc::clone(file), buf, pos)
        } else {
            ReadAt::new(Arc::clone(file), buf, pos)
        };
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

    /// Keeps `window` reads in flight after `pos`, up to the end seen so far
    /// and the file's size as the kernel knows it now (no read ahead of the
    /// end: when the reader gets there, a fresh read looks for new data).
    fn top_up(&mut self, cx: &mut Context<'_>, file: &Arc<OpenFile>, pos: u64) {
        let mut next = match self.inflight.back() {
            Some(c) => c.pos + c.len as u64,
            None => (self.at + (self.data.len() - self.off) as u64).max(pos),
        };
        if self.inflight.len() >= self.window {
            return;
        }
        let size = file.size_hint();
        while self.inflight.len() < self.window {
            if next >= size || self.stop.is_some_and(|s| next >= s) {
                return;
            }
            let len = self.chunk;
            next += self.submit(cx, file, next, len, false) as u64;
        }
    }
}

/// The read-ahead window of the driver's settings ([`Config::read_ahead`]);
/// below 2, no read-ahead.
///
/// [`Config::read_ahead`]: crate::Config::read_ahead
fn read_ahead_limit() -> usize {
    crate::driver::get().map_or(crate::driver::DEFAULT_READ_AHEAD, |d| {
        d.settings().read_ahead
    })
}
