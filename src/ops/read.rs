//! `aio_read`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{InFlight, OpenFile, Pending, ReadKind, Use, admit, direct_stop};
use crate::BufResult;
use crate::buf::IoBufMut;
use crate::driver::{self, stats};
use crate::sys::aio::Aiocb;
use crate::sys::nowait::{self, Outcome};

/// The future of [`File::read_at`](crate::File::read_at).
///
/// Resolves to the count read and the buffer, whose length is set to that count.
///
/// On Linux, a read of up to [`Config::nowait_max`](crate::Config::nowait_max)
/// bytes is first tried from the page cache (`preadv2(RWF_NOWAIT)`) in the first
/// poll, and completes there if the cache holds it all; what the cache does not
/// hold is read with AIO. The count is the same either way: short only at the
/// end of the file (or on an error after some bytes were read).
///
/// # Cancel safety
///
/// Dropping it never blocks: the request is orphaned and its buffer freed once
/// the OS is done with it. The bytes it may have read are lost with the buffer.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ReadAt<B> {
    state: State<B>,
}

#[derive(Debug)]
enum State<B> {
    Idle {
        req: Pending<B>,
        /// The stream's read-ahead (its own descriptor pool policy).
        ahead: bool,
    },
    /// `fast` bytes were read from the page cache before the request, which
    /// reads the rest.
    Running {
        req: InFlight,
        fast: usize,
    },
    Done,
}

impl<B: IoBufMut> ReadAt<B> {
    pub(crate) fn new(file: Arc<OpenFile>, buf: B, pos: u64) -> ReadAt<B> {
        ReadAt::with_offset(file, buf, 0, pos)
    }

    /// Reads into `buf[off..capacity]`; the first `off` bytes must be initialised.
    pub(crate) fn with_offset(file: Arc<OpenFile>, buf: B, off: usize, pos: u64) -> ReadAt<B> {
        ReadAt {
            state: State::Idle {
                req: Pending {
                    file,
                    buf,
                    off,
                    pos,
                },
                ahead: false,
            },
        }
    }

    /// A read-ahead of the stream.
    pub(crate) fn ahead(file: Arc<OpenFile>, buf: B, pos: u64) -> ReadAt<B> {
        ReadAt {
            state: State::Idle {
                req: Pending {
                    file,
                    buf,
                    off: 0,
                    pos,
                },
                ahead: true,
            },
        }
    }
}

impl<B: IoBufMut> Future for ReadAt<B> {
    type Output = BufResult<usize, B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, State::Done) {
            State::Idle {
                req:
                    Pending {
                        file,
                        mut buf,
                        off,
                        pos,
                    },
                ahead,
            } => {
                let len = buf.bytes_total().saturating_sub(off);
                let ptr = buf.stable_ptr().wrapping_add(off);
                let (driver, use_) = match admit(&file, ptr, len, pos) {
                    Ok(p) => p,
                    Err(e) => return Poll::Ready((Err(e), buf)),
                };
                let mut fast = 0;
                let mut kind = if ahead {
                    ReadKind::Ahead
                } else {
                    ReadKind::Plain
                };
                if len > 0
                    && len <= driver.settings().nowait_max
                    && file.description().nowait_allowed()
                {
                    // A read served here never returns `Pending`: respect Tokio's
                    // task budget so that a loop of them still yields.
                    let Poll::Ready(coop) = tokio::task::coop::poll_proceed(cx) else {
                        drop(use_);
                        this.state = State::Idle {
                            req: Pending {
                                file,
                                buf,
                                off,
                                pos,
                            },
                            ahead,
                        };
                        return Poll::Pending;
                    };
                    match from_cache(&use_, &mut buf, off, pos, len) {
                        Cached::All(n) => {
                            coop.made_progress();
                            stats::add(&stats::NOWAIT_READS, 1);
                            return Poll::Ready((Ok(n), buf));
                        }
                        Cached::Part(n) => {
                            if n > 0 {
                                stats::add(&stats::NOWAIT_READS, 1);
                            }
                            stats::add(&stats::NOWAIT_MISSES, 1);
                            fast = n;
                            if !ahead {
                                kind = ReadKind::Miss;
                            }
                        }
                    }
                }
                let (fd, use_) = file.lane_for_read(use_, kind, driver.settings().max_pool_fds);
                let cb = Aiocb::read(fd, buf, off + fast, pos + fast as u64);
                match InFlight::submit(driver, cb, use_, cx) {
                    Ok(req) => {
                        this.state = State::Running { req, fast };
                        Poll::Pending
                    }
                    Err((e, cb)) => {
                        let buf = cb.into_read_buf(None);
                        Poll::Ready((if fast > 0 { Ok(fast) } else { Err(e) }, buf))
                    }
                }
            }
            State::Running { mut req, fast } => match req.poll(cx) {
                Poll::Pending => {
                    this.state = State::Running { req, fast };
                    Poll::Pending
                }
                Poll::Ready((res, cb)) => {
                    let buf = cb.into_read_buf(res.as_ref().ok().copied());
                    let res = match res {
                        Ok(n) => Ok(fast + n),
                        // The bytes read before the error are the result, as a
                        // short read (the error shows up again on the next read).
                        Err(_) if fast > 0 => Ok(fast),
                        Err(e) => Err(e),
                    };
                    Poll::Ready((res, buf))
                }
            },
            State::Done => panic!("aiofs: ReadAt polled after completion"),
        }
    }
}

