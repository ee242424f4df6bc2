//! `aio_write`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{InFlight, OpenFile, Pending, admit, direct_stop};
use crate::BufResult;
use crate::buf::IoBuf;
use crate::sys::aio::Aiocb;

/// The future of [`File::write_at`](crate::File::write_at).
///
/// Resolves to the count written and the buffer.
///
/// # Cancel safety
///
/// Dropping it never blocks: the request is orphaned and its buffer freed once
/// the OS is done with it. Whether the bytes were written is then unknown.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WriteAt<B> {
    state: State<B>,
}

#[derive(Debug)]
enum State<B> {
    Idle(Pending<B>),
    Running(InFlight),
    Done,
}

impl<B: IoBuf> WriteAt<B> {
    pub(crate) fn new(file: Arc<OpenFile>, buf: B, pos: u64) -> WriteAt<B> {
        WriteAt::with_offset(file, buf, 0, pos)
    }

    /// Writes `buf[off..len]` at `pos`.
    pub(crate) fn with_offset(file: Arc<OpenFile>, buf: B, off: usize, pos: u64) -> WriteAt<B> {
        WriteAt {
            state: State::Idle(Pending {
                file,
                buf,
                off,
                pos,
            }),
        }
    }
}

impl<B: IoBuf> WriteAt<B> {
    /// Submits the write (now, or when the in-flight limit allows) and lets go
    /// of it: it runs to completion in the driver's care; its result is dropped.
    /// If it is refused before submission, the error and the buffer come back.
    pub(crate) fn detach(mut self) -> Option<(io::Error, B)> {
        if matches!(self.state, State::Idle { .. }) {
            let mut cx = Context::from_waker(futures::task::noop_waker_ref());
            if let Poll::Ready((res, buf)) = Pin::new(&mut self).poll(&mut cx) {
                // Refused before submission (or, if ever, done at once).
                return res.err().map(|e| (e, buf));
            }
        }
        if let State::Running(req) = std::mem::replace(&mut self.state, State::Done) {
            req.detach();
        }
        None
    }
}

impl<B: IoBuf> Future for WriteAt<B> {
    type Output = BufResult<usize, B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, State::Done) {
            State::Idle(Pending {
                file,
                buf,
                off,
                pos,
            }) => {
                let len = buf.bytes_init().saturating_sub(off);
                let ptr = buf.stable_ptr().wrapping_add(off);
                let (driver, use_) = match admit(&file, ptr, len, pos) {
                    Ok(p) => p,
                    Err(e) => return Poll::Ready((Err(e), buf)),
                };
                let append = file.description().is_append();
                let (fd, use_) = file.lane_for_write(use_);
                let cb = Aiocb::write(fd, buf, off, pos, append);
                match InFlight::submit(driver, cb, use_, cx) {
                    Ok(req) => {
                        this.state = State::Running(req);
                        Poll::Pending
                    }
                    Err((e, cb)) => Poll::Ready((Err(e), cb.into_buf())),
                }
            }
            State::Running(mut req) => match req.poll(cx) {
                Poll::Pending => {
                    this.state = State::Running(req);
                    Poll::Pending
                }
                Poll::Ready((res, cb)) => Poll::Ready((res, cb.into_buf())),
            },
            State::Done => panic!("aiofs: WriteAt polled after completion"),
        }
    }
}

/// The one write-all loop (`write_all_at`): loops until every initialised byte
/// is written.
pub(crate) async fn write_all_at<B: IoBuf>(
    file: Arc<OpenFile>,
    mut buf: B,
    pos: u64,
) -> BufResult<(), B> {
    let total = buf.bytes_init();
    let mut written = 0;
    while written < total {
        let at = pos.saturating_add(written as u64);
        let (res, b) = WriteAt::with_offset(Arc::clone(&file), buf, written, at).await;
        buf = b;
        match res {
            Ok(0) => {
                return (
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("aiofs: wrote 0 bytes at {at}, {written} of {total} written"),
                    )),
                    buf,
                );
            }
            Ok(n) => {
                written += n;
                if written < total && direct_stop(&file, pos.saturating_add(written as u64)) {
                    return (
                        Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            format!(
                                "aiofs: O_DIRECT write stopped short: {written} of {total} bytes written; \
                                 the rest would start misaligned (the device is likely full)"
                            ),
                        )),
                        buf,
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}
