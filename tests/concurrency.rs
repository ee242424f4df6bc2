//! Many requests in flight at once on one shared `File`, on both kinds of
//! runtime, every byte checked.
//!
//! Every test holds `serial()`: they assert on process-wide counters.

// `serial()` is held across awaits on purpose: it keeps the tests of this binary
// one at a time, and no other task ever takes it.
#![allow(clippy::await_holding_lock)]

mod support;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;

use support::{
    Rng, aio_only, bounded, in_child, open_fds_under, pattern, pattern_bytes, serial, settle,
};
use tempfile::TempDir;

const SIZE: u64 = 4 << 20;
const REQUESTS: u64 = 1000;
const MAX_LEN: u64 = 64 * 1024;

/// A directory holding `data`: `SIZE` bytes, each `pattern(i)` or, with
/// `inverted`, its complement (so that a byte left unwritten shows).
fn fixture(inverted: bool) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let mut data = pattern_bytes(0, SIZE as usize);
    if inverted {
        data.iter_mut().for_each(|b| *b = !*b);
    }
    std::fs::write(&path, data).expect("write fixture");
    (dir, path)
}

/// Panics at the first byte of `buf` (read from `pos`) that is not `pattern`.
fn verify(buf: &[u8], pos: u64, what: &str) {
    if let Some(k) = (0..buf.len()).find(|&k| buf[k] != pattern(pos + k as u64)) {
        panic!(
            "{what}: byte {k} of {} (file position {}) is {:#04x}, want {:#04x}",
            buf.len(),
            pos + k as u64,
            buf[k],
            pattern(pos + k as u64)
        );
    }
}

/// Every request submitted since `before` was collected, and nothing is left.
async fn settled_since(before: aiofs::Stats) {
    settle().await;
    let now = aiofs::stats();
    assert_eq!(now.in_flight, 0, "{now:?}");
    assert_eq!(now.orphaned, 0, "{now:?}");
    let submitted = now.submitted - before.submitted;
    assert!(submitted >= REQUESTS, "only {submitted} submitted: {now:?}");
    assert_eq!(
        now.completed - before.completed,
        submitted,
        "submitted but not collected: {now:?}"
    );
}

