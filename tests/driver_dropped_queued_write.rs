//! A `write_at` dropped while it waits behind the in-flight limit still runs
//! (review of d56b616, defect 5: "queued orphan").
//!
//! `File::write_at` promises that a write whose future is dropped after its
//! first poll still runs to completion in the driver's care. A write already
//! in the OS did; one still queued behind `Config::max_in_flight` was freed
//! unrun, so its data never reached the file.
//!
//! `a_write_dropped_while_queued_behind_the_limit_still_runs`: with
//! `max_in_flight(1)`, a read stalled on the file's own descriptor
//! (`support::StalledRead`, `userfaultfd`) holds the one place; a `write_at`
//! is polled once (`stats().queued` is 1) and dropped; the read is released
//! and the driver settles: the write's data is in the file. Without
//! `userfaultfd` (not root) a 64 MiB write holds the place instead, and the
//! test checks that the second write really queued.
//!
//! `Config` is process-wide: the test runs alone in a child process of this
//! binary (`support::in_child`). Every read goes through AIO (the stalled read
//! must not be tried on the page cache). The notifier comes from
//! `AIOFS_NOTIFIER`.

mod support;

use support::{StalledRead, bounded, in_child, open_rw, pattern_bytes, serial, settle};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Where the dropped write writes.
const AT: u64 = 4 * MIB as u64;
const LEN: usize = 64 * KIB;

#[test]
fn a_write_dropped_while_queued_behind_the_limit_still_runs() {
    let _serial = serial();
    if !in_child("a_write_dropped_while_queued_behind_the_limit_still_runs") {
        return;
    }
    aiofs::Config::new()
        .max_in_flight(1)
        .nowait(false)
        .install()
        .expect("install the Config");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    // Data for the stalled read.
    std::fs::write(&path, [b'.'; 4 * KIB]).expect("write the file");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let file = open_rw(&path).await;
        // The one place in flight, taken for as long as the test needs.
        let held = StalledRead::start(&file, 0).await;
        let mut long = None;
        if held.is_none() {
            eprintln!("no userfaultfd here: a 64 MiB write holds the place instead");
            let mut write = Box::pin(file.write_at(vec![b'.'; 64 * MIB], 8 * MIB as u64));
            assert!(
                futures::poll!(&mut write).is_pending(),
                "the long write finished"
            );
            long = Some(write);
        }

        let mut queued = Box::pin(file.write_at(pattern_bytes(AT, LEN), AT));
        assert!(
            futures::poll!(&mut queued).is_pending(),
            "the second write finished with the only place in flight taken"
        );
        let stats = aiofs::stats();
        assert_eq!(
            (stats.in_flight, stats.queued),
            (1, 1),
            "the second write does not wait behind the limit: {stats:?}"
        );
        drop(queued);
        let dropped = aiofs::stats();

        match held {
            Some(held) => held.release().await,
            None => {
                if let Some(write) = long {
                    let (res, _) = bounded("the long write", 30, write).await;
                    res.expect("the long write");
                }
            }
        }
        settle().await;
        let content = std::fs::read(&path).expect("read the file");
        let landed = content.len() >= AT as usize + LEN
            && content[AT as usize..AT as usize + LEN] == pattern_bytes(AT, LEN)[..];
        assert!(
            landed,
            "a write_at polled once (queued behind max_in_flight(1)) and dropped never ran: \
             once the driver settled, the file is {} bytes long (the write was to {AT}..{}); \
             stats after the drop: {dropped:?}",
            content.len(),
            AT as usize + LEN
        );
        let stats = aiofs::stats();
        assert_eq!(
            (stats.in_flight, stats.queued, stats.orphaned),
            (0, 0, 0),
            "{stats:?}"
        );
    });
}
