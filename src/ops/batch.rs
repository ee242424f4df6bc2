//! Many requests submitted together with `lio_listio`: the engine of
//! `aiofs::Batch` ([`Submit`], [`SubmitEach`]) and of the vectored calls
//! ([`ReadvAt`], [`WritevAt`]).
//!
//! A request is checked when it is added (range, seekability, `O_DIRECT`
//! alignment) but its aiocb is built only at the first poll, with a use of its
//! file's descriptors: nothing is submitted, and no descriptor is held, before.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use super::{OpenFile, ReadKind, Use, check_range, check_request};
use crate::BufResult;
use crate::buf::{IoBuf, IoBufMut};
use crate::driver::{self, Driver, Group, Release, Token};
use crate::sys::aio::Aiocb;

/// Builds a request's aiocb on the descriptor its use chose.
type Build<B> = fn(&OpenFile, B, u64, Use, usize) -> (Aiocb, Use);
/// Gives a finished request's buffer back, its length set for a read.
type Back<B> = fn(Aiocb, Option<usize>) -> B;

/// One request of a batch, checked, not yet built.
pub(crate) enum Entry<B> {
    Ready {
        file: Arc<OpenFile>,
        buf: B,
        pos: u64,
        build: Build<B>,
        back: Back<B>,
    },
    /// Refused before submission.
    Refused(io::Error, B),
}

impl<B> std::fmt::Debug for Entry<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Ready { pos, .. } => write!(f, "Ready({pos})"),
            Entry::Refused(e, _) => write!(f, "Refused({e})"),
        }
    }
}

impl<B> Entry<B> {
    /// The buffer back, unsubmitted, with the error that refused it (if any).
    fn into_buf(self) -> (Option<io::Error>, B) {
        match self {
            Entry::Ready { buf, .. } => (None, buf),
            Entry::Refused(e, buf) => (Some(e), buf),
        }
    }
}

/// A read of `file` at `pos` into `buf` (as `File::read_at`), or its error.
pub(crate) fn request_read<B: IoBufMut>(file: &Arc<OpenFile>, buf: B, pos: u64) -> Entry<B> {
    match check_request(file, buf.stable_ptr(), buf.bytes_total(), pos) {
        Ok(()) => Entry::Ready {
            file: Arc::clone(file),
            buf,
            pos,
            build: |file, buf, pos, use_, max_dups| {
                let (fd, use_) = file.lane_for_read(use_, ReadKind::Plain, max_dups);
                (Aiocb::read(fd, buf, 0, pos), use_)
            },
            back: |cb, n| cb.into_read_buf(n),
        },
        Err(e) => Entry::Refused(e, buf),
    }
}

/// A write of `buf`'s initialised bytes to `file` at `pos`, or its error.
pub(crate) fn request_write<B: IoBuf>(file: &Arc<OpenFile>, buf: B, pos: u64) -> Entry<B> {
    match check_request(file, buf.stable_ptr(), buf.bytes_init(), pos) {
        Ok(()) => Entry::Ready {
            file: Arc::clone(file),
            buf,
            pos,
            build: |file, buf, pos, use_, _| {
                let append = file.description().is_append();
                let (fd, use_) = file.lane_for_write(use_);
                (Aiocb::write(fd, buf, 0, pos, append), use_)
            },
            back: |cb, _| cb.into_buf(),
        },
        Err(e) => Entry::Refused(e, buf),
    }
}

/// The state shared by [`Submit`] and [`SubmitEach`].
pub(crate) struct Run<B> {
    /// Entries not yet submitted (taken at the first poll).
    entries: Option<Vec<Entry<B>>>,
    results: Vec<Option<BufResult<usize, B>>>,
    /// For each request handed to the driver: its entry index and its way back.
    submitted: Vec<(usize, Back<B>)>,
    tokens: Vec<Token>,
    /// Tokens whose result was taken (not to be orphaned on drop).
    taken: Vec<bool>,
    group: Arc<Group>,
    driver: Option<&'static Driver>,
    /// Some requests are writes (dropped unfinished, they still run).
    writes: bool,
    /// Finished entry indices not yet yielded (for `SubmitEach`).
    ready: Vec<usize>,
    remaining: usize,
}

