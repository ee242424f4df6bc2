//! The sequential stream over positioned AIO: `File`'s `AsyncRead`,
//! `AsyncWrite` and `AsyncSeek`, behaving as a sequential `std::fs::File`
//! would.
//!
//! A `File` and its clones (`try_clone`) share one [`Shared`] stream, as
//! `dup`'ed descriptors share one open file description: one position, updated
//! under one lock (two clones writing at once never write at the same offset;
//! two clones reading never read the same bytes twice), one read-ahead and one
//! write-behind. Any task may wait on the stream's requests: they are polled
//! with a waker that wakes every task waiting on the stream.
//!
//! - [`position`]: the shared position and seeking;
//! - [`read_ahead`]: reads, and the reads in flight ahead of a sequential reader;
//! - [`write_behind`]: buffered writes, several in flight, and their errors.
//!
//! Read-your-writes: a read first waits for the writes made before it (without
//! reporting their errors); a write discards the read-ahead.

mod position;
mod read_ahead;
mod write_behind;

use std::io::{self, SeekFrom};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker, ready};

use tokio::io::ReadBuf;

use crate::ops::OpenFile;
use position::Position;
use read_ahead::ReadSide;
pub(crate) use write_behind::Target;
use write_behind::{MAX_WRITES, WRITE_CHUNK, WriteSide};

/// The stream of a `File` and its clones.
#[derive(Debug)]
pub(crate) struct Shared {
    stream: Mutex<Stream>,
    wakers: Arc<WakeList>,
    /// `wakers` as a waker, for polling the stream's requests.
    waker: Waker,
}

/// The tasks waiting on a stream's requests: woken all at once.
#[derive(Debug, Default)]
struct WakeList(Mutex<Vec<Waker>>);

impl WakeList {
    fn register(&self, waker: &Waker) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }
}

impl Wake for WakeList {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let list = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        list.into_iter().for_each(Waker::wake);
    }
}

impl Shared {
    pub(crate) fn new() -> Arc<Shared> {
        let wakers = Arc::new(WakeList::default());
        Arc::new(Shared {
            stream: Mutex::new(Stream {
                handles: 1,
                ..Stream::default()
            }),
            waker: Waker::from(Arc::clone(&wakers)),
            wakers,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Stream> {
        // Every method leaves the stream consistent before anything that can
        // panic: go on after a panic elsewhere.
        self.stream.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the stream, with a context that wakes the caller's task
    /// (and every other task waiting on the stream) when a request finishes.
    pub(crate) fn with<R>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Stream, &mut Context<'_>) -> R,
    ) -> R {
        self.wakers.register(cx.waker());
        let mut inner = Context::from_waker(&self.waker);
        f(&mut self.lock(), &mut inner)
    }

    /// Runs `f` on the stream, for what needs no waiting.
    pub(crate) fn with_now<R>(&self, f: impl FnOnce(&mut Stream) -> R) -> R {
        f(&mut self.lock())
    }
}

/// The stream state.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    position: Position,
    read: ReadSide,
    write: WriteSide,
    /// The `File`s sharing it (a file and its clones).
    handles: usize,
}

impl Stream {
    // ----- read -----

    /// Reads at the position into `dst`. `settle`: this caller's wait for the
    /// writes made before (kept across polls). `seek`: a seek the caller
    /// started and did not complete (completed first).
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        max_buf_size: usize,
        dst: &mut ReadBuf<'_>,
        settle: &mut Target,
        seek: &mut Option<SeekFrom>,
    ) -> Poll<io::Result<()>> {
        // Read-your-writes: everything written before must be in the file (or
        // have failed: its error is for the writer to see).
        ready!(self.write.poll_quiesce(cx, file, settle));
        if seek.is_some() {
            ready!(self.poll_complete_seek(cx, file, seek, settle))?;
        }
        let pos = ready!(self.position.poll_get(cx, file))?;
        if dst.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let pos = ready!(self.read.poll_read(cx, file, pos, max_buf_size, dst))?;
        self.position.set(pos);
        Poll::Ready(Ok(()))
    }

    // ----- write -----

    /// Accepts bytes of `src` (copied into the write-behind buffer).
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        max_buf_size: usize,
        src: &[&[u8]],
        settle: &mut Target,
        seek: &mut Option<SeekFrom>,
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.write.take_error() {
            return Poll::Ready(Err(e));
        }
        let total: usize = src.iter().map(|s| s.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if seek.is_some() {
            ready!(self.poll_complete_seek(cx, file, seek, settle))?;
        }
        let append = file.description().is_append();
        let pos = if append {
            0
        } else {
            if self.position.at_end() {
                ready!(self.write.poll_quiesce(cx, file, settle));
            }
            ready!(self.position.poll_get(cx, file))?
        };
        self.read.discard();
        self.position.forget_size();
        let chunk = max_buf_size.clamp(1, WRITE_CHUNK);
        let w = &mut self.write;
        // Not contiguous with the buffered bytes (a seek in between): send those.
        if !append && !w.buf.is_empty() && w.at + w.buf.len() as u64 != pos {
            w.submit(cx, file);
        }
        // Room for more? Wait for the oldest writes when too many are in flight.
        while w.chunks() >= MAX_WRITES || w.buf.len() >= chunk {
            if w.buf.len() >= chunk && w.chunks() < MAX_WRITES {
                w.submit(cx, file);
                continue;
            }
            ready!(w.poll_front(cx, file))?;
        }
        if w.buf.is_empty() {
            w.start_buffer(pos, chunk);
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
            w.submit(cx, file);
        }
        if append {
            self.position.set_at_end();
        } else {
            self.position.set(pos + n as u64);
        }
        Poll::Ready(Ok(n))
    }

    /// Writes what was buffered before the call and waits for it; the first
    /// error, once (its data is written again by the next flush).
    pub(crate) fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        flush: &mut Target,
    ) -> Poll<io::Result<()>> {
        self.write.poll_flush(cx, file, flush)
    }

