//! The counters of the recovery path (issue 10, items 1 and 2), new in
//! `aiofs::Stats`: `lost_signals` (requests whose completion a recovery scan
//! found, not their signal) and `quiet_resubmits` (requests resubmitted
//! without a completion signal after glibc lost their result to a full signal
//! queue).
//!
//! - `a_read_whose_signal_queue_stays_full_is_resubmitted_quietly`: with
//!   `RLIMIT_SIGPENDING` at 0, a 4 KiB read completes with its data, and the
//!   counters say how: found by a scan, resubmitted quietly.
//! - `every_request_with_a_lost_signal_is_counted`: 8 concurrent reads under
//!   the same limit: each is counted.
//!
//! These use fields that today's `Stats` does not have: this file does not
//! compile on today's main (the tests that compile today are in
//! `driver_lost_signals.rs`). Each test changes a resource limit and runs
//! alone in a child process of this binary. Reads go through AIO; the
//! notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aiofs::{Config, File};
use support::process::set_soft_limit;
use support::{in_child, open_rw, pattern_bytes, serial, settle};

const BLOCK: usize = 4096;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn install_config() {
    Config::new()
        .nowait(false)
        .max_in_flight(256)
        .install()
        .expect("install the Config");
}

async fn data_file(dir: &std::path::Path) -> File {
    let path = dir.join("data");
    std::fs::write(&path, pattern_bytes(0, 1 << 20)).expect("write");
    let file = open_rw(&path).await;
    // Starts the driver while signals can still be queued.
    let (res, _) = file.read_at(Vec::with_capacity(BLOCK), 0).await;
    res.expect("a first read");
    file
}

#[test]
fn a_read_whose_signal_queue_stays_full_is_resubmitted_quietly() {
    let _serial = serial();
    if !in_child("a_read_whose_signal_queue_stays_full_is_resubmitted_quietly") {
        return;
    }
    install_config();
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let file = data_file(dir.path()).await;
        set_soft_limit(libc::RLIMIT_SIGPENDING, 0);
        let before = aiofs::stats();
        let read = file.read_at(Vec::with_capacity(BLOCK), 3 * BLOCK as u64);
        let (res, buf) = support::bounded("a read with RLIMIT_SIGPENDING=0", 5, read).await;
        assert_eq!(res.expect("the read"), BLOCK);
        assert!(buf == pattern_bytes(3 * BLOCK as u64, BLOCK), "wrong data");
        let after = aiofs::stats();
        assert!(
            after.lost_signals > before.lost_signals,
            "the read's completion was found by a scan, yet lost_signals did not grow: {after:?}"
        );
        assert!(
            after.quiet_resubmits > before.quiet_resubmits,
            "the read's result was lost to the full queue, yet quiet_resubmits did not grow: \
             {after:?}"
        );
    });
}

#[test]
fn every_request_with_a_lost_signal_is_counted() {
    let _serial = serial();
    if !in_child("every_request_with_a_lost_signal_is_counted") {
        return;
    }
    install_config();
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let file = Arc::new(data_file(dir.path()).await);
        set_soft_limit(libc::RLIMIT_SIGPENDING, 0);
        let before = aiofs::stats();
        let reads: Vec<_> = (0..8u64)
            .map(|i| {
                let file = Arc::clone(&file);
                tokio::spawn(async move {
                    file.read_at(Vec::with_capacity(BLOCK), i * BLOCK as u64)
                        .await
                })
            })
            .collect();
        let all = futures::future::join_all(reads);
        let results = tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .unwrap_or_else(|_| panic!("8 reads did not complete in 10 s: {:?}", aiofs::stats()));
        for (i, r) in results.into_iter().enumerate() {
            let (res, buf) = r.expect("task");
            assert_eq!(res.expect("read"), BLOCK, "read {i}");
            assert!(
                buf == pattern_bytes(i as u64 * BLOCK as u64, BLOCK),
                "read {i}"
            );
        }
        settle().await;
        let after = aiofs::stats();
        assert!(
            after.lost_signals - before.lost_signals >= 8,
            "8 requests lost their signal: {after:?}"
        );
        assert!(
            after.quiet_resubmits - before.quiet_resubmits >= 8,
            "8 results lost to the full queue: {after:?}"
        );
    });
}