/// What the page cache gave.
enum Cached {
    /// The whole read (`len` bytes, or fewer at the end of the file).
    All(usize),
    /// This many bytes (maybe 0); the rest must be read with AIO.
    Part(usize),
}

/// Reads `buf[off..off + len]` from the page cache as far as it holds it.
fn from_cache<B: IoBufMut>(use_: &Use, buf: &mut B, off: usize, pos: u64, len: usize) -> Cached {
    let file = use_.file();
    let fd = file.fd().borrow();
    let mut done = 0;
    // A short count means the cache held only the start, or the file ends there:
    // the next try tells (0 at the end, `EAGAIN` for a miss). Bounded, in case the
    // file keeps growing under us.
    for _ in 0..4 {
        let at = pos + done as u64;
        match nowait::read(fd, buf, off + done, at) {
            Outcome::Read(0) => {
                // Linux 5.9 and 5.10 may return 0 before the end of the file
                // (`man preadv2`, BUGS; tokio#3803): believe it only if the file
                // ends there. Otherwise AIO reads the rest (and its 0 is true).
                return match crate::sys::fd::cached_size(fd) {
                    Ok(size) if at >= size => Cached::All(done),
                    _ => Cached::Part(done),
                };
            }
            Outcome::Read(n) => {
                done += n;
                if done >= len {
                    return Cached::All(done);
                }
            }
            Outcome::Miss | Outcome::Failed => break,
            Outcome::Unsupported => {
                file.description().refuse_nowait();
                break;
            }
        }
    }
    Cached::Part(done)
}

/// The one read-until-full loop: reads from file position `pos` into
/// `buf[from..capacity]` until it is full or the file ends; returns the count
/// in the buffer. On `O_DIRECT`, a short count that would leave the next read
/// misaligned is the end of the file.
async fn fill_at<B: IoBufMut>(
    file: &Arc<OpenFile>,
    mut buf: B,
    from: usize,
    pos: u64,
) -> BufResult<usize, B> {
    let total = buf.bytes_total();
    let mut filled = from;
    while filled < total {
        let at = pos.saturating_add((filled - from) as u64);
        let (res, b) = ReadAt::with_offset(Arc::clone(file), buf, filled, at).await;
        buf = b;
        match res {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                let at = pos.saturating_add((filled - from) as u64);
                if filled < total && direct_stop(file, at) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(filled), buf)
}

/// `read_exact_at`: `UnexpectedEof` if the file ends before the buffer is full.
pub(crate) async fn read_exact_at<B: IoBufMut>(
    file: Arc<OpenFile>,
    buf: B,
    pos: u64,
) -> BufResult<(), B> {
    let total = buf.bytes_total();
    let (res, buf) = fill_at(&file, buf, 0, pos).await;
    let res = res.and_then(|filled| {
        if filled == total {
            return Ok(());
        }
        let at = pos.saturating_add(filled as u64);
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("aiofs: end of file at {at}, {filled} of {total} bytes read"),
        ))
    });
    (res, buf)
}