impl<B> std::fmt::Debug for Run<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("requests", &self.results.len())
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<B: Send + 'static> Run<B> {
    pub(crate) fn new(entries: Vec<Entry<B>>) -> Run<B> {
        let n = entries.len();
        Run {
            entries: Some(entries),
            results: (0..n).map(|_| None).collect(),
            submitted: Vec::new(),
            tokens: Vec::new(),
            taken: Vec::new(),
            group: Arc::new(Group::default()),
            driver: None,
            writes: false,
            ready: Vec::new(),
            remaining: n,
        }
    }

    /// Drives the requests; `Ready` once all have finished.
    fn poll_progress(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.group.register(cx.waker());
        if let Some(entries) = self.entries.take() {
            self.start(entries);
        }
        if let Some(driver) = self.driver {
            let done = self.group.take_done();
            if !done.is_empty() {
                let tokens: Vec<Token> = done.iter().map(|&i| self.tokens[i]).collect();
                let finished = driver.take_done(&tokens);
                for (&i, (res, cb)) in done.iter().zip(finished) {
                    self.taken[i] = true;
                    let (entry, back) = self.submitted[i];
                    let buf = back(cb, res.as_ref().ok().copied());
                    self.settle(entry, res, buf);
                }
            } else {
                driver.keep_listening();
            }
        }
        if self.remaining == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn settle(&mut self, entry: usize, res: io::Result<usize>, buf: B) {
        self.results[entry] = Some((res, buf));
        self.ready.push(entry);
        self.remaining -= 1;
    }

    /// Builds and submits every request (one `lio_listio`).
    fn start(&mut self, entries: Vec<Entry<B>>) {
        let driver = match driver::get().and_then(|d| d.can_submit().map(|()| d)) {
            Ok(d) => d,
            Err(e) => {
                for (i, entry) in entries.into_iter().enumerate() {
                    let (refused, buf) = entry.into_buf();
                    self.settle(i, Err(refused.unwrap_or_else(|| copy_error(&e))), buf);
                }
                return;
            }
        };
        let max_dups = driver.settings().max_pool_fds;
        let mut reqs: Vec<(Aiocb, Option<Release>)> = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            match entry {
                Entry::Refused(e, buf) => self.settle(i, Err(e), buf),
                Entry::Ready {
                    file,
                    buf,
                    pos,
                    build,
                    back,
                } => match file.begin() {
                    Ok(use_) => {
                        let (cb, use_) = build(&file, buf, pos, use_, max_dups);
                        self.writes |= cb.is_write();
                        reqs.push((cb, Some(Box::new(use_))));
                        self.submitted.push((i, back));
                    }
                    Err(e) => self.settle(i, Err(e), buf),
                },
            }
        }
        if reqs.is_empty() {
            return;
        }
        match driver.submit_group(reqs, &self.group) {
            Ok(tokens) => {
                self.driver = Some(driver);
                self.taken = vec![false; tokens.len()];
                self.tokens = tokens;
            }
            Err((e, cbs)) => {
                // Nothing was submitted: every request gets the error.
                let submitted = std::mem::take(&mut self.submitted);
                for (&(i, back), cb) in submitted.iter().zip(cbs) {
                    self.settle(i, Err(copy_error(&e)), back(cb, None));
                }
            }
        }
    }

    fn take_results(&mut self) -> Vec<BufResult<usize, B>> {
        std::mem::take(&mut self.results)
            .into_iter()
            // Called once `remaining` is 0: every entry got its result (refused at
            // start, failed submission, or taken from the driver).
            .map(|r| {
                r.unwrap_or_else(|| unreachable!("aiofs: internal: a batch result is missing"))
            })
            .collect()
    }
}

/// The same error again, for each of several requests.
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl<B> Drop for Run<B> {
    fn drop(&mut self) {
        if let Some(driver) = self.driver {
            let left: Vec<Token> = self
                .tokens
                .iter()
                .zip(&self.taken)
                .filter(|&(_, &taken)| !taken)
                .map(|(&t, _)| t)
                .collect();
            if !left.is_empty() {
                driver.orphan_many(&left, self.writes);
            }
        }
    }
}

/// The future of [`Batch::submit`](crate::Batch::submit): every result, in the
/// order added.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Submit<B> {
    run: Run<B>,
}

impl<B: Send + 'static> Submit<B> {
    pub(crate) fn new(entries: Vec<Entry<B>>) -> Submit<B> {
        Submit {
            run: Run::new(entries),
        }
    }
}

impl<B: Send + Unpin + 'static> Future for Submit<B> {
    type Output = Vec<BufResult<usize, B>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.run.poll_progress(cx) {
            Poll::Ready(()) => Poll::Ready(this.run.take_results()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The stream of [`Batch::submit_each`](crate::Batch::submit_each):
/// `(index, result)` as each finishes.
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct SubmitEach<B> {
    run: Run<B>,
}

impl<B: Send + 'static> SubmitEach<B> {
    pub(crate) fn new(entries: Vec<Entry<B>>) -> SubmitEach<B> {
        SubmitEach {
            run: Run::new(entries),
        }
    }
}

impl<B: Send + Unpin + 'static> Stream for SubmitEach<B> {
    type Item = (usize, BufResult<usize, B>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(i) = this.run.ready.pop() {
                if let Some(r) = this.run.results[i].take() {
                    return Poll::Ready(Some((i, r)));
                }
                continue;
            }
            if this.run.entries.is_none() && this.run.remaining == 0 {
                return Poll::Ready(None);
            }
            let progress = this.run.poll_progress(cx);
            if this.run.ready.is_empty() {
                return match progress {
                    Poll::Ready(()) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                };
            }
        }
    }
}

