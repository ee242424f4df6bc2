//! `aio_read`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{InFlight, check_request, direct_stop};
use crate::BufResult;
use crate::buf::IoBufMut;
use crate::sys::aio::Aiocb;
use crate::sys::fd::FdRef;

/// The future of [`File::read_at`](crate::File::read_at).
///
/// Resolves to the count read and the buffer, whose length is set to that count.
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
        fd: FdRef,
        buf: B,
        off: usize,
        pos: u64,
    },
    Running(InFlight),
    Done,
}

impl<B: IoBufMut> ReadAt<B> {
    pub(crate) fn new(fd: FdRef, buf: B, pos: u64) -> ReadAt<B> {
        ReadAt::with_offset(fd, buf, 0, pos)
    }

    /// Reads into `buf[off..capacity]`; the first `off` bytes must be initialised.
    pub(crate) fn with_offset(fd: FdRef, buf: B, off: usize, pos: u64) -> ReadAt<B> {
        ReadAt {
            state: State::Idle { fd, buf, off, pos },
        }
    }
}

impl<B: IoBufMut> Future for ReadAt<B> {
    type Output = BufResult<usize, B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, State::Done) {
            State::Idle { fd, buf, off, pos } => {
                let len = buf.bytes_total().saturating_sub(off);
                let ptr = buf.stable_ptr().wrapping_add(off);
                if let Err(e) = check_request(&fd, ptr, len, pos) {
                    return Poll::Ready((Err(e), buf));
                }
                let cb = Aiocb::read(fd, buf, off, pos);
                match InFlight::submit(cb, cx) {
                    Ok(req) => {
                        this.state = State::Running(req);
                        Poll::Pending
                    }
                    Err((e, cb)) => Poll::Ready((Err(e), cb.into_read_buf(None))),
                }
            }
            State::Running(mut req) => match req.poll(cx) {
                Poll::Pending => {
                    this.state = State::Running(req);
                    Poll::Pending
                }
                Poll::Ready((res, cb)) => {
                    let buf = cb.into_read_buf(res.as_ref().ok().copied());
                    Poll::Ready((res, buf))
                }
            },
            State::Done => panic!("aiofs: ReadAt polled after completion"),
        }
    }
}

/// Reads until the buffer's capacity is filled or the file ends; returns the
/// count read. On `O_DIRECT`, a short count that would leave the next read
/// misaligned is the end of the file.
async fn fill_at<B: IoBufMut>(fd: FdRef, mut buf: B, pos: u64) -> BufResult<usize, B> {
    let total = buf.bytes_total();
    let mut filled = 0;
    while filled < total {
        let at = pos.saturating_add(filled as u64);
        let (res, b) = ReadAt::with_offset(fd.clone(), buf, filled, at).await;
        buf = b;
        match res {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled < total && direct_stop(&fd, pos.saturating_add(filled as u64)) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(filled), buf)
}

/// Reads until the buffer's capacity is filled or the file ends (no error then:
/// the buffer's length says how much was read).
pub(crate) async fn read_full_at<B: IoBufMut>(fd: FdRef, buf: B, pos: u64) -> BufResult<(), B> {
    let (res, buf) = fill_at(fd, buf, pos).await;
    (res.map(drop), buf)
}

/// `read_exact_at`: `UnexpectedEof` if the file ends before the buffer is full.
pub(crate) async fn read_exact_at<B: IoBufMut>(fd: FdRef, buf: B, pos: u64) -> BufResult<(), B> {
    let total = buf.bytes_total();
    let (res, buf) = fill_at(fd, buf, pos).await;
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
