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
//! The same when the `File` is still alive in a task and it is the shutdown
//! that drops it (review of d56b616, defect 1: "exit hold"): the task writes
//! 4 MiB to an `O_SYNC` file with `write_all` (acknowledged, in flight) and
//! stays pending; `block_on` returns and the runtime is dropped, or shut down
//! with `shutdown_timeout(10 s)`. Once that returns, the file must hold every
//! byte and `stats().in_flight` must be 0. On d56b616, a multi-thread
//! runtime's shutdown dropped the task while its blocking pool was shutting
//! down: the task that would hold the shutdown was dropped unrun, nothing
//! waited, and most runs lost data. A current-thread runtime kept the data
//! (its blocking pool outlives its tasks), but the driver let the shutdown go
//! before counting the last write out of flight: one run in seven (pipe
//! notifier) to one in two (signal notifier) returned with `in_flight` at 1.
//! Hence many runs of each:
//!
//! - `dropping_a_multi_thread_runtime_waits_for_the_writes_of_a_file_its_task_owns`
//!   (16 runs);
//! - `dropping_a_current_thread_runtime_waits_for_the_writes_of_a_file_its_task_owns`
//!   (40 runs);
//! - `shutdown_timeout_waits_for_the_writes_of_a_file_its_task_owns` (16 runs).
//!
//! The tests compare process-wide counters: they run one at a time. The
//! notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{pattern_bytes, serial};
use tokio::io::AsyncWriteExt;
use tokio::runtime::{Builder, Runtime};

const LEN: usize = 16 << 20;
/// What the task writes: four write-behind chunks, all in flight at once.
const TASK_LEN: usize = 4 << 20;
/// Runs of each task scenario on a multi-thread runtime (on d56b616, from
/// four to eight in eight lost data).
const RUNS: usize = 16;
/// Runs on a current-thread runtime (on d56b616, one in seven to one in two
/// returned with a request still counted in flight).
const RUNS_CURRENT_THREAD: usize = 40;

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

/// How the runtime ends.
#[derive(Debug, Clone, Copy)]
enum End {
    Drop,
    ShutdownTimeout,
}

/// One run: a task writes `TASK_LEN` bytes to an `O_SYNC` file with
/// `write_all` and stays pending with the `File`; `block_on` returns once the
/// write is acknowledged and the runtime ends as `end` says. Returns what was
/// wrong, if anything.
fn task_owned_file_at_shutdown(rt: Runtime, end: End, path: &Path) -> Result<String, String> {
    let data = pattern_bytes(1 << 40, TASK_LEN);
    let in_flight = rt.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let path = path.to_owned();
        let data = data.clone();
        tokio::spawn(async move {
            let mut file = aiofs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_SYNC)
                .open(&path)
                .await
                .expect("open");
            file.write_all(&data).await.expect("write_all");
            let _ = tx.send(aiofs::stats().in_flight);
            // The File lives until the shutdown drops the task.
            std::future::pending::<()>().await;
            drop(file);
        });
        rx.await.expect("the task's write_all")
    });
    let started = Instant::now();
    match end {
        End::Drop => drop(rt),
        End::ShutdownTimeout => rt.shutdown_timeout(Duration::from_secs(10)),
    }
    let took = started.elapsed();
    let stats = aiofs::stats();
    let content = std::fs::read(path).expect("read");
    let what = format!(
        "{end:?} returned after {took:?} ({in_flight} requests in flight when block_on \
         returned; then {stats:?})"
    );
    if content.len() != TASK_LEN {
        return Err(format!(
            "the file holds {} of the {TASK_LEN} bytes written with write_all: {what}",
            content.len()
        ));
    }
    if content != data {
        return Err(format!(
            "the file holds other bytes than those written: {what}"
        ));
    }
    if stats.in_flight != 0 {
        return Err(format!("requests are still in flight: {what}"));
    }
    Ok(what)
}

/// `runs` runs on runtimes from `build`; every one must keep all the data.
fn task_owned_file_runs(build: fn() -> Runtime, end: End, runs: usize) {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let results: Vec<Result<String, String>> = (0..runs)
        .map(|i| task_owned_file_at_shutdown(build(), end, &dir.path().join(format!("out{i}"))))
        .collect();
    let failed: Vec<String> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("run {i}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {runs} runs lost writes of a File that a task owned when the runtime shut \
         down:\n{}",
        failed.len(),
        failed.join("\n")
    );
    println!("{runs} runs; the first: {:?}", results[0]);
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn dropping_a_multi_thread_runtime_waits_for_the_writes_of_a_file_its_task_owns() {
    task_owned_file_runs(multi_thread, End::Drop, RUNS);
}

#[test]
fn dropping_a_current_thread_runtime_waits_for_the_writes_of_a_file_its_task_owns() {
    task_owned_file_runs(current_thread, End::Drop, RUNS_CURRENT_THREAD);
}

#[test]
fn shutdown_timeout_waits_for_the_writes_of_a_file_its_task_owns() {
    task_owned_file_runs(multi_thread, End::ShutdownTimeout, RUNS);
}