    /// Waits until the writes made before are written or failed, without
    /// reporting errors.
    pub(crate) fn poll_quiesce(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        settle: &mut Target,
    ) -> Poll<()> {
        self.write.poll_quiesce(cx, file, settle)
    }

    /// Whether any write is accepted but not known to be in the file.
    pub(crate) fn has_pending_writes(&self) -> bool {
        self.write.has_pending()
    }

    /// Gives up buffered data not in the file and its error; returns the bytes.
    pub(crate) fn discard_unwritten(&mut self) -> u64 {
        self.write.discard()
    }

    /// Forgets everything read ahead (`set_len`, positioned writes).
    pub(crate) fn discard_read_ahead(&mut self) {
        self.read.discard();
    }

    // ----- seek -----

    /// Completes the seek `seek` (`None`: reports the position). `SeekFrom::End`
    /// and a position at the end count the writes made before (settled first,
    /// their errors not reported).
    pub(crate) fn poll_complete_seek(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        seek: &mut Option<SeekFrom>,
        settle: &mut Target,
    ) -> Poll<io::Result<u64>> {
        if matches!(seek, Some(SeekFrom::End(_))) || self.position.at_end() {
            ready!(self.write.poll_quiesce(cx, file, settle));
        }
        let Some(target) = *seek else {
            return self.position.poll_get(cx, file);
        };
        let before = self.position.current();
        let res = ready!(self.position.poll_seek(cx, file, target));
        *seek = None;
        if let (Some(before), Ok(after)) = (before, &res)
            && before == *after
        {
            return Poll::Ready(res);
        }
        // Moved: what was read ahead may have changed through another
        // descriptor since; read again from the new place.
        self.read.discard();
        Poll::Ready(res)
    }

    // ----- conversions and drop -----

    /// Sets the descriptor's offset to the stream position (for `into_std`).
    pub(crate) fn poll_sync_offset(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
    ) -> Poll<io::Result<()>> {
        if self.position.is_known() {
            let p = ready!(self.position.poll_get(cx, file))?;
            file.set_offset(p)?;
        }
        Poll::Ready(Ok(()))
    }

    /// One more `File` shares the stream (`try_clone`).
    pub(crate) fn add_handle(&mut self) {
        self.handles += 1;
    }

    /// A `File` of the stream is dropped. The last one hands the pending
    /// writes to the driver without waiting (returns true if there were any);
    /// otherwise the buffered bytes start now, and the other handles see
    /// their outcome.
    pub(crate) fn drop_handle(&mut self, file: &Arc<OpenFile>) -> bool {
        self.handles = self.handles.saturating_sub(1);
        if self.handles > 0 {
            // Start them if requests can be submitted from here (not under
            // the signal notifier outside a runtime: they stay buffered).
            if crate::ops::can_submit() {
                let mut cx = Context::from_waker(Waker::noop());
                self.write.submit(&mut cx, file);
            }
            return false;
        }
        self.read.discard();
        let pending = self.write.has_pending();
        self.write.detach(file);
        pending
    }
}
