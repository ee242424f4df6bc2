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

type Round =
    futures::future::Shared<Pin<Box<dyn Future<Output = Result<(), Arc<io::Error>>> + Send>>>;

/// Group commit: concurrent syncs of one file share one `aio_fsync`.
///
/// A sync that arrives while none runs starts one. One that arrives while one
/// runs joins the *next* round, which starts when the running one finishes:
/// the running fsync may have started before the caller's writes finished,
/// so it may not cover them; the next one does. So N callers arriving during
/// one fsync share one more, and each gets the result of a sync that started
/// after it was called.
#[derive(Default)]
pub(crate) struct Group {
    rounds: std::sync::Mutex<Rounds>,
}

#[derive(Default)]
struct Rounds {
    running: Option<Round>,
    next: Option<Round>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Group")
    }
}

impl Group {
    /// Syncs `file` (`mode`), sharing the `aio_fsync` with concurrent callers.
    pub(crate) async fn sync(&self, file: &Arc<OpenFile>, mode: SyncMode) -> io::Result<()> {
        let round = {
            let mut r = self.rounds.lock().unwrap_or_else(|e| e.into_inner());
            if r.running.as_ref().is_some_and(|run| run.peek().is_some()) {
                // Finished: the next round (if any) is the running one now.
                r.running = r.next.take();
            }
            match (&r.running, &r.next) {
                (None, _) => r.running.insert(round(None, file, mode)).clone(),
                (Some(_), Some(next)) => next.clone(),
                (Some(running), None) => {
                    let after = running.clone();
                    r.next.insert(round(Some(after), file, mode)).clone()
                }
            }
        };
        round.await.map_err(|e| match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        })
    }
}

/// One `aio_fsync`, started once `after` (the round before) is done.
///
/// The round is kept in its `OpenFile`: until it submits, it holds the file
/// only weakly (a strong reference would be a cycle, leaking the file and its
/// descriptor when every caller gave up on an unfinished round).
fn round(after: Option<Round>, file: &Arc<OpenFile>, mode: SyncMode) -> Round {
    use futures::FutureExt;
    let file = Arc::downgrade(file);
    let fut: Pin<Box<dyn Future<Output = Result<(), Arc<io::Error>>> + Send>> =
        Box::pin(async move {
            if let Some(after) = after {
                let _ = after.await;
            }
            let Some(file) = file.upgrade() else {
                return Err(Arc::new(io::Error::other("aiofs: the file is gone")));
            };
            Sync::new(file, mode).await.map_err(Arc::new)
        });
    fut.shared()
}
