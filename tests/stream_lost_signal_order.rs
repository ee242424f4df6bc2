//! Write-behind chunks whose results were lost to a full signal queue land in
//! the order they were written (review of d56b616, defect 2: "reorder").
//!
//! With `RLIMIT_SIGPENDING` at 0 glibc queues no completion signal and replaces
//! each finished request's result with -1/`EAGAIN`; the driver's scan finds
//! them and runs them again quietly, in the order of their slots in the
//! completion table. The stream used to have several write-behind chunks in
//! flight at once, overlapping ones included: when one scan found them all,
//! an older chunk whose slot came after a newer one's ran again last, and its
//! older bytes won, while `flush` reported success. The stream must not start
//! a chunk while an older overlapping one (any older one, with `O_APPEND`) is
//! unfinished.
//!
//! - `a_rewrite_is_not_undone_by_the_older_write_run_again_after_a_lost_result`:
//!   `write_all` 1 MiB of `A`, `seek(0)`, `write_all` 1 MiB of `B`, `flush`:
//!   the file holds `B`;
//! - `overlapping_rewrites_with_lost_results_land_in_the_order_written`: four
//!   1 MiB chunks at overlapping offsets, then `flush`: the file holds what
//!   writing them in order gives;
//! - `o_append_records_with_lost_results_are_never_reordered`: four records
//!   appended with `write_all` (the outcome of those whose result was lost is
//!   unknown: `flush` may report it): the file holds records in the order
//!   written, each at most once. (On d56b616 this one passes too: glibc runs
//!   one descriptor's requests in order and an `O_APPEND` write is never run
//!   twice, so lost results alone cannot reorder records. It guards the
//!   ordering rule for appends; `stream_retry_order.rs` covers the reordering
//!   of appends by a retried failed chunk.)
//!
//! How each is made deterministic: every request of the scenario queues in
//! glibc behind a read stalled on the file's own descriptor (`support::Stall`,
//! `userfaultfd`: glibc runs one request per descriptor at a time); the test
//! waits for a scan (which finds them all running), then releases the read:
//! every chunk finishes well before the next scan, 200 ms later, which finds
//! all their results lost at once. A warm-up, made with the signal queue
//! still working, leaves the table's free slots so that each newer request
//! gets a lower slot than the older ones (the slab hands out the slot freed
//! last first): the scan runs them again newest first, as the reviewer's
//! reproducer did. Where `userfaultfd` is refused (not root), the chunks are
//! not held and the scan may find them one by one: the test then checks the
//! same outcome without the guarantee that the race happens.
//!
//! Each test lowers a resource limit and installs a `Config` (every read
//! through AIO, so that the stalled read is not tried on the page cache by the
//! polling thread): each runs alone in a child process of this binary
//! (`support::in_child`), with a fresh completion table. The notifier comes
//! from `AIOFS_NOTIFIER`: CI runs them under both.

mod support;

use std::io::SeekFrom;
use std::path::Path;
use std::time::{Duration, Instant};

use aiofs::{Config, File};
use support::process::set_soft_limit;
use support::{StalledRead, bounded, in_child, serial, settle};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

