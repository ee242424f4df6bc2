//! Write-behind: `poll_write` copies into an owned buffer and returns; full
//! buffers go out as positioned writes, several in flight.
//!
//! Errors: a failed write keeps its data and its error; the error is reported
//! once, by the next `write`, `flush`, `shutdown` or `sync_*` (never by reads,
//! `metadata`, `seek`, `set_len` or `try_clone`), and the next flush writes the
//! data again: a flush never reports success for data that is not in the file.
//! Two exceptions: data given up with `File::discard_unwritten`, and an
//! `O_APPEND` write whose outcome glibc lost (it may have been appended:
//! writing it again could append it twice), which is reported and dropped.
//!
//! Each chunk has a sequence number: a flush (or a read that must see the
//! writes before it) waits for the chunks that existed when it started, not
//! for those another clone keeps adding.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker, ready};

use crate::driver::is_outcome_unknown;
use crate::ops::{OpenFile, WriteAt};

/// Write-behind requests in flight, at most, before `poll_write` waits.
pub(super) const MAX_WRITES: usize = 4;
/// The largest write-behind chunk (smaller when `max_buf_size` is). Measured
/// with 256 MiB `write_all` + `sync_all` here (benches/compare, write-stream):
/// 2 MiB chunks ran at 0.5-1.2 GB/s with 715-1070 CPU µs/MiB, 1 MiB and 512 KiB
/// chunks at 1.1-1.2 GB/s with 650-700 µs/MiB, steadily.
pub(super) const WRITE_CHUNK: usize = 1 << 20;

/// The chunks a wait covers: those numbered below it.
pub(crate) type Target = Option<u64>;

/// Whether a chunk may start: every older chunk it overlaps is done; or one of
/// them still runs (or waits for one that runs); or every one of them that is
/// not done failed, or waits behind a failed one (for a retry by a flush).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Run,
    Running,
    Failed,
}

