//! Listener takeover without waiting (issue 10, item 4).
//!
//! Under `Notifier::Signal` a task on one runtime reads Tokio's signal stream
//! for the completion signal. When that runtime is alive but not driven (a
//! current-thread runtime between `block_on` calls), Tokio delivers nothing
//! to that task, and every other runtime's requests used to wait for the
//! driver's 250 ms safety-net scans: 8 sequential reads on a second runtime
//! took 2 s. They must take under 100 ms in all (checked with 100 ms of
//! margin: the defect costs at least 1.75 s).
//!
//! - `an_idle_listener_runtime_does_not_hold_up_a_multi_thread_runtime`
//! - `an_idle_listener_runtime_does_not_hold_up_a_current_thread_runtime`
//!
//! This binary installs `Notifier::Signal` itself (and sends every read
//! through AIO, without the page-cache fast path), so it covers the signal
//! notifier in both of CI's runs.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use aiofs::{Config, File, Notifier};
use support::{pattern_bytes, serial};
use tokio::runtime::{Builder, Runtime};

const BLOCK: usize = 4096;
const READS: u64 = 8;
/// 100 ms promised, plus margin.
const BOUND: Duration = Duration::from_millis(200);

fn install() {
    Config::new()
        .notifier(Notifier::Signal)
        .nowait(false)
        .install()
        .expect("install Notifier::Signal");
}

fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn read_check(file: &File, pos: u64) {
    let (res, buf) = file.read_at(Vec::with_capacity(BLOCK), pos).await;
    assert_eq!(res.expect("read"), BLOCK, "read at {pos}");
    assert!(
        buf == pattern_bytes(pos, BLOCK),
        "read at {pos}: wrong data"
    );
}

/// Runtime A does a request (its task now reads the signal stream) and stays
/// alive, idle; runtime B (`b`, on its own thread) then does `READS`
/// sequential reads. Returns how long B's reads took in all.
fn idle_listener_then_reads(path: &Path, b: fn() -> Runtime) -> Duration {
    let a = current_thread();
    a.block_on(async {
        let file = File::open(path).await.expect("open");
        read_check(&file, 0).await;
    });
    let listeners = aiofs::stats().listeners;
    assert!(
        listeners >= 1,
        "precondition: runtime A reads the signal stream: {:?}",
        aiofs::stats()
    );
    let path = path.to_owned();
    let took = std::thread::spawn(move || {
        b().block_on(async {
            let file = File::open(&path).await.expect("open");
            let started = Instant::now();
            for i in 0..READS {
                read_check(&file, i * BLOCK as u64 * 3).await;
            }
            started.elapsed()
        })
    })
    .join()
    .expect("runtime B's thread");
    // A was alive (and idle) the whole time.
    drop(a);
    took
}

fn check(took: Duration, flavor: &str) {
    println!("{READS} sequential reads on a {flavor} runtime: {took:?}");
    assert!(
        took < BOUND,
        "{READS} sequential AIO reads on a {flavor} runtime took {took:?} while an idle \
         runtime held the signal stream (100 ms promised, {BOUND:?} allowed): {:?}",
        aiofs::stats()
    );
}

fn data_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("data");
    std::fs::write(&path, pattern_bytes(0, 1 << 20)).expect("write");
    path
}

#[test]
fn an_idle_listener_runtime_does_not_hold_up_a_multi_thread_runtime() {
    install();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = data_file(dir.path());
    let took = idle_listener_then_reads(&path, || {
        Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    });
    check(took, "multi-thread");
}

#[test]
fn an_idle_listener_runtime_does_not_hold_up_a_current_thread_runtime() {
    install();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = data_file(dir.path());
    let took = idle_listener_then_reads(&path, current_thread);
    check(took, "current-thread");
}
