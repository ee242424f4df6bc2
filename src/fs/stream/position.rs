//! The stream position, shared by a `File` and its clones as a descriptor
//! offset is shared by `dup`s, and seeking.
//!
//! The position is read from the descriptor's offset the first time
//! (`lseek(SEEK_CUR)`, which never waits), and is "the end of the file" after
//! an `O_APPEND` write. The end of the file is asked of `fstat` on Tokio's
//! blocking pool (on a network filesystem it may ask the server), never on a
//! runtime thread.

use std::future::Future;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use crate::ops::OpenFile;

type SizeQuery = Pin<Box<dyn Future<Output = io::Result<u64>> + Send>>;

#[derive(Default)]
pub(super) struct Position {
    state: State,
    /// An `fstat` in flight on the blocking pool.
    size: Option<SizeQuery>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not read from the descriptor yet.
    #[default]
    Unknown,
    /// The end of the file (after an `O_APPEND` write).
    AtEnd,
    At(u64),
}

impl std::fmt::Debug for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Position")
            .field("state", &self.state)
            .field("size_query", &self.size.is_some())
            .finish()
    }
}

impl Position {
    /// The position. The caller settled the writes first if it may be at the
    /// end (the end counts them).
    pub(super) fn poll_get(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
    ) -> Poll<io::Result<u64>> {
        let pos = match self.state {
            State::At(pos) => return Poll::Ready(Ok(pos)),
            State::Unknown => file.offset()?,
            State::AtEnd => ready!(self.poll_size(cx, file))?,
        };
        self.state = State::At(pos);
        Poll::Ready(Ok(pos))
    }

    /// The position if it is known without asking the OS.
    pub(super) fn current(&self) -> Option<u64> {
        match self.state {
            State::At(p) => Some(p),
            _ => None,
        }
    }

    /// Drops a size query in flight (the file is being written: its answer
    /// could be stale by the time someone asks again).
    pub(super) fn forget_size(&mut self) {
        self.size = None;
    }

    pub(super) fn set(&mut self, pos: u64) {
        self.state = State::At(pos);
    }

    pub(super) fn set_at_end(&mut self) {
        self.state = State::AtEnd;
    }

    /// Whether the position is the end of the file (resolved when next needed).
    pub(super) fn at_end(&self) -> bool {
        self.state == State::AtEnd
    }

    /// Whether the position was ever used (`into_std` then sets the offset).
    pub(super) fn is_known(&self) -> bool {
        self.state != State::Unknown
    }

    /// The file's size, from `fstat` on the blocking pool.
    fn poll_size(&mut self, cx: &mut Context<'_>, file: &Arc<OpenFile>) -> Poll<io::Result<u64>> {
        let query = self.size.get_or_insert_with(|| {
            let file = Arc::clone(file);
            Box::pin(super::super::asyncify(move || file.size()))
        });
        let res = ready!(query.as_mut().poll(cx));
        self.size = None;
        Poll::Ready(res)
    }

    /// Moves to `target`; for `SeekFrom::End` the caller settled the writes.
    pub(super) fn poll_seek(
        &mut self,
        cx: &mut Context<'_>,
        file: &Arc<OpenFile>,
        target: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let new = match target {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => offset(ready!(self.poll_get(cx, file))?, d),
            SeekFrom::End(d) => offset(ready!(self.poll_size(cx, file))?, d),
        };
        // As `lseek`: a position must be a valid `off_t`.
        match new.filter(|&p| p <= i64::MAX as u64) {
            Some(p) => {
                self.state = State::At(p);
                Poll::Ready(Ok(p))
            }
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "aiofs: invalid seek to a negative position or past i64::MAX",
            ))),
        }
    }
}

/// `from + delta`, if it is neither negative nor past `u64::MAX`.
fn offset(from: u64, delta: i64) -> Option<u64> {
    if delta >= 0 {
        from.checked_add(delta as u64)
    } else {
        from.checked_sub(delta.unsigned_abs())
    }
}