const MIB: usize = 1 << 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Every read through AIO (the stalled read must not be tried on the page
/// cache by the polling thread), and room for every request in flight.
fn install_config() {
    Config::new()
        .nowait(false)
        .max_in_flight(64)
        .install()
        .expect("install the Config");
}

/// With the signal queue still working: `n` positioned writes in flight at
/// once, in `n` fresh slots, collected (so freed) in the order they were
/// made. The slab hands out the slot freed last first: the next `n` requests
/// get these slots in reverse order, each one lower than the one before.
async fn warm_up(n: usize) {
    let file = File::from_std(tempfile::tempfile().expect("tempfile"));
    let mut writes: Vec<_> = (0..n)
        .map(|i| Box::pin(file.write_at(vec![i as u8; 16], 16 * i as u64)))
        .collect();
    for w in &mut writes {
        // Polled once each, in order: each takes the next slot.
        let _ = futures::poll!(w);
    }
    for w in writes {
        let (res, _) = bounded("a warm-up write", 10, w).await;
        res.expect("a warm-up write");
    }
}

/// Holds every request made on `file`'s own descriptor from now on (behind
/// a stalled read); `None`, said on stderr, without `userfaultfd`.
async fn hold_descriptor(file: &File) -> Option<StalledRead> {
    let held = StalledRead::start(file, 0).await;
    if held.is_none() {
        eprintln!(
            "no userfaultfd here: the chunks are not held, and the race may not happen \
             (the outcome is checked all the same)"
        );
    }
    held
}

/// Waits (at most 10 s) for the next scan: it finds every request of the
/// scenario still running (they wait behind the stalled read), so the next
/// one comes 200 ms later, long after they finished once released.
async fn wait_for_a_scan() {
    let before = aiofs::stats().scans;
    let deadline = Instant::now() + Duration::from_secs(10);
    while aiofs::stats().scans == before {
        assert!(
            Instant::now() < deadline,
            "no scan within 10 s with requests in flight: {:?}",
            aiofs::stats()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Releases the stalled read (if any) and collects it.
async fn release(held: Option<StalledRead>) {
    if let Some(held) = held {
        held.release().await;
    }
}

/// A file of `len` bytes of `.` (the stalled read reads some of it), opened
/// for reading and writing (appending if `append`).
async fn prepared(path: &Path, len: usize, append: bool) -> File {
    std::fs::write(path, vec![b'.'; len]).expect("write the file");
    aiofs::OpenOptions::new()
        .read(true)
        .write(!append)
        .append(append)
        .open(path)
        .await
        .expect("open")
}

/// Which letter a run of bytes is, for the failure messages.
fn describe(content: &[u8]) -> String {
    let mut runs: Vec<(u8, usize)> = Vec::new();
    for &b in content {
        match runs.last_mut() {
            Some((c, n)) if *c == b => *n += 1,
            _ => runs.push((b, 1)),
        }
    }
    runs.iter()
        .map(|(c, n)| format!("{n} x {:?}", *c as char))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(position, letter)` chunks of 1 MiB written with `write_all` after
/// `seek(Start(position))` while every signal is lost, then `flush`: the file
/// must hold them applied in order.
fn rewrites(chunks: &[(u64, u8)]) {
    install_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    let end = chunks
        .iter()
        .map(|&(p, _)| p as usize + MIB)
        .max()
        .unwrap_or(0);
    let mut want = vec![b'.'; end];
    for &(pos, letter) in chunks {
        want[pos as usize..pos as usize + MIB].fill(letter);
    }
    let rt = runtime();
    rt.block_on(async {
        let mut file = prepared(&path, end, false).await;
        // The stalled read and the chunks, newest in the lowest slot.
        warm_up(chunks.len() + 1).await;
        let limit = set_soft_limit(libc::RLIMIT_SIGPENDING, 0);
        let before = aiofs::stats();
        let held = hold_descriptor(&file).await;
        for &(pos, letter) in chunks {
            file.seek(SeekFrom::Start(pos)).await.expect("seek");
            // One chunk: exactly the write-behind chunk size.
            file.write_all(&vec![letter; MIB]).await.expect("write_all");
        }
        if held.is_some() {
            wait_for_a_scan().await;
        }
        let released = Instant::now();
        let hold = release(held);
        let flush = async {
            let (r, ()) = tokio::join!(file.flush(), hold);
            r
        };
        let flushed = bounded("flush", 20, flush).await;
        let took = released.elapsed();
        let content = std::fs::read(&path).expect("read the file");
        let after = aiofs::stats();
        set_soft_limit(libc::RLIMIT_SIGPENDING, limit);
        println!(
            "flush {flushed:?} after {took:?}; the file holds {}; eagain_retries +{}, \
             quiet_resubmits +{}",
            describe(&content),
            after.eagain_retries - before.eagain_retries,
            after.quiet_resubmits - before.quiet_resubmits,
        );
        flushed.expect("flush");
        assert!(
            after.eagain_retries > before.eagain_retries,
            "no result was lost to the full signal queue: the scenario did not happen: {after:?}"
        );
        assert!(
            content == want,
            "with every completion signal lost, the write-behind chunks {:?} landed out of \
             order (flush reported success): the file holds {}, want {}",
            chunks
                .iter()
                .map(|&(p, c)| format!("{:?} at {p}", c as char))
                .collect::<Vec<_>>(),
            describe(&content),
            describe(&want)
        );
        drop(file);
        settle().await;
    });
}

/// The reviewer's reproducer: `A` then `B` over the same MiB.
#[test]
fn a_rewrite_is_not_undone_by_the_older_write_run_again_after_a_lost_result() {
    let _serial = serial();
    if !in_child("a_rewrite_is_not_undone_by_the_older_write_run_again_after_a_lost_result") {
        return;
    }
    rewrites(&[(0, b'A'), (0, b'B')]);
}

/// Four chunks (the most the stream keeps in flight), each overlapping the
/// one before in part.
#[test]
fn overlapping_rewrites_with_lost_results_land_in_the_order_written() {
    let _serial = serial();
    if !in_child("overlapping_rewrites_with_lost_results_land_in_the_order_written") {
        return;
    }
    const K: u64 = 1024;
    rewrites(&[(0, b'A'), (512 * K, b'B'), (256 * K, b'C'), (768 * K, b'D')]);
}

/// Records appended with `write_all` while every signal is lost: in the file,
/// in the order written, each at most once.
#[test]
fn o_append_records_with_lost_results_are_never_reordered() {
    let _serial = serial();
    if !in_child("o_append_records_with_lost_results_are_never_reordered") {
        return;
    }
    install_config();
    const RECORDS: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let header = MIB / 4;
    let record = |i: usize| vec![b'a' + i as u8; MIB];
    let rt = runtime();
    rt.block_on(async {
        let mut file = prepared(&path, header, true).await;
        warm_up(RECORDS + 1).await;
        let limit = set_soft_limit(libc::RLIMIT_SIGPENDING, 0);
        let before = aiofs::stats();
        let held = hold_descriptor(&file).await;
        for i in 0..RECORDS {
            file.write_all(&record(i)).await.expect("write_all");
        }
        if held.is_some() {
            wait_for_a_scan().await;
        }
        let hold = release(held);
        let flush = async {
            let (r, ()) = tokio::join!(file.flush(), hold);
            r
        };
        let first = bounded("the first flush", 20, flush).await;
        // A record of unknown outcome is reported once and never written
        // again: the next flush has nothing left to report.
        let second = bounded("the second flush", 20, file.flush()).await;
        drop(file);
        settle().await;
        let after = aiofs::stats();
        set_soft_limit(libc::RLIMIT_SIGPENDING, limit);
        let content = std::fs::read(&path).expect("read the log");
        println!(
            "first flush {first:?}; second flush {second:?}; the log holds {}; \
             eagain_retries +{}, lost_signals +{}",
            describe(&content),
            after.eagain_retries - before.eagain_retries,
            after.lost_signals - before.lost_signals,
        );
        assert!(
            after.lost_signals > before.lost_signals,
            "no result was lost to the full signal queue: the scenario did not happen: {after:?}"
        );
        assert!(second.is_ok(), "the second flush failed: {second:?}");
        assert_eq!(
            &content[..header],
            &vec![b'.'; header][..],
            "the header changed"
        );
        // The records, whole, each at most once, in the order written.
        let body = &content[header..];
        assert_eq!(
            body.len() % MIB,
            0,
            "the log holds part of a record: {}",
            describe(body)
        );
        let order: Vec<u8> = body.chunks(MIB).map(|r| r[0]).collect();
        for (k, r) in body.chunks(MIB).enumerate() {
            assert!(
                r.iter().all(|&b| b == r[0]) && (b'a'..b'a' + RECORDS as u8).contains(&r[0]),
                "record {k} of the log is not one record: {}",
                describe(r)
            );
        }
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "O_APPEND records were reordered or appended twice: the log holds records {:?} \
             (written: {:?})",
            order.iter().map(|&c| c as char).collect::<String>(),
            (0..RECORDS)
                .map(|i| (b'a' + i as u8) as char)
                .collect::<String>()
        );
        if first.is_ok() {
            assert_eq!(
                order.len(),
                RECORDS,
                "the flush was Ok, yet records are missing"
            );
        }
    });
}
