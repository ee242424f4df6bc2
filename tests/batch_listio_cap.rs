//! `lio_listio` calls are capped (issue 10, item 6, from the code).
//!
//! glibc's `lio_listio` puts one pointer per request on the calling thread's
//! stack (`LISTIO_MAX` is unbounded there), and the driver called it with as
//! many requests as the in-flight room allowed: with a large
//! `max_in_flight`, one call could take thousands and overflow a worker's
//! stack. Calls must be capped (1024 requests each).
//!
//! `a_batch_of_3000_reads_takes_at_least_three_lio_listio_calls`: with
//! `Config::max_in_flight(4096)`, a `Batch` of 3000 reads completes with the
//! right data, in at least 3 `lio_listio` calls (`stats().listio_calls`).
//!
//! Its own `Config`: the test runs in a child process of this binary
//! (`support::in_child`). The notifier comes from `AIOFS_NOTIFIER`.

mod support;

use aiofs::{Batch, Config, File};
use support::{in_child, pattern_bytes, serial, settle};

const READS: u64 = 3000;
const BLOCK: usize = 4096;
const CAP: u64 = 1024;

#[test]
fn a_batch_of_3000_reads_takes_at_least_three_lio_listio_calls() {
    let _serial = serial();
    if !in_child("a_batch_of_3000_reads_takes_at_least_three_lio_listio_calls") {
        return;
    }
    Config::new()
        .max_in_flight(4096)
        .nowait(false)
        .install()
        .expect("install the Config");
    let len = READS as usize * BLOCK;
    let mut std_file = tempfile::tempfile().expect("tempfile");
    std::io::Write::write_all(&mut std_file, &pattern_bytes(0, len)).expect("write");
    let file = File::from_std(std_file);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            // The driver starts (its signal action, its thread) before the batch.
            let (res, _) = file.read_at(Vec::with_capacity(BLOCK), 0).await;
            res.expect("a first read");
            let before = aiofs::stats();
            let mut batch = Batch::new();
            // Every block, from the last: no two requests alike.
            for i in 0..READS {
                batch.read_at(
                    &file,
                    Vec::with_capacity(BLOCK),
                    (READS - 1 - i) * BLOCK as u64,
                );
            }
            let results = support::bounded("a batch of 3000 reads", 60, batch.submit()).await;
            for (i, (res, buf)) in results.into_iter().enumerate() {
                let pos = (READS - 1 - i as u64) * BLOCK as u64;
                assert_eq!(res.expect("batch read"), BLOCK, "read {i} at {pos}");
                assert!(
                    buf == pattern_bytes(pos, BLOCK),
                    "read {i} at {pos}: wrong data"
                );
            }
            settle().await;
            let after = aiofs::stats();
            let calls = after.listio_calls - before.listio_calls;
            let requests = after.listio_requests - before.listio_requests;
            println!("{READS} reads: {calls} lio_listio calls for {requests} requests");
            assert!(
                calls >= READS.div_ceil(CAP),
                "{READS} requests went to glibc in {calls} lio_listio call(s) ({requests} \
                 requests): each call must take at most {CAP}: {after:?}"
            );
        });
}
