//! Nothing written is lost at exit (issue 10, item 3), as with `tokio::fs`.
//!
//! A program writes 16 MiB with `AsyncWriteExt::write_all` to an `O_SYNC` file
//! through `aiofs::File` and returns from its runtime's `block_on` without
//! flushing: the `File` is dropped with writes buffered, in flight, or (with a
//! small in-flight limit) queued behind the limit; then the runtime is
//! dropped and `main` returns. The file must hold all 16 MiB, the right bytes:
//! `tokio::fs` keeps them (its runtime's shutdown waits for its blocking
//! writes), so the same program must keep them on aiofs.
//!
//! - `dropped_file_writes_reach_the_file_at_exit_tokio_fs_multi_thread`: the
//!   program on `tokio::fs` (the expectation is fair: it passes today);
//! - `dropped_file_writes_reach_the_file_at_exit_multi_thread`: on aiofs, a
//!   multi-thread runtime (what `#[tokio::main]` builds);
//! - `dropped_file_writes_reach_the_file_at_exit_current_thread`: on aiofs, a
//!   current-thread runtime;
//! - `dropped_file_writes_queued_behind_the_limit_reach_the_file_at_exit`: on
//!   aiofs with `Config::max_in_flight(2)`, so that some of the writes still
//!   wait for a place under the limit when the program ends.
//!
//! Each program is this binary run again with `AIOFS_EXIT_CHILD` naming it
//! (`harness = false`: its `main` returns as a program's would), five times
//! (how much is lost depends on how quickly the process exits). The notifier
//! comes from `AIOFS_NOTIFIER`, passed on to the children.

mod support;

use std::path::Path;
use std::time::Duration;

use support::pattern_bytes;
use support::process::run_self;
use tokio::io::AsyncWriteExt;

const LEN: usize = 16 << 20;
const CHILD: &str = "AIOFS_EXIT_CHILD";
const PATH: &str = "AIOFS_EXIT_PATH";
/// Each program runs this many times.
const RUNS: usize = 5;

/// (test name, program)
const TESTS: &[(&str, &str)] = &[
    (
        "dropped_file_writes_reach_the_file_at_exit_tokio_fs_multi_thread",
        "tokio-multi-thread",
    ),
    (
        "dropped_file_writes_reach_the_file_at_exit_multi_thread",
        "aiofs-multi-thread",
    ),
    (
        "dropped_file_writes_reach_the_file_at_exit_current_thread",
        "aiofs-current-thread",
    ),
    (
        "dropped_file_writes_queued_behind_the_limit_reach_the_file_at_exit",
        "aiofs-queued",
    ),
];

fn main() {
    if let Ok(program) = std::env::var(CHILD) {
        let path = std::env::var(PATH).expect("the child's file");
        program_main(&program, Path::new(&path));
        // Returns from `main`: the process exits, as a program does.
        return;
    }
    // Like the libtest harness: names not starting with `-` filter the tests.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    let mut passed = 0;
    for &(name, program) in TESTS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        // A few runs: how much is lost today depends on how quickly the
        // process exits; none of them may lose anything.
        let runs: Vec<Result<String, String>> = (0..RUNS).map(|_| run(program)).collect();
        if runs.iter().all(Result::is_ok) {
            println!("test {name} ... ok ({RUNS} runs, {:?})", runs[0]);
            passed += 1;
        } else {
            println!("test {name} ... FAILED");
            for (i, r) in runs.iter().enumerate() {
                println!("    run {i}: {r:?}");
            }
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        println!(
            "\ntest result: FAILED. {passed} passed; {} failed: {failed:?}",
            failed.len()
        );
        std::process::exit(101);
    }
    println!("\ntest result: ok. {passed} passed; 0 failed");
}

/// Runs `program` in a child process and checks the file it leaves.
fn run(program: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out");
    let out = run_self(
        &[],
        &[(CHILD, program), (PATH, path.to_str().expect("utf-8 path"))],
        Duration::from_secs(120),
    )?;
    if !out.status.success() {
        return Err(format!(
            "the program failed ({}):\n{}\n{}",
            out.status, out.stdout, out.stderr
        ));
    }
    let content = std::fs::read(&path).map_err(|e| format!("read the file: {e}"))?;
    if content.len() != LEN {
        return Err(format!(
            "after the program returned from main, the file holds {} of the {LEN} bytes \
             written with write_all (the program ran {:?}; {})",
            content.len(),
            out.elapsed,
            out.stdout.trim()
        ));
    }
    if content != pattern_bytes(0, LEN) {
        let first = content
            .iter()
            .zip(pattern_bytes(0, LEN))
            .position(|(a, b)| *a != b);
        return Err(format!(
            "the file holds {LEN} bytes, but not those written: first difference at {first:?}"
        ));
    }
    Ok(format!(
        "16 MiB in the file; the program ran {:?}",
        out.elapsed
    ))
}

/// The program: write 16 MiB to an `O_SYNC` file, return without flushing,
/// drop the runtime.
fn program_main(program: &str, path: &Path) {
    if program == "aiofs-queued" {
        aiofs::Config::new()
            .max_in_flight(2)
            .install()
            .expect("install the Config");
    }
    let rt = if program == "aiofs-current-thread" {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .expect("runtime");
    let data = pattern_bytes(0, LEN);
    rt.block_on(async {
        if program.starts_with("tokio") {
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_SYNC)
                .open(path)
                .await
                .expect("open with tokio::fs");
            file.write_all(&data).await.expect("write_all");
            // No flush, no sync: the file is dropped here.
        } else {
            let mut file = aiofs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_SYNC)
                .open(path)
                .await
                .expect("open with aiofs");
            file.write_all(&data).await.expect("write_all");
            // No flush, no sync: the file is dropped here.
        }
    });
    if !program.starts_with("tokio") {
        let s = aiofs::stats();
        println!(
            "at the end of block_on: {} requests in flight, {} queued",
            s.in_flight, s.queued
        );
    }
    drop(rt);
}