/// `REQUESTS` concurrent reads at random places (some past the end) with random
/// lengths (some zero), through `read_at` into both kinds of `Vec` and through
/// `read_exact_at`.
async fn concurrent_reads(seed: u64) {
    let (dir, path) = fixture(false);
    let file = Arc::new(aiofs::File::open(&path).await.unwrap());
    settle().await;
    let before = aiofs::stats();

    let mut rng = Rng::new(seed);
    let mut tasks = Vec::with_capacity(REQUESTS as usize);
    for i in 0..REQUESTS {
        let pos = rng.below(SIZE + MAX_LEN);
        let len = rng.below(MAX_LEN + 1) as usize;
        let kind = rng.below(3);
        let file = Arc::clone(&file);
        tasks.push(tokio::spawn(async move {
            let what = format!("request {i} (kind {kind}): {len} bytes at {pos}");
            let buf = match kind {
                0 => Vec::with_capacity(len),
                _ => vec![0xA5; len],
            };
            let len = buf.capacity();
            let available = SIZE.saturating_sub(pos).min(len as u64) as usize;
            if kind < 2 {
                let (res, buf) = file.read_at(buf, pos).await;
                let n = res.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(n <= available, "{what}: {n} bytes read");
                // A short count is legal, but not 0 before the end of file.
                assert!(n > 0 || available == 0, "{what}: 0 bytes read");
                assert_eq!(buf.len(), n, "{what}: length");
                verify(&buf, pos, &what);
                n
            } else {
                let (res, buf) = file.read_exact_at(Vec::with_capacity(len), pos).await;
                if available == len {
                    res.unwrap_or_else(|e| panic!("{what}: {e}"));
                } else {
                    let err = res.expect_err(&what);
                    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{what}: {err}");
                }
                assert_eq!(buf.len(), available, "{what}: length");
                verify(&buf, pos, &what);
                buf.len()
            }
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("read task");
    }
    assert!(total > 0);

    settled_since(before).await;
    assert_eq!(open_fds_under(dir.path()), 1);
    drop(file);
    assert_eq!(open_fds_under(dir.path()), 0, "the descriptor leaked");
}

#[tokio::test]
async fn concurrent_reads_on_one_file_current_thread() {
    aio_only();
    let _serial = serial();
    bounded(
        "concurrent_reads_on_one_file_current_thread",
        60,
        concurrent_reads(1),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_on_one_file_multi_thread() {
    aio_only();
    let _serial = serial();
    bounded(
        "concurrent_reads_on_one_file_multi_thread",
        60,
        concurrent_reads(2),
    )
    .await;
}

/// `REQUESTS` concurrent writes to distinct ranges covering the whole file, in
/// random order, with several buffer types; then every byte read back with std.
async fn concurrent_writes(seed: u64) {
    let (dir, path) = fixture(true);
    let file = Arc::new(
        aiofs::File::options()
            .write(true)
            .open(&path)
            .await
            .unwrap(),
    );
    settle().await;
    let before = aiofs::stats();

    let mut rng = Rng::new(seed);
    let mut cuts = BTreeSet::new();
    while cuts.len() < REQUESTS as usize - 1 {
        cuts.insert(1 + rng.below(SIZE - 1));
    }
    let bounds: Vec<u64> = std::iter::once(0)
        .chain(cuts)
        .chain(std::iter::once(SIZE))
        .collect();
    let mut ranges: Vec<(u64, u64)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    assert_eq!(ranges.len(), REQUESTS as usize);
    for i in (1..ranges.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ranges.swap(i, j);
    }

    let tasks: Vec<_> = ranges
        .into_iter()
        .enumerate()
        .map(|(i, (start, end))| {
            let file = Arc::clone(&file);
            tokio::spawn(async move {
                let what = format!("write {i}: {start}..{end}");
                let data = pattern_bytes(start, (end - start) as usize);
                match i % 3 {
                    0 => {
                        let (res, buf) = file.write_at(data.clone(), start).await;
                        let n = res.unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert!(n > 0 && n <= data.len(), "{what}: wrote {n}");
                        assert_eq!(buf, data, "{what}: buffer back");
                        if n < data.len() {
                            let (res, _) = file
                                .write_all_at(data[n..].to_vec(), start + n as u64)
                                .await;
                            res.unwrap_or_else(|e| panic!("{what}: rest: {e}"));
                        }
                    }
                    1 => {
                        let (res, _) = file.write_all_at(data, start).await;
                        res.unwrap_or_else(|e| panic!("{what}: {e}"));
                    }
                    _ => {
                        let (res, _) = file.write_all_at(data.into_boxed_slice(), start).await;
                        res.unwrap_or_else(|e| panic!("{what}: {e}"));
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("write task");
    }
    settled_since(before).await;
    drop(file);
    assert_eq!(open_fds_under(dir.path()), 0, "the descriptor leaked");

    let got = std::fs::read(&path).unwrap();
    assert_eq!(got.len() as u64, SIZE);
    verify(&got, 0, "file read back");
}

#[tokio::test]
async fn concurrent_writes_to_distinct_ranges_current_thread() {
    aio_only();
    let _serial = serial();
    bounded(
        "concurrent_writes_to_distinct_ranges_current_thread",
        60,
        concurrent_writes(3),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_to_distinct_ranges_multi_thread() {
    aio_only();
    let _serial = serial();
    bounded(
        "concurrent_writes_to_distinct_ranges_multi_thread",
        60,
        concurrent_writes(4),
    )
    .await;
}

/// A multi-thread runtime for the tests that run in a child process.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Half of `REQUESTS` reads are dropped right after submission, amid the others:
/// the live ones still get their bytes, and `into_std` waits for the orphans to
/// release the descriptor.
///
/// In a child process: a failure may leave requests stranded in flight.
#[test]
fn reads_dropped_in_flight_amid_live_ones() {
    aio_only();
    if !in_child("reads_dropped_in_flight_amid_live_ones") {
        return;
    }
    runtime().block_on(bounded(
        "reads_dropped_in_flight_amid_live_ones",
        60,
        async {
            let (dir, path) = fixture(false);
            let file = aiofs::File::open(&path).await.unwrap();
            let mut rng = Rng::new(5);
            let mut reads: Vec<_> = (0..REQUESTS)
                .map(|_| {
                    let pos = rng.below(SIZE - MAX_LEN);
                    let len = 1 + rng.below(MAX_LEN) as usize;
                    (pos, file.read_at(Vec::with_capacity(len), pos))
                })
                .collect();
            for (_, read) in &mut reads {
                assert!(futures::poll!(read).is_pending());
            }
            let live: Vec<_> = reads.into_iter().step_by(2).collect();
            for (i, (pos, read)) in live.into_iter().enumerate() {
                let what = format!("live read {i}");
                let (res, buf) = bounded(&what, 10, read).await;
                let n = res.unwrap();
                assert!(n > 0 && n == buf.len(), "{what}: {n} bytes");
                verify(&buf, pos, &what);
            }

            let std_file = bounded("into_std", 10, file.into_std()).await;
            drop(std_file);
            assert_eq!(
                open_fds_under(dir.path()),
                0,
                "an orphan kept the descriptor"
            );
            settle().await;
            let stats = aiofs::stats();
            assert_eq!(stats.in_flight, 0, "{stats:?}");
            assert_eq!(stats.orphaned, 0, "{stats:?}");
        },
    ));
}

/// The race: a request dropped while it waits at the head of its descriptor's
/// queue (submitted while a glibc worker is idle, not yet picked up) must not
/// strand the request queued behind it on the same descriptor.
///
/// Each round first completes a read, which leaves an idle glibc worker behind,
/// then submits two reads and drops the first at once.
///
/// In a child process: a failure leaves requests stranded in flight.
#[test]
fn read_dropped_at_head_of_descriptor_queue_does_not_strand_the_next() {
    aio_only();
    const NAME: &str = "read_dropped_at_head_of_descriptor_queue_does_not_strand_the_next";
    // The window (until the idle worker wakes) is tens of microseconds; a
    // round takes well under 1 ms.
    const ROUNDS: u64 = 200;
    if !in_child(NAME) {
        return;
    }
    runtime().block_on(bounded(NAME, 120, async {
        let (_dir, path) = fixture(false);
        let file = aiofs::File::open(&path).await.unwrap();
        for round in 0..ROUNDS {
            let (res, _) = file.read_at(Vec::with_capacity(4096), 0).await;
            res.unwrap();
            let pos = 4096 * (1 + round);
            let mut first = file.read_at(Vec::with_capacity(4096), pos);
            let mut second = file.read_at(Vec::with_capacity(4096), pos + 4096);
            assert!(futures::poll!(&mut first).is_pending());
            assert!(futures::poll!(&mut second).is_pending());
            drop(first);
            let what = format!("round {round}: the read queued behind a dropped one");
            let (res, buf) = bounded(&what, 5, second).await;
            assert_eq!(res.unwrap(), 4096, "{what}");
            verify(&buf, pos + 4096, &what);
        }
    }));
}
