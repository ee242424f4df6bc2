//! `aio_fsync`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::InFlight;
use crate::sys::aio::{Aiocb, SyncMode};
use crate::sys::fd::FdRef;

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
    Idle(FdRef, SyncMode),
    Running(InFlight),
    Done,
}

impl Sync {
    pub(crate) fn new(fd: FdRef, mode: SyncMode) -> Sync {
        Sync {
            state: State::Idle(fd, mode),
        }
    }
}

impl Future for Sync {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, State::Done) {
            State::Idle(fd, mode) => {
                let cb = Aiocb::sync(fd, mode);
                match InFlight::submit(cb, cx) {
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
