//! Many requests submitted together with `lio_listio`: [`Batch`], and the
//! vectored calls `readv_at` / `writev_at` built on it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use super::{check_range, check_request};
use crate::BufResult;
use crate::buf::{IoBuf, IoBufMut};
use crate::driver::{self, Driver, Group, Token};
use crate::fs::File;
use crate::sys::aio::Aiocb;
use crate::sys::fd::FdRef;

/// Gives a finished request's buffer back, its length set for a read.
type Back<B> = fn(Aiocb, Option<usize>) -> B;

fn read_back<B: IoBufMut>(cb: Aiocb, n: Option<usize>) -> B {
    cb.into_read_buf(n)
}

fn write_back<B: IoBuf>(cb: Aiocb, _n: Option<usize>) -> B {
    cb.into_buf()
}

enum Entry<B> {
    /// Checked and built, not submitted.
    Ready(Aiocb, Back<B>),
    /// Refused before submission.
    Refused(io::Error, B),
}

impl<B> std::fmt::Debug for Entry<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Ready(..) => f.write_str("Ready"),
            Entry::Refused(e, _) => write!(f, "Refused({e})"),
        }
    }
}

/// Independent reads and writes, on one or several files, each with its own
/// buffer and position, submitted with one `lio_listio` call.
///
/// Each request gets its own result and its buffer back, in the order added
/// ([`submit`](Batch::submit)) or as each finishes
/// ([`submit_each`](Batch::submit_each)). Requests that cannot be submitted
/// (a position past `i64::MAX`, a pipe, a misaligned `O_DIRECT` request) get
/// their error without affecting the others; glibc's partial failures are
/// checked request by request. The driver's in-flight limit applies: beyond it,
/// requests wait in order.
///
/// Nothing is submitted before the returned future or stream is first polled.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let (pa, pb) = (dir.path().join("a"), dir.path().join("b"));
/// std::fs::write(&pa, b"0123456789")?;
/// let a = aiofs::File::open(&pa).await?;
/// let b = aiofs::File::create(&pb).await?;
///
/// let mut batch = aiofs::Batch::new();
/// batch.read_at(&a, Vec::with_capacity(3), 0);
/// batch.read_at(&a, Vec::with_capacity(3), 7);
/// batch.write_at(&b, b"xyz".to_vec(), 0);
/// let results = batch.submit().await;
///
/// assert_eq!(results[0].1, b"012");
/// assert_eq!(results[1].1, b"789");
/// assert_eq!(*results[2].0.as_ref().unwrap(), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Batch<B> {
    entries: Vec<Entry<B>>,
}

impl<B> Default for Batch<B> {
    fn default() -> Self {
        Batch {
            entries: Vec::new(),
        }
    }
}

impl<B> Batch<B> {
    /// An empty batch.
    pub fn new() -> Batch<B> {
        Batch::default()
    }

    /// The number of requests added.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no request was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<B: IoBufMut> Batch<B> {
    /// Adds a read of `file` at `pos` into `buf` (as [`File::read_at`]: up to
    /// the buffer's capacity; its length becomes the count read).
    pub fn read_at(&mut self, file: &File, buf: B, pos: u64) -> &mut Batch<B> {
        self.push_read(file.read_fd(), buf, pos);
        self
    }

    /// Adds a read on `fd`, or its error if it cannot be submitted.
    fn push_read(&mut self, fd: FdRef, buf: B, pos: u64) {
        let len = buf.bytes_total();
        let entry = match check_request(&fd, buf.stable_ptr(), len, pos) {
            Ok(()) => Entry::Ready(Aiocb::read(fd, buf, 0, pos), read_back::<B>),
            Err(e) => Entry::Refused(e, buf),
        };
        self.entries.push(entry);
    }
}

impl<B: IoBuf> Batch<B> {
    /// Adds a write of `buf`'s initialised bytes to `file` at `pos` (as
    /// [`File::write_at`]).
    pub fn write_at(&mut self, file: &File, buf: B, pos: u64) -> &mut Batch<B> {
        let fd = file.fd().clone();
        let len = buf.bytes_init();
        let entry = match check_request(&fd, buf.stable_ptr(), len, pos) {
            Ok(()) => Entry::Ready(Aiocb::write(fd, buf, 0, pos), write_back::<B>),
            Err(e) => Entry::Refused(e, buf),
        };
        self.entries.push(entry);
        self
    }

    /// Submits every request (one `lio_listio`, on first poll) and resolves to
    /// their results, in the order they were added.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never blocks: requests in flight are orphaned (they
    /// run to completion in the driver's care; their buffers are freed then).
    pub fn submit(self) -> Submit<B> {
        Submit {
            run: Run::new(self.entries),
        }
    }

