//! A runtime's shutdown waits for the writes of a `File` dropped unflushed
//! (issue 10, item 3), and `stats().exit_holds` counts the times it was held.
//!
//! `tests/stream_exit_writes.rs` checks the promise at process exit; here, in
//! one process: a runtime's `block_on` writes 16 MiB to an `O_SYNC` file with
//! `write_all` and returns without flushing (the `File` is dropped with writes
//! buffered and in flight); once `drop(runtime)` returns, the file must hold
//! every byte, without waiting any longer, and `exit_holds` has grown.
//!
//! - `dropping_a_multi_thread_runtime_waits_for_a_dropped_files_writes`
//! - `dropping_a_current_thread_runtime_waits_for_a_dropped_files_writes`
//!
//! `exit_holds` is new: this file does not compile on today's main. The
//! tests compare a process-wide counter: they run one at a time. The
//! notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::path::Path;

use support::{pattern_bytes, serial};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;

const LEN: usize = 16 << 20;

fn write_and_drop(rt: Runtime, path: &Path) {
    let data = pattern_bytes(0, LEN);
    let before = aiofs::stats().exit_holds;
    rt.block_on(async {
        let mut file = aiofs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_SYNC)
            .open(path)
            .await
            .expect("open");
        file.write_all(&data).await.expect("write_all");
        // No flush: dropped here.
    });
    drop(rt);
    let content = std::fs::read(path).expect("read");
    let holds = aiofs::stats().exit_holds - before;
    assert_eq!(
        content.len(),
        LEN,
        "once the runtime was dropped, the file holds {} of the {LEN} bytes written \
         (exit_holds +{holds})",
        content.len()
    );
    assert!(
        content == data,
        "the file holds other bytes than those written"
    );
    assert!(
        holds >= 1,
        "the runtime's shutdown was not counted as held: {:?}",
        aiofs::stats()
    );
}

#[test]
fn dropping_a_multi_thread_runtime_waits_for_a_dropped_files_writes() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    write_and_drop(rt, &dir.path().join("out"));
}

#[test]
fn dropping_a_current_thread_runtime_waits_for_a_dropped_files_writes() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    write_and_drop(rt, &dir.path().join("out"));
}
