//! `aio_fsync`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use super::{InFlight, OpenFile, prepare};
use crate::sys::aio::{Aiocb, SyncMode};

/// The future of [`File::sync_all`](crate::File::sync_all) and
/// [`File::sync_data`](crate::File::sync_data): `aio_fsync(O_SYNC)` or
/// `aio_fsync(O_DSYNC)`.
///
/// glibc runs the requests of one descriptor in order, so it covers every write
/// submitted on the descriptor before it.
///
/// # Cancel safety
///
/// Dropping it never blocks; the sync still runs, and its result is discarded.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Sync {
    state: State,
}

#[derive(Debug)]
enum State {
    Idle(Arc<OpenFile>, SyncMode),
    Running(InFlight),
    Done,
}

impl Sync {
    pub(crate) fn new(file: Arc<OpenFile>, mode: SyncMode) -> Sync {
        Sync {
            state: State::Idle(file, mode),
        }
    }
}

impl Future for Sync {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, State::Done) {
            State::Idle(file, mode) => {
                let (driver, use_) = match prepare(&file) {
                    Ok(p) => p,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                // Ordered behind this descriptor's writes (glibc runs one
                // descriptor's requests in order).
                let (fd, use_) = file.lane_for_sync(use_);
                let cb = Aiocb::sync(fd, mode);
                match InFlight::submit(driver, cb, use_, cx) {
                    Ok(req) => {
                        this.state = State::Running(req);
                        Poll::Pending
                    }
                    Err((e, _cb)) => Poll::Ready(Err(e)),
                }
            }
            State::Running(mut req) => match req.poll(cx) {
                Poll::Pending => {
                    this.state = State::Running(req);
                    Poll::Pending
                }
                Poll::Ready((res, _cb)) => Poll::Ready(res.map(drop)),
            },
            State::Done => panic!("aiofs: Sync polled after completion"),
        }
    }
}
