//! A `File` dropped where no request can be submitted (the signal notifier,
//! outside any runtime) writes its held chunks and buffered bytes with
//! `pwrite`, after the chunk already in flight and in the order written
//! (review of e38435a, defect 2: "detach order", the blocking fallback).
//!
//! Under the signal notifier a request needs a Tokio runtime to listen for
//! its completion: a `File` dropped outside one writes what it can no longer
//! submit on the dropping thread, as a dropped `BufWriter` does. That used to
//! write the buffered bytes (the newest) first, then the held chunks, and not
//! to wait for the chunk whose request was in flight, already in glibc's
//! queue: the bytes written with `pwrite` landed before it.
//!
//! - `o_append_records_dropped_outside_a_runtime_land_in_the_order_written`:
//!   record `A` (4 KiB) in flight, record `B` (4 KiB) held behind it, 100
//!   bytes of `C` buffered; the `File` is dropped on a thread outside any
//!   runtime: the log holds `A`, `B`, `C`;
//! - `rewrites_dropped_outside_a_runtime_land_in_the_order_written`: the same
//!   with `seek(Start(4096))` before each write: 100 bytes of `C` over the
//!   rest of `B`.
//!
//! `A` queues in glibc behind a read stalled on the file's own descriptor
//! (`support::StalledRead`, `userfaultfd`). The test waits (at most 1 s) for
//! the drop to return, then releases the read, then waits (at most 10 s) for
//! the drop. The drop must wait for `A`: it returns only after the release
//! (the 1 s only lets a drop that does not wait return first, so that its
//! writes surely land before `A`; the outcome required does not depend on
//! it). Without `userfaultfd` (not root) `A` is not held: the test says so
//! on stderr and checks the same outcome.
//!
//! Process-wide state (`Config`: the signal notifier, every read through
//! AIO, whatever `AIOFS_NOTIFIER` says): its own binary.

mod support;

use std::io::SeekFrom;
use std::sync::mpsc;
use std::time::Duration;

use support::{StalledRead, bounded, serial, settle};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

const KIB: usize = 1024;

fn runtime() -> tokio::runtime::Runtime {
    aiofs::Config::new()
        .notifier(aiofs::Notifier::Signal)
        .nowait(false)
        .install()
        .expect("install the Config");
    tokio::runtime::Builder::new_current_thread()
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
/// appending, from a runtime; the `File` is dropped on a thread outside any
/// runtime while `A` waits behind the stalled read. Returns the file's content
/// once everything landed, and whether the drop returned before the release
/// although `A` was held.
fn drop_outside_a_runtime(append: bool) -> (Vec<u8>, bool) {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    // Data for the stalled read to read.
    std::fs::write(&path, [b'.'; 4 * KIB]).expect("write the file");
    let rt = runtime();
    let (file, held) = rt.block_on(async {
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
        (file, held)
    });

    // Outside any runtime: no request can be submitted there.
    let (done_tx, done_rx) = mpsc::channel();
    let dropper = std::thread::spawn(move || {
        drop(file);
        let _ = done_tx.send(());
    });
    let early = done_rx.recv_timeout(Duration::from_secs(1)).is_ok();
    let early = match held {
        Some(held) => {
            rt.block_on(held.release());
            early
        }
        // Nothing to wait for: `A` may be done already.
        None => false,
    };
    if !early {
        let dropped = done_rx.recv_timeout(Duration::from_secs(10));
        assert!(
            dropped.is_ok(),
            "the drop did not return within 10 s of A's release: {:?}",
            aiofs::stats()
        );
    }
    dropper.join().expect("the dropping thread panicked");
    rt.block_on(bounded("the dropped File's writes", 20, settle()));
    drop(rt);
    (std::fs::read(&path).expect("read the file"), early)
}

#[test]
fn o_append_records_dropped_outside_a_runtime_land_in_the_order_written() {
    let (got, early) = drop_outside_a_runtime(true);
    let mut want = vec![b'.'; 4 * KIB];
    want.extend([b'A'; 4 * KIB]);
    want.extend([b'B'; 4 * KIB]);
    want.extend([b'C'; 100]);
    assert!(
        got == want,
        "a File dropped outside a runtime (signal notifier) with record A in flight, record B \
         held behind it and record C buffered: the log holds {}, where the records were \
         written A, B, C: {} (the drop {} before A was let go)",
        describe(&got),
        describe(&want),
        if early { "returned" } else { "did not return" }
    );
    assert!(
        !early,
        "the drop wrote the held chunk and the buffered bytes without waiting for the chunk \
         in flight before them"
    );
}

#[test]
fn rewrites_dropped_outside_a_runtime_land_in_the_order_written() {
    let (got, early) = drop_outside_a_runtime(false);
    let mut want = vec![b'.'; 4 * KIB];
    want.extend([b'C'; 100]);
    want.extend([b'B'; 4 * KIB - 100]);
    assert!(
        got == want,
        "a File dropped outside a runtime (signal notifier) with a rewrite A in flight, a \
         rewrite B of the same bytes held behind it and a rewrite C buffered: the file holds \
         {}, where writing them in order gives {} (the drop {} before A was let go)",
        describe(&got),
        describe(&want),
        if early { "returned" } else { "did not return" }
    );
    assert!(
        !early,
        "the drop wrote the held chunk and the buffered bytes without waiting for the chunk \
         in flight before them"
    );
}
