//! Asynchronous file I/O for Tokio on POSIX AIO.
//!
//! `aiofs` mirrors `tokio::fs` (`use aiofs as fs;` is a drop-in), but its reads
//! and writes are real asynchronous requests (`aio_read`, `aio_write`,
//! `aio_fsync`) instead of blocking calls on a thread pool. The positioned
//! methods ([`File::read_at`], [`File::write_at`], ...) are futures that own
//! their buffer; many can be in flight on one shared [`File`] at once, and
//! dropping one is always safe. [`File`] is also `AsyncRead + AsyncWrite +
//! AsyncSeek`, with read-ahead and write-behind.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("data");
//! use std::sync::Arc;
//!
//! let file = Arc::new(aiofs::File::create_new(&path).await?);
//! let (res, _) = file.write_all_at(vec![7u8; 1 << 16], 0).await;
//! res?;
//!
//! // Sixteen reads in flight at once on one file.
//! let reads = (0..16u64).map(|i| {
//!     let file = Arc::clone(&file);
//!     tokio::spawn(async move { file.read_exact_at(Vec::with_capacity(4096), i * 4096).await })
//! });
//! for read in reads {
//!     let (res, buf) = read.await.expect("task");
//!     res?;
//!     assert!(buf.iter().all(|&b| b == 7));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! A process-wide driver, started on first use, keeps a completion table. Each
//! request carries its slot's token in `sigev_value`; glibc queues a real-time
//! signal (by default `SIGRTMIN() + 6`) when it finishes, and a [`Notifier`]
//! turns that signal into a wake-up. See [`Config`] to choose the notifier, the
//! signal, the in-flight limit and the other switches.
//!
//! On Linux, a read the page cache holds never reaches AIO: it is served in
//! its first poll with `preadv2(RWF_NOWAIT)` ([`Config::nowait`]). Under a
//! paused Tokio clock (`#[tokio::test(start_paused = true)]`), the clock does
//! not move while a request is in flight. [`block_completion_signal`] lets
//! the notifier read completions from a `signalfd` instead of interrupting
//! your threads.
//!
//! A completion whose signal was lost (a full signal queue, merged signals) is
//! found by a scan within about 200 ms whatever the traffic, and a result
//! glibc lost to a full signal queue is recovered; the buffered writes of a
//! `File` dropped without a flush land before its runtime finishes shutting
//! down, as with `tokio::fs`.
//!
//! The design (layers, the life of a request, the recovery rule, the facts of
//! glibc AIO it rests on) is in the repository's `ARCHITECTURE.md`.
//!
//! # Features
//!
//! - `bytes`: [`buf::IoBuf`] and [`buf::IoBufMut`] for `bytes::Bytes` and
//!   `bytes::BytesMut`.
//! - `tracing`: `tracing` events for operators: a recovery scan that found
//!   completions whose signal was lost (`warn`), a request run again because
//!   glibc lost its result to a full signal queue (`warn`) or refused to take
//!   it (`debug`), a request slower than `AIOFS_SLOW_MS` milliseconds (default
//!   1000; `warn`), a file's descriptor pool growing (`debug`).
//! - `bench-tokio-io-uring`: for the benchmarks only (puts `tokio::fs` on
//!   Tokio's io_uring driver when built with `--cfg tokio_unstable`); it
//!   changes nothing in aiofs.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

#[cfg(not(unix))]
compile_error!("aiofs needs a POSIX AIO platform (tested on Linux with glibc)");

pub mod buf;
#[deny(unsafe_code)]
mod driver;
#[deny(unsafe_code)]
mod fs;
#[deny(unsafe_code)]
pub mod ops;
mod sys;

pub use driver::{Config, Notifier, Stats, block_completion_signal, prepare_runtime, stats};
pub use fs::{Batch, File, OpenOptions, copy, read, read_to_string, write};
pub use fs::{
    DirBuilder, DirEntry, ReadDir, canonicalize, create_dir, create_dir_all, hard_link, metadata,
    read_dir, read_link, remove_dir, remove_dir_all, remove_file, rename, set_permissions, symlink,
    symlink_metadata, try_exists,
};

/// Test seam (not part of the API): the next `count` page-cache reads
/// (`preadv2(RWF_NOWAIT)`) that would return data report 0 bytes instead, as
/// Linux 5.9 and 5.10 may; reads must still return every byte.
#[doc(hidden)]
pub fn __fake_nowait_eof(count: u64) {
    sys::nowait::fake_eof(count);
}

/// The result of an owned-buffer operation: the outcome and the buffer back.
pub type BufResult<T, B> = (std::io::Result<T>, B);

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