impl Gate {
    /// The gate of a chunk held by two older ones: one that runs will wake it.
    fn and(self, other: Gate) -> Gate {
        match (self, other) {
            (Gate::Running, _) | (_, Gate::Running) => Gate::Running,
            (Gate::Failed, _) | (_, Gate::Failed) => Gate::Failed,
            (Gate::Run, Gate::Run) => Gate::Run,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct WriteSide {
    /// Accepted, not yet submitted: the bytes for file position `at`.
    pub(super) buf: Vec<u8>,
    pub(super) at: u64,
    /// Submitted (or failed and waiting for a retry), oldest first.
    inflight: VecDeque<WriteChunk>,
    /// The first error not yet reported to the caller.
    error: Option<io::Error>,
    spare: Vec<Vec<u8>>,
    /// The number the next chunk gets.
    next_seq: u64,
}

/// One write-behind request: loops on short writes; keeps its data on error.
#[derive(Debug)]
struct WriteChunk {
    seq: u64,
    /// To an `O_APPEND` file: ordered behind every older chunk.
    append: bool,
    buf: Option<Vec<u8>>,
    pos: u64,
    written: usize,
    len: usize,
    write: Option<WriteAt<Vec<u8>>>,
    /// Failed; retried only by a later flush or write (not in the same poll).
    failed: bool,
}

impl WriteChunk {
    fn new(seq: u64, buf: Vec<u8>, pos: u64, append: bool) -> WriteChunk {
        WriteChunk {
            seq,
            append,
            len: buf.len(),
            buf: Some(buf),
            pos,
            written: 0,
            write: None,
            failed: false,
        }
    }

    /// Whether it is written, or given up.
    fn is_done(&self) -> bool {
        !self.failed && self.write.is_none() && self.written >= self.len
    }

    /// Whether it and `other` must reach the file in their order.
    fn overlaps(&self, other: &WriteChunk) -> bool {
        self.append
            || other.append
            || (self.pos < other.pos + other.len as u64 && other.pos < self.pos + self.len as u64)
    }

    /// Drives the request; `Ready(Ok)` when all of it is written.
    fn poll(&mut self, cx: &mut Context<'_>, file: &Arc<OpenFile>) -> Poll<io::Result<()>> {
        loop {
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
                    self.write.insert(WriteAt::with_offset(
                        Arc::clone(file),
                        buf,
                        self.written,
                        at,
                    ))
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
                Err(e) if is_outcome_unknown(&e) => {
                    // Never written again: it may be in the file already.
                    self.written = self.len;
                    return Poll::Ready(Err(e));
                }
                Err(e) => {
                    self.failed = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Submits what is left without waiting for it (the `File` is gone): the
    /// driver keeps the request until the OS is done, and holds the runtime's
    /// shutdown for it. (A short write's rest is not written; a refusal is the
    /// write's own error: nobody is left to report it to.)
    fn detach(mut self, file: &Arc<OpenFile>) {
        if self.write.is_none() {
            if self.written >= self.len {
                return;
            }
            let Some(buf) = self.buf.take() else { return };
            let at = self.pos + self.written as u64;
            self.write = Some(WriteAt::with_offset(
                Arc::clone(file),
                buf,
                self.written,
                at,
            ));
        }
        if let Some(w) = self.write.take() {
            let _ = w.detach();
        }
    }

    /// Waits on this thread for its request in flight, if any (the `File` is
    /// gone and no request can be submitted from here; the driver completes
    /// the request whether or not a runtime listens).
    fn wait_here(&mut self) {
        let Some(write) = self.write.take() else {
            return;
        };
        let (res, buf) = wait_on_this_thread(write);
        self.buf = Some(buf);
        match res {
            Ok(n) => self.written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The outcome unknown (never written again), or the write's own
            // error: given up, as a detached request's (nobody is left to
            // report it to).
            Err(_) => self.written = self.len,
        }
    }

    /// Writes what is left with `pwrite` on this thread (the `File` is gone
    /// and no request can be submitted from here), as a `BufWriter` dropped
    /// unflushed does.
    fn write_here(mut self, file: &Arc<OpenFile>) {
        self.wait_here();
        if self.written >= self.len {
            return;
        }
        let at = self.pos + self.written as u64;
        if let Some(rest) = self.buf.as_ref().and_then(|b| b.get(self.written..)) {
            let _ = file.write_all_blocking(rest, at);
        }
    }
}

/// Polls `fut` on this thread until it is ready, parking in between: for a
/// request already in flight, which the driver completes (and wakes) from
/// its own threads or any runtime's listener.
fn wait_on_this_thread<F: Future + Unpin>(mut fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = Pin::new(&mut fut).poll(&mut cx) {
            return out;
        }
        // A wake-up between the poll and here makes `park` return at once.
        std::thread::park();
    }
}

impl WriteSide {
    /// Whether any write is accepted but not known to be in the file.
    pub(super) fn has_pending(&self) -> bool {
        !self.buf.is_empty() || !self.inflight.is_empty()
    }

    /// How many writes are in flight or failed.
    pub(super) fn chunks(&self) -> usize {
        self.inflight.len()
    }

    /// The error to report, once; the failed writes are then armed for a retry
    /// by the next flush (their data is still here).
    pub(super) fn take_error(&mut self) -> Option<io::Error> {
        let e = self.error.take()?;
        for c in self.inflight.iter_mut() {
            c.failed = false;
        }
        Some(e)
    }

    fn record(&mut self, e: io::Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// A buffer of `chunk` bytes for new data at `pos`.
    pub(super) fn start_buffer(&mut self, pos: u64, chunk: usize) {
        self.at = pos;
        if self.buf.capacity() == 0 {
            // A whole chunk at once: growing by doubling would copy it again
            // and again.
            self.spare.retain(|b| b.capacity() >= chunk);
            self.buf = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(chunk));
        }
    }

    /// Sends the buffered bytes as one positioned write (its first poll).
    pub(super) fn submit(&mut self, cx: &mut Context<'_>, file: &Arc<OpenFile>) {
        if self.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        let append = file.description().is_append();
        let chunk = WriteChunk::new(self.next_seq, buf, self.at, append);
        self.next_seq += 1;
        self.at += chunk.len as u64;
        self.inflight.push_back(chunk);
        // Its first poll submits it (unless an older overlapping chunk is
        // unfinished); the result is collected later, in order.
        let last = self.inflight.len() - 1;
        let _ = self.poll_chunk(last, cx, file);
    }

    /// Whether chunk `i` may run: every older chunk it overlaps is done. glibc
    /// runs one descriptor's requests in order, but a request whose result was
    /// lost to a full signal queue runs again later: two overlapping chunks in
    /// flight at once could then land in the wrong order (and a retried failed
    /// chunk likewise).
    ///
    /// Worked out oldest first, in one pass: an older chunk that is not done
    /// and has no request (held itself, or armed for a retry) passes on its
    /// own gate. A chunk held, through any chain of such chunks, by a failed
    /// one is `Failed`: nothing in flight would ever wake it. It is `Running`
    /// only if the chain ends at a chunk that runs (or may start: the passes
    /// poll oldest first, so that one starts before it is looked at).
    fn may_run(&self, i: usize) -> Gate {
        if self.inflight[i].write.is_some() {
            return Gate::Run;
        }
        let mut gates: Vec<Gate> = Vec::with_capacity(i + 1);
        for (j, c) in self.inflight.range(..=i).enumerate() {
            let gate = if c.write.is_some() {
                Gate::Run
            } else {
                self.inflight
                    .range(..j)
                    .zip(&gates)
                    .filter(|(o, _)| !o.is_done() && o.overlaps(c))
                    .map(|(o, &gate)| {
                        if o.failed || gate == Gate::Failed {
                            Gate::Failed
                        } else {
                            // Runs, or starts first, or waits for one that
                            // runs: a completion wakes us.
                            Gate::Running
                        }
                    })
                    .fold(Gate::Run, Gate::and)
            };
            gates.push(gate);
        }
        gates.pop().unwrap_or(Gate::Run)
    }

    /// Drives chunk `i` if it may run; records its error. `Pending` if it runs
    /// or waits for an older one that runs; `Ready(false)` if it failed or
    /// waits behind an older one that failed (whose error is reported first;
    /// the next flush writes them again, in order).
    fn poll_chunk(&mut self, i: usize, cx: &mut Context<'_>, file: &Arc<OpenFile>) -> Poll<bool> {
        if self.inflight[i].failed {
            return Poll::Ready(false);
        }
        match self.may_run(i) {
            Gate::Run => {}
            Gate::Running => return Poll::Pending,
            Gate::Failed => return Poll::Ready(false),
        }
        match self.inflight[i].poll(cx, file) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(true),
            Poll::Ready(Err(e)) => {
                self.record(e);
                Poll::Ready(false)
            }
        }
    }

    /// Waits for the oldest write; its error is returned (once), its data kept.
    pub(super) fn poll_front(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
    ) -> Poll<io::Result<()>> {
        if !self.inflight.is_empty() {
            ready!(self.poll_chunk(0, cx, file));
        }
        self.reap_done();
        match self.take_error() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Drives the writes that `target` covers (set at the first call: the
    /// buffered bytes are submitted and every chunk so far is covered) until
    /// each is written or failed.
    fn poll_settle(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        target: &mut Target,
    ) -> Poll<()> {
        let upto = *target.get_or_insert_with(|| {
            self.submit(cx, file);
            self.next_seq
        });
        // Oldest first, so that a chunk an older one was holding back starts
        // in the same pass.
        let mut pending = false;
        for i in 0..self.inflight.len() {
            if self.inflight[i].seq < upto && self.poll_chunk(i, cx, file).is_pending() {
                pending = true;
            }
        }
        self.reap_done();
        if pending {
            return Poll::Pending;
        }
        *target = None;
        Poll::Ready(())
    }

    /// Waits until the writes before this call are written or failed, without
    /// reporting their errors (for reads, `metadata`, `seek`, `set_len`,
    /// `try_clone`).
    pub(super) fn poll_quiesce(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        target: &mut Target,
    ) -> Poll<()> {
        self.poll_settle(cx, file, target)
    }

    /// Writes everything buffered before the call and waits for it; the first
    /// error, once (the failed data is written again by the next flush).
    pub(super) fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        target: &mut Target,
    ) -> Poll<io::Result<()>> {
        // Chunks that failed before were armed for this retry when their error
        // was reported; a chunk still marked failed has an error not reported yet.
        ready!(self.poll_settle(cx, file, target));
        match self.take_error() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Drops the finished writes at the front, recycling their buffers.
    fn reap_done(&mut self) {
        while self.inflight.front().is_some_and(WriteChunk::is_done) {
            if let Some(c) = self.inflight.pop_front()
                && let Some(mut b) = c.buf
                && self.spare.len() < MAX_WRITES + 1
            {
                b.clear();
                self.spare.push(b);
            }
        }
    }

    /// Gives up the data that is not in the file and not being written (failed
    /// chunks, buffered bytes) and the pending error; returns the bytes given up.
    pub(super) fn discard(&mut self) -> u64 {
        let mut dropped = self.buf.len() as u64;
        self.buf.clear();
        self.error = None;
        self.inflight.retain(|c| {
            if c.write.is_none() && c.written < c.len {
                dropped += (c.len - c.written) as u64;
                false
            } else {
                true
            }
        });
        dropped
    }

    /// Hands pending writes to the driver without waiting (the last `File` of
    /// the description is dropped): the chunks oldest first, then the
    /// buffered bytes (the newest). They all go to the file's own descriptor,
    /// on which glibc runs them in that order, after the requests already in
    /// flight. Where no request can be submitted, see [`Self::write_here`];
    /// in a child forked without exec, nothing is written (the data, and the
    /// requests in flight, are the parent's).
    pub(super) fn detach(&mut self, file: &Arc<OpenFile>) {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let append = file.description().is_append();
            let chunk = WriteChunk::new(self.next_seq, buf, self.at, append);
            self.next_seq += 1;
            self.inflight.push_back(chunk);
        }
        let chunks = std::mem::take(&mut self.inflight);
        if crate::ops::can_submit() {
            for c in chunks {
                c.detach(file);
            }
        } else if !crate::ops::in_forked_child() {
            Self::write_here(chunks, file);
        }
    }

    /// Where no request can be submitted (the signal notifier outside a
    /// runtime): the chunks without a request (held, or failed) and the
    /// buffered bytes are written with `pwrite` on this thread, oldest first,
    /// each after the requests in flight that it overlaps, waited for here
    /// (they are in glibc's queue already: a `pwrite` would overtake them).
    /// Requests in flight that nothing after them overlaps run on in the
    /// driver's care.
    fn write_here(chunks: VecDeque<WriteChunk>, file: &Arc<OpenFile>) {
        let mut running: Vec<WriteChunk> = Vec::new();
        for c in chunks {
            if c.write.is_some() {
                running.push(c);
                continue;
            }
            if c.written >= c.len {
                continue;
            }
            let (before, rest): (Vec<_>, Vec<_>) =
                running.into_iter().partition(|r| r.overlaps(&c));
            running = rest;
            for r in before {
                r.write_here(file);
            }
            c.write_here(file);
        }
        for r in running {
            r.detach(file);
        }
    }
}