/// Reads from `pos` to the end of the file, appending to `buf`, which grows
/// (with `try_reserve`: a size the allocator refuses is `OutOfMemory`, never an
/// abort); `hint`: the expected size. Returns the count read.
pub(crate) async fn read_to_end_at(
    file: &Arc<OpenFile>,
    buf: &mut Vec<u8>,
    pos: u64,
    hint: usize,
) -> io::Result<usize> {
    let start = buf.len();
    // One byte more than the expected size, so that a file of exactly that
    // size ends with a short read instead of needing another one.
    reserve(buf, hint.saturating_add(1).max(64))?;
    loop {
        let filled = buf.len();
        let at = pos.saturating_add((filled - start) as u64);
        let (res, b) = fill_at(file, std::mem::take(buf), filled, at).await;
        *buf = b;
        let filled_now = res?;
        if filled_now < buf.capacity() {
            return Ok(filled_now - start);
        }
        reserve(buf, buf.capacity().max(8192))?;
    }
}

/// Reads a whole file of about `hint` bytes, for `aiofs::read`.
///
/// A file the fast path may read whole (at most
/// [`Config::nowait_max`](crate::Config::nowait_max) bytes, not `O_DIRECT`) is
/// read from the page cache on the caller's thread. If the cache does not hold
/// all of it, the rest is read by one task on Tokio's blocking pool, as
/// `tokio::fs::read` does: a cold small file costs one thread hop there, where
/// an AIO request costs two (glibc's worker, then the completion signal) and
/// about twice the CPU. The miss has already started the kernel's read-ahead,
/// so the device works while the task starts. Any other file is read with AIO.
pub(crate) async fn read_whole(file: &Arc<OpenFile>, hint: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let want = hint.saturating_add(1).max(64);
    let fast = driver::get()?.settings().nowait_max;
    if want > fast || !file.description().nowait_allowed() {
        read_to_end_at(file, &mut buf, 0, hint).await?;
        return Ok(buf);
    }
    // One byte more than the expected size: a file of exactly that size then
    // ends with a short read.
    reserve(&mut buf, want)?;
    tokio::task::coop::consume_budget().await;
    {
        let use_ = file.begin()?;
        let want = buf.capacity();
        match from_cache(&use_, &mut buf, 0, 0, want) {
            Cached::All(n) if n < want => {
                stats::add(&stats::NOWAIT_READS, 1);
                return Ok(buf);
            }
            Cached::All(_) => stats::add(&stats::NOWAIT_READS, 1),
            Cached::Part(n) => {
                if n > 0 {
                    stats::add(&stats::NOWAIT_READS, 1);
                }
                stats::add(&stats::NOWAIT_MISSES, 1);
            }
        }
    }
    let file = Arc::clone(file);
    super::asyncify(move || {
        file.with_std(|f| pread_to_end(f, &mut buf))?;
        Ok(buf)
    })
    .await
}

/// Appends the file from offset `buf.len()` to its end, on the calling
/// thread: `std`'s own read-to-end loop (`try_reserve`d, `Interrupted`
/// retried) from there. The descriptor is `aiofs::read`'s own: moving its
/// offset is seen by nobody.
fn pread_to_end(file: &std::fs::File, buf: &mut Vec<u8>) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file;
    file.seek(SeekFrom::Start(buf.len() as u64))?;
    file.read_to_end(buf).map(drop)
}

/// `try_reserve`, as `std::fs::read` does: `OutOfMemory` instead of an abort.
fn reserve(buf: &mut Vec<u8>, more: usize) -> io::Result<()> {
    buf.try_reserve(more).map_err(|e| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("aiofs: cannot allocate a buffer for {more} more bytes: {e}"),
        )
    })
}
