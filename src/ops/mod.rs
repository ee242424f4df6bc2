//! The operations: one future per AIO request kind.
//!
//! Each future is lazy: nothing is checked or submitted before its first poll.
//! Its request is then owned by the driver's table, and dropping the future
//! orphans the request (the table frees its buffer and descriptor when the OS is
//! done with them); it never blocks.

mod batch;
mod file;
mod fsync;
mod read;
mod write;

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

pub(crate) use crate::sys::aio::SyncMode;
pub(crate) use batch::{Entry, request_read, request_write};
pub use batch::{ReadvAt, Submit, SubmitEach, WritevAt};
pub(crate) use file::{Description, Inline, OpenFile, ReadKind, Reopen, Use};
pub use fsync::Sync;
pub use read::ReadAt;
pub use write::WriteAt;
pub(crate) use {
    read::{read_exact_at, read_whole},
    write::write_all_at,
};

use crate::driver::{self, Driver, Token};
use crate::sys::aio::Aiocb;

/// Runs a blocking call on Tokio's blocking pool, or inline outside Tokio.
pub(crate) async fn asyncify<F, T>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(res) => res,
            Err(e) => Err(io::Error::other(format!(
                "aiofs: background task failed: {e}"
            ))),
        },
        Err(_) => f(),
    }
}

/// A positioned request before its first poll: what it will need.
#[derive(Debug)]
struct Pending<B> {
    file: Arc<OpenFile>,
    buf: B,
    /// Where in `buf` the transfer starts.
    off: usize,
    pos: u64,
}

/// A request in the driver's table, seen from its future.
struct InFlight {
    driver: &'static Driver,
    token: Token,
    finished: bool,
    /// A write: dropped unfinished, it still runs (and holds the runtime's
    /// shutdown until it has).
    write: bool,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("token", &self.token)
            .finish()
    }
}

impl InFlight {
    /// Hands `cb` to the driver, with `use_` (released once the OS is done).
    /// On error, nothing was submitted.
    fn submit(
        driver: &'static Driver,
        cb: Aiocb,
        use_: Use,
        cx: &mut Context<'_>,
    ) -> Result<InFlight, (io::Error, Aiocb)> {
        let write = cb.is_write();
        let token = driver.submit(cb, Some(Box::new(use_)), cx.waker())?;
        Ok(InFlight {
            driver,
            token,
            finished: false,
            write,
        })
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<(io::Result<usize>, Aiocb)> {
        let res = self.driver.poll(self.token, cx.waker());
        if res.is_ready() {
            self.finished = true;
        }
        res
    }

    /// Lets go of the request without cancelling it: it runs (when the in-flight
    /// limit allows) and the driver frees it when it completes.
    fn detach(mut self) {
        self.driver.detach(self.token);
        self.finished = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.finished {
            // The worker may still write into the buffer: the table keeps it until
            // completion.
            self.driver.orphan(self.token, self.write);
        }
    }
}

/// The checks every positioned request passes before submission: the range, a
/// descriptor that can seek, and `O_DIRECT` alignment.
fn check_request(file: &OpenFile, ptr: *const u8, len: usize, pos: u64) -> io::Result<()> {
    check_range(pos, len)?;
    file.check_seekable()?;
    check_direct(file.description(), ptr as usize, len, pos)
}

/// The driver, and a use of `file`'s descriptors, for a request about to be
/// submitted (the driver first: under the signal notifier it may refuse).
fn prepare(file: &Arc<OpenFile>) -> io::Result<(&'static Driver, Use)> {
    let driver = driver::get()?;
    driver.can_submit()?;
    Ok((driver, file.begin()?))
}

/// Whether a request can be submitted from here (under the signal notifier, a
/// Tokio runtime with IO is needed).
pub(crate) fn can_submit() -> bool {
    driver::get().and_then(|d| d.can_submit()).is_ok()
}

/// Whether this process is a child forked (without exec) from one that used
/// aiofs: nothing may be written there on a `File`'s behalf (its data, and its
/// requests in flight, are the parent's).
pub(crate) fn in_forked_child() -> bool {
    driver::check_not_forked().is_err()
}

/// [`prepare`] then [`check_request`]: what a single request's first poll does.
/// The use comes first: once `into_std` gave the descriptor away, not even the
/// checks (`lseek`) may touch its number.
fn admit(
    file: &Arc<OpenFile>,
    ptr: *const u8,
    len: usize,
    pos: u64,
) -> io::Result<(&'static Driver, Use)> {
    let (driver, use_) = prepare(file)?;
    check_request(file, ptr, len, pos)?;
    Ok((driver, use_))
}

/// Refuses an `O_DIRECT` transfer whose buffer address, offset or length is not
/// aligned as the file needs, before anything is submitted.
fn check_direct(desc: &Description, ptr: usize, len: usize, pos: u64) -> io::Result<()> {
    let Some((mem, offset)) = desc.direct_alignment() else {
        return Ok(());
    };
    let misaligned = |what: String| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "aiofs: O_DIRECT: {what} (use aiofs::buf::AlignedBuf::new({mem}, n) with n a multiple of {offset})"
            ),
        ))
    };
    if !ptr.is_multiple_of(mem) {
        return misaligned(format!(
            "the buffer address {ptr:#x} must be aligned to {mem} bytes"
        ));
    }
    if !pos.is_multiple_of(offset as u64) {
        return misaligned(format!(
            "the file offset {pos} must be aligned to {offset} bytes"
        ));
    }
    if !len.is_multiple_of(offset) {
        return misaligned(format!(
            "the length {len} must be aligned to {offset} bytes (a multiple)"
        ));
    }
    Ok(())
}

/// Whether a transfer that stopped short at `pos` cannot go on: on an
/// `O_DIRECT` descriptor the next request would start misaligned, so the short
/// count marks the end of the file (or of the space).
fn direct_stop(file: &OpenFile, pos: u64) -> bool {
    file.description()
        .direct_alignment()
        .is_some_and(|(_, offset)| !pos.is_multiple_of(offset as u64))
}

/// Refuses a transfer whose end would pass `i64::MAX` (the largest `off_t`).
fn check_range(pos: u64, len: usize) -> io::Result<()> {
    match pos.checked_add(len as u64) {
        Some(end) if end <= i64::MAX as u64 => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("aiofs: position {pos} + length {len} passes i64::MAX"),
        )),
    }
}