/// Consecutive ranges as one count, like `preadv`/`pwritev`: the sum of the
/// counts up to and including the first short one; an error counts only if it
/// comes before any byte.
fn fold<B>(results: Vec<BufResult<usize, B>>, lens: &[usize]) -> BufResult<usize, Vec<B>> {
    let mut total = 0usize;
    let mut outcome: Option<io::Result<usize>> = None;
    let mut bufs = Vec::with_capacity(results.len());
    for ((res, buf), &len) in results.into_iter().zip(lens) {
        bufs.push(buf);
        if outcome.is_some() {
            continue;
        }
        match res {
            Ok(n) => {
                total += n;
                if n < len {
                    outcome = Some(Ok(total));
                }
            }
            Err(e) => outcome = Some(if total == 0 { Err(e) } else { Ok(total) }),
        }
    }
    (outcome.unwrap_or(Ok(total)), bufs)
}

/// The future of [`File::readv_at`](crate::File::readv_at).
///
/// # Cancel safety
///
/// As for [`Batch::submit`](crate::Batch::submit).
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ReadvAt<B> {
    inner: Vectored<B>,
}

/// The future of [`File::writev_at`](crate::File::writev_at).
///
/// # Cancel safety
///
/// As for [`Batch::submit`](crate::Batch::submit); part of the data may be
/// written.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WritevAt<B> {
    inner: Vectored<B>,
}

#[derive(Debug)]
enum Vectored<B> {
    /// Refused before submission: the error and the buffers.
    Refused(Option<(io::Error, Vec<B>)>),
    Running(Submit<B>, Vec<usize>),
}

impl<B: Send + Unpin + 'static> Vectored<B> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<BufResult<usize, Vec<B>>> {
        match self {
            Vectored::Refused(r) => match r.take() {
                Some((e, bufs)) => Poll::Ready((Err(e), bufs)),
                None => panic!("aiofs: vectored future polled after completion"),
            },
            Vectored::Running(submit, lens) => match Pin::new(submit).poll(cx) {
                Poll::Ready(results) => Poll::Ready(fold(results, lens)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Checks a vectored request as a whole, then makes one entry per segment.
fn vectored<B: IoBuf>(
    file: &Arc<OpenFile>,
    bufs: Vec<B>,
    pos: u64,
    len_of: fn(&B) -> usize,
    request: fn(&Arc<OpenFile>, B, u64) -> Entry<B>,
) -> Vectored<B> {
    let lens: Vec<usize> = bufs.iter().map(len_of).collect();
    let total = lens.iter().fold(0usize, |a, &l| a.saturating_add(l));
    if let Err(e) = check_range(pos, total).and_then(|()| file.check_seekable()) {
        return Vectored::Refused(Some((e, bufs)));
    }
    let mut at = pos;
    let entries: Vec<Entry<B>> = bufs
        .into_iter()
        .zip(&lens)
        .map(|(buf, &len)| {
            let entry = request(file, buf, at);
            at += len as u64;
            entry
        })
        .collect();
    // A refused segment (misaligned O_DIRECT) refuses the whole call.
    if entries.iter().any(|e| matches!(e, Entry::Refused(..))) {
        let mut err = None;
        let mut bufs = Vec::with_capacity(entries.len());
        for entry in entries {
            let (e, buf) = entry.into_buf();
            if err.is_none() {
                err = e;
            }
            bufs.push(buf);
        }
        let err = err.unwrap_or_else(|| io::Error::other("aiofs: internal: refused"));
        return Vectored::Refused(Some((err, bufs)));
    }
    Vectored::Running(Submit::new(entries), lens)
}

impl<B: IoBufMut> ReadvAt<B> {
    pub(crate) fn new(file: &Arc<OpenFile>, bufs: Vec<B>, pos: u64) -> ReadvAt<B> {
        ReadvAt {
            inner: vectored(file, bufs, pos, B::bytes_total, request_read),
        }
    }
}

impl<B: IoBuf> WritevAt<B> {
    pub(crate) fn new(file: &Arc<OpenFile>, bufs: Vec<B>, pos: u64) -> WritevAt<B> {
        WritevAt {
            inner: vectored(file, bufs, pos, B::bytes_init, request_write),
        }
    }
}

impl<B: IoBufMut> Future for ReadvAt<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().inner.poll(cx)
    }
}

impl<B: IoBuf> Future for WritevAt<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().inner.poll(cx)
    }
}