    /// Submits every request (one `lio_listio`, on first poll) and yields each
    /// result as it finishes, with the request's index (its order of addition).
    ///
    /// # Cancel safety
    ///
    /// As for [`submit`](Batch::submit).
    pub fn submit_each(self) -> SubmitEach<B> {
        SubmitEach {
            run: Run::new(self.entries),
        }
    }
}

/// The state shared by [`Submit`] and [`SubmitEach`].
struct Run<B> {
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
    fn new(entries: Vec<Entry<B>>) -> Run<B> {
        let n = entries.len();
        Run {
            entries: Some(entries),
            results: (0..n).map(|_| None).collect(),
            submitted: Vec::new(),
            tokens: Vec::new(),
            taken: Vec::new(),
            group: Arc::new(Group::default()),
            driver: None,
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
                    self.results[entry] = Some((res, buf));
                    self.ready.push(entry);
                    self.remaining -= 1;
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

    fn start(&mut self, entries: Vec<Entry<B>>) {
        let mut cbs = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            match entry {
                Entry::Ready(cb, back) => {
                    cbs.push(cb);
                    self.submitted.push((i, back));
                }
                Entry::Refused(e, buf) => {
                    self.results[i] = Some((Err(e), buf));
                    self.ready.push(i);
                    self.remaining -= 1;
                }
            }
        }
        if cbs.is_empty() {
            return;
        }
        let res = match driver::get() {
            Ok(d) => d.submit_group(cbs, &self.group).map(|t| (d, t)),
            Err(e) => Err((e, cbs)),
        };
        match res {
            Ok((driver, tokens)) => {
                self.driver = Some(driver);
                self.taken = vec![false; tokens.len()];
                self.tokens = tokens;
            }
            Err((e, cbs)) => {
                // Nothing was submitted: every request gets the error.
                for (&(i, back), cb) in self.submitted.iter().zip(cbs) {
                    let err = match e.raw_os_error() {
                        Some(code) => io::Error::from_raw_os_error(code),
                        None => io::Error::new(e.kind(), e.to_string()),
                    };
                    self.results[i] = Some((Err(err), back(cb, None)));
                    self.ready.push(i);
                    self.remaining -= 1;
                }
                self.submitted.clear();
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
                driver.orphan_many(&left);
            }
        }
    }
}

/// The future of [`Batch::submit`]: every result, in the order added.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Submit<B> {
    run: Run<B>,
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

/// The stream of [`Batch::submit_each`]: `(index, result)` as each finishes.
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct SubmitEach<B> {
    run: Run<B>,
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
/// As for [`Batch::submit`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ReadvAt<B> {
    inner: Vectored<B>,
}

/// The future of [`File::writev_at`](crate::File::writev_at).
///
/// # Cancel safety
///
/// As for [`Batch::submit`]; part of the data may be written.
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
    file: &File,
    bufs: Vec<B>,
    pos: u64,
    len_of: fn(&B) -> usize,
    add: fn(&mut Batch<B>, &File, B, u64),
) -> Vectored<B> {
    let lens: Vec<usize> = bufs.iter().map(len_of).collect();
    let total = lens.iter().fold(0usize, |a, &l| a.saturating_add(l));
    let fd = file.fd();
    if let Err(e) = check_range(pos, total).and_then(|()| fd.check_seekable()) {
        return Vectored::Refused(Some((e, bufs)));
    }
    let mut batch = Batch::new();
    let mut at = pos;
    for buf in bufs {
        let len = len_of(&buf);
        add(&mut batch, file, buf, at);
        at += len as u64;
    }
    // A refused segment (misaligned O_DIRECT) refuses the whole call.
    if batch
        .entries
        .iter()
        .any(|e| matches!(e, Entry::Refused(..)))
    {
        let mut err = None;
        let mut bufs = Vec::new();
        for entry in batch.entries {
            match entry {
                Entry::Refused(e, b) => {
                    err.get_or_insert(e);
                    bufs.push(b);
                }
                Entry::Ready(cb, back) => bufs.push(back(cb, None)),
            }
        }
        let err = err.unwrap_or_else(|| io::Error::other("aiofs: internal: refused"));
        return Vectored::Refused(Some((err, bufs)));
    }
    Vectored::Running(batch.submit(), lens)
}

impl<B: IoBufMut> ReadvAt<B> {
    pub(crate) fn new(file: &File, bufs: Vec<B>, pos: u64) -> ReadvAt<B> {
        ReadvAt {
            inner: vectored(file, bufs, pos, B::bytes_total, |b, f, buf, at| {
                // Segments of one vectored read stay together on the file's own
                // descriptor.
                b.push_read(f.fd().clone(), buf, at);
            }),
        }
    }
}

impl<B: IoBuf> WritevAt<B> {
    pub(crate) fn new(file: &File, bufs: Vec<B>, pos: u64) -> WritevAt<B> {
        WritevAt {
            inner: vectored(file, bufs, pos, B::bytes_init, |b, f, buf, at| {
                b.write_at(f, buf, at);
            }),
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
