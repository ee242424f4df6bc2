//! A `File` dropped with write-behind chunks held back and bytes still
//! buffered writes them in the order they were written (review of e38435a,
//! defect 2: "detach order").
//!
//! A dropped `File` hands its pending writes to the driver. It used to submit
//! the buffered bytes (the newest data) first and only then the chunks held
//! back behind an older overlapping one (which had no request yet): with
//! `O_APPEND` the last record landed before the one written before it, and a
//! rewrite of one range was undone by an older one.
//!
//! - `o_append_records_held_at_drop_land_in_the_order_written`: record `A`
//!   (4 KiB, one chunk) is in flight, record `B` (4 KiB) is held behind it,
//!   100 bytes of `C` are buffered; the `File` is dropped: the log holds
//!   `A`, `B`, `C`;
//! - `rewrites_held_at_drop_land_in_the_order_written`: the same with
//!   `seek(Start(4096))` before each write instead of `O_APPEND`: the file
//!   holds 100 bytes of `C` over the rest of `B`.
//!
//! Made deterministic without a sleep: `A` queues in glibc behind a read
//! stalled on the file's own descriptor (`support::StalledRead`,
//! `userfaultfd`), so `B` is surely held and the drop happens while `A` has
//! not run; the read is released after the drop. Without `userfaultfd` (not
//! root) `A` is not held: the test says so on stderr and checks the same
//! outcome.
//!
//! Every read goes through AIO (the stalled read must not be tried on the
//! page cache by the polling thread): the same `Config` for every test. The
//! notifier comes from `AIOFS_NOTIFIER`. (The drop outside a runtime under
//! the signal notifier, where no request can be submitted, is
//! `stream_drop_order_blocking.rs`.)

mod support;

use std::io::SeekFrom;

use support::{StalledRead, bounded, serial, settle};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

const KIB: usize = 1024;

fn runtime() -> tokio::runtime::Runtime {
    aiofs::Config::new()
        .nowait(false)
        .install()
        .expect("install the Config");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs of one letter: "4096 x '.', 4096 x 'A', ...".
fn describe(content: &[u8]) -> String {
    let mut runs: Vec<(u8, usize)> = Vec::new();
    for &b in content {
        match runs.last_mut() {
            Some((c, n)) if *c == b => *n += 1,
            _ => runs.push((b, 1)),
        }
    }
    let runs: Vec<String> = runs
        .iter()
        .map(|&(c, n)| format!("{n} x {:?}", c as char))
        .collect();
    format!("[{}]", runs.join(", "))
}

/// `A` (a whole chunk, submitted), `B` (a whole chunk, held behind `A`),
/// `C` (100 bytes, buffered), each after `seek(Start(4096))` unless
/// appending; the `File` is dropped while `A` waits behind the stalled read.
/// Returns the file's content once everything landed.
fn drop_with_held_chunks(append: bool) -> Vec<u8> {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    // Data for the stalled read to read.
    std::fs::write(&path, [b'.'; 4 * KIB]).expect("write the file");
    let rt = runtime();
    rt.block_on(async {
        let mut file = aiofs::OpenOptions::new()
            .read(true)
            .write(!append)
            .append(append)
            .open(&path)
            .await
            .expect("open");
        file.set_max_buf_size(4 * KIB);
        let held = StalledRead::start(&file, 0).await;
        if held.is_none() {
            eprintln!("no userfaultfd here: A is not held (the outcome is checked all the same)");
        }
        for (letter, len) in [(b'A', 4 * KIB), (b'B', 4 * KIB), (b'C', 100)] {
            if !append {
                file.seek(SeekFrom::Start(4 * KIB as u64))
                    .await
                    .expect("seek");
            }
            file.write_all(&vec![letter; len])
                .await
                .expect("write_all (accepted)");
        }
        if held.is_some() {
            let stats = aiofs::stats();
            assert_eq!(
                stats.in_flight, 2,
                "the stalled read and A are in flight, B is held: {stats:?}"
            );
        }
        drop(file);
        if let Some(held) = held {
            held.release().await;
        }
        bounded("the dropped File's writes", 20, settle()).await;
    });
    drop(rt);
    std::fs::read(&path).expect("read the file")
}

#[test]
fn o_append_records_held_at_drop_land_in_the_order_written() {
    let got = drop_with_held_chunks(true);
    let mut want = vec![b'.'; 4 * KIB];
    want.extend([b'A'; 4 * KIB]);
    want.extend([b'B'; 4 * KIB]);
    want.extend([b'C'; 100]);
    assert!(
        got == want,
        "a File dropped with record A in flight, record B held behind it and record C \
         buffered: the log holds {}, where the records were written A, B, C: {}",
        describe(&got),
        describe(&want)
    );
}

#[test]
fn rewrites_held_at_drop_land_in_the_order_written() {
    let got = drop_with_held_chunks(false);
    let mut want = vec![b'.'; 4 * KIB];
    want.extend([b'C'; 100]);
    want.extend([b'B'; 4 * KIB - 100]);
    assert!(
        got == want,
        "a File dropped with a rewrite A in flight, a rewrite B of the same bytes held \
         behind it and a rewrite C buffered: the file holds {}, where writing them in order \
         gives {}",
        describe(&got),
        describe(&want)
    );
}
