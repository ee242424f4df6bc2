//! A `flush` or a read cancelled while it waits for the write-behind leaves
//! nothing stale behind (review of d56b616, defect 3: "stale flush/read
//! targets").
//!
//! A `File` remembers, across polls, which write-behind chunks its pending
//! `flush` (or read, which first waits for the writes made before it) covers.
//! A future dropped after one `Pending` poll (a `select!` or `timeout` that
//! lost the race) left that target set: the next `flush` took it over and
//! returned `Ok` without writing what was written since, and the next read
//! waited only for the old writes and read the file under a newer buffered
//! write. A write or a seek through the handle must reset it.
//!
//! - `a_flush_cancelled_while_pending_does_not_cut_short_the_next_flush`:
//!   `write_all` 512 KiB, poll `flush` once (`Pending`) and drop it,
//!   `write_all` 512 KiB more, `flush().await`: the file holds all 1 MiB;
//! - `a_read_cancelled_while_waiting_for_writes_still_sees_the_later_writes`:
//!   over 2 MiB of `a`, `write_all` 900 KiB of `b` (buffered), poll a read
//!   once (`Pending`) and drop it, `seek(0)`, `write_all("X")`, `seek(0)`,
//!   read one byte: `X`.
//!
//! The first poll is `Pending` for sure: the write it waits for queues in
//! glibc behind a read stalled on the file's own descriptor
//! (`support::StalledRead`, `userfaultfd`), released once the cancelled
//! future is dropped. Without `userfaultfd` (not root) the write is not held:
//! the first poll is very likely `Pending` on the write (a 512 KiB or 900 KiB
//! write), but it may be `Ready`, or, for the read, `Pending` on its own read
//! request once the write is done; the test then says on stderr that the
//! race did not happen, and checks the same outcome.
//!
//! Reads of up to 1 KiB try the page cache on the polling thread
//! (`Config::nowait_max`), larger ones go through AIO: the stalled read (a
//! page) is never tried there (it would stall the polling thread), and the
//! stream's 1-byte read is served at once once its wait for the writes is
//! over. That makes the old failure certain: a read whose own request were
//! in flight would, on its next poll, wait for the writes afresh, and see the
//! `X`. (On a filesystem that refuses `RWF_NOWAIT`, such as tmpfs, it goes
//! through AIO: the test still holds on fixed code, but may miss the old
//! failure.) The tests count requests (`stats().submitted`), one at a time.
//! The notifier comes from `AIOFS_NOTIFIER`.

// `serial()` is held across awaits on purpose: see above.
#![allow(clippy::await_holding_lock)]

mod support;

use std::io::SeekFrom;
use std::path::Path;
use std::pin::pin;

use support::{StalledRead, bounded, open_rw, pattern_bytes, serial};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const KIB: usize = 1024;

/// Reads of up to 1 KiB (the stream's) try the page cache; a page (the
/// stalled read) goes through AIO.
fn install_config() {
    aiofs::Config::new()
        .nowait_max(KIB)
        .install()
        .expect("install the Config");
}

/// Holds the file's own descriptor, if `userfaultfd` allows.
async fn hold(file: &aiofs::File) -> Option<StalledRead> {
    let held = StalledRead::start(file, 0).await;
    if held.is_none() {
        eprintln!(
            "no userfaultfd here: the write is not held, so the first poll may be Ready \
             (the outcome is checked all the same)"
        );
    }
    held
}

async fn release(held: Option<StalledRead>) {
    if let Some(held) = held {
        held.release().await;
    }
}

fn fill(path: &Path, byte: u8, len: usize) {
    std::fs::write(path, vec![byte; len]).expect("write the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_cancelled_while_pending_does_not_cut_short_the_next_flush() {
    let _serial = serial();
    install_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    const HALF: usize = 512 * KIB;
    // Data for the stalled read; overwritten below.
    fill(&path, b'.', 4 * KIB);
    let mut file = open_rw(&path).await;
    let held = hold(&file).await;

    file.write_all(&pattern_bytes(0, HALF))
        .await
        .expect("write_all the first half");
    let first_poll = {
        let mut flush = pin!(file.flush());
        futures::poll!(&mut flush)
        // Dropped here: the flush is cancelled.
    };
    if held.is_some() {
        assert!(
            first_poll.is_pending(),
            "the flush finished while its write was held: {first_poll:?}"
        );
    } else if first_poll.is_ready() {
        eprintln!("the first flush poll was Ready ({first_poll:?}): the race did not happen");
    }
    file.write_all(&pattern_bytes(HALF as u64, HALF))
        .await
        .expect("write_all the second half");
    release(held).await;
    bounded("the second flush", 10, file.flush())
        .await
        .expect("the second flush");
    // Before the File is dropped (its drop would write what is left).
    let content = std::fs::read(&path).expect("read the file");
    assert!(
        content == pattern_bytes(0, 2 * HALF),
        "after a flush polled once and dropped (first poll {first_poll:?}), another write and \
         a flush that returned Ok, the file holds {} bytes, {} of them as written: the second \
         flush did not write what was written after the cancelled one",
        content.len(),
        content
            .iter()
            .zip(pattern_bytes(0, 2 * HALF))
            .take_while(|(a, b)| *a == b)
            .count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cancelled_while_waiting_for_writes_still_sees_the_later_writes() {
    let _serial = serial();
    install_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("g");
    fill(&path, b'a', 2048 * KIB);
    let mut file = open_rw(&path).await;
    let held = hold(&file).await;

    // Less than a write-behind chunk: buffered, until the read sends it.
    file.write_all(&vec![b'b'; 900 * KIB])
        .await
        .expect("write_all the b's");
    let mut four = [0u8; 4];
    let before = aiofs::stats().submitted;
    let first_poll = {
        let mut read = pin!(file.read(&mut four));
        futures::poll!(&mut read)
        // Dropped here: the read is cancelled.
    };
    if held.is_some() {
        assert!(
            first_poll.is_pending(),
            "the read finished while the write it waits for was held: {first_poll:?}"
        );
    } else if first_poll.is_ready() || aiofs::stats().submitted - before > 1 {
        // Ready, or Pending on its own read request (the write was done).
        eprintln!(
            "the first read poll was {first_poll:?}, the write already done: the race did \
             not happen"
        );
    }
    file.seek(SeekFrom::Start(0)).await.expect("seek");
    file.write_all(b"X").await.expect("write_all X");
    file.seek(SeekFrom::Start(0)).await.expect("seek");
    release(held).await;
    let mut one = [0u8; 1];
    bounded(
        "the read after the write of X",
        10,
        file.read_exact(&mut one),
    )
    .await
    .expect("read_exact");
    assert_eq!(
        one[0] as char, 'X',
        "after a read polled once and dropped (first poll {first_poll:?}), a write of X at 0 \
         and a seek to 0, a read returned {:?}: it did not wait for the write made before it",
        one[0] as char
    );
    file.flush().await.expect("flush");
    let content = std::fs::read(&path).expect("read the file");
    assert_eq!(content[0], b'X');
    assert!(content[1..900 * KIB].iter().all(|&c| c == b'b'));
    assert!(content[900 * KIB..].iter().all(|&c| c == b'a'));
}
