//! A child forked without `exec` that drops its copy of a `File` writes
//! nothing (review of e38435a, defect 10: "fork dup").
//!
//! After `fork` the child holds a copy of every `File` of its parent, with
//! the parent's buffered bytes and write-behind chunks. aiofs refuses to work
//! in such a child (`Unsupported`: glibc's AIO threads and aiofs's notifier
//! did not survive the fork). But a `File` dropped where no request can be
//! submitted writes its data with `pwrite`, and in the child that is where it
//! was: the child wrote its parent's data, which the parent then wrote again.
//!
//! - `a_forked_child_dropping_a_file_does_not_write_its_parents_buffered_bytes`:
//!   the parent writes `start\n` (a positioned write: the driver runs),
//!   buffers `record\n`, forks; the child drops its copy and `_exit`s; the
//!   parent flushes: the log holds `start\nrecord\n` (the reviewer's
//!   reproducer: it held the record twice);
//! - `a_forked_child_dropping_a_file_with_chunks_in_flight_writes_nothing_and_does_not_hang`:
//!   at the fork record `A` is in flight (queued in glibc behind a read
//!   stalled on the file's own descriptor, `support::StalledRead`), record `B`
//!   is held behind it and `C` is buffered; the child's drop must neither
//!   write `B` and `C` nor wait for `A` (glibc's threads are gone in the
//!   child: it would wait forever); the parent releases the read and flushes:
//!   the log holds `A`, `B`, `C` once each. Without `userfaultfd` (not root)
//!   `A` may be done before the fork: the test says so and checks the same.
//!
//! The parent waits at most 10 s for the child (and kills a child that
//! hangs). Children and a `Config`: each test runs alone in a child process
//! of this binary (`support::in_child`). The notifier comes from
//! `AIOFS_NOTIFIER`.

mod support;

use std::time::{Duration, Instant};

use support::{StalledRead, aio_only, bounded, in_child, serial, settle};
use tokio::io::AsyncWriteExt;

const KIB: usize = 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Forks; the child drops `file` and `_exit`s with 0. The parent's copy is
/// kept. Returns how the child ended.
fn fork_and_drop_in_child(file: aiofs::File) -> (aiofs::File, Result<i32, String>) {
    // SAFETY: the child only drops its copy of the file and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        drop(file);
        // SAFETY: ends the forked child at once, without running the
        // parent's exit handlers.
        unsafe { libc::_exit(0) }
    }
    (file, wait_child(pid, Duration::from_secs(10)))
}

/// Waits for `pid` for at most `limit`; kills it if it is still running then.
/// `Ok(exit code)`, or `Err` saying what happened.
fn wait_child(pid: libc::pid_t, limit: Duration) -> Result<i32, String> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is valid for writes.
        let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(got >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if got == pid {
            if libc::WIFEXITED(status) {
                return Ok(libc::WEXITSTATUS(status));
            }
            return Err(format!("the child ended with wait status {status:#x}"));
        }
        if Instant::now() >= deadline {
            // SAFETY: `pid` is our child, still running.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return Err(format!(
                "the child's drop of its File hung: still running after {limit:?} (killed)"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
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

#[test]
fn a_forked_child_dropping_a_file_does_not_write_its_parents_buffered_bytes() {
    let _serial = serial();
    if !in_child("a_forked_child_dropping_a_file_does_not_write_its_parents_buffered_bytes") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let rt = runtime();
    let file = rt.block_on(async {
        let mut file = aiofs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .await
            .expect("open");
        // A request: the driver runs.
        let (res, _) = file.write_all_at(b"start\n".to_vec(), 0).await;
        res.expect("write_all_at");
        file.write_all(b"record\n").await.expect("write_all");
        file
    });
    let (mut file, child) = fork_and_drop_in_child(file);
    assert_eq!(child, Ok(0), "the child");
    rt.block_on(async {
        bounded("the parent's flush", 10, file.flush())
            .await
            .expect("the parent's flush");
        drop(file);
        settle().await;
    });
    let got = std::fs::read_to_string(&path).expect("read the log");
    assert_eq!(
        got, "start\nrecord\n",
        "a child forked without exec dropped its copy of the File, with the record buffered; \
         the parent flushed its own: the log holds {got:?}"
    );
}

#[test]
fn a_forked_child_dropping_a_file_with_chunks_in_flight_writes_nothing_and_does_not_hang() {
    let _serial = serial();
    if !in_child(
        "a_forked_child_dropping_a_file_with_chunks_in_flight_writes_nothing_and_does_not_hang",
    ) {
        return;
    }
    // The stalled read must go through AIO.
    aio_only();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    // Data for the stalled read to read.
    std::fs::write(&path, [b'.'; 4 * KIB]).expect("write the file");
    let rt = runtime();
    let (file, held) = rt.block_on(async {
        let mut file = aiofs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .await
            .expect("open");
        file.set_max_buf_size(4 * KIB);
        let held = StalledRead::start(&file, 0).await;
        if held.is_none() {
            eprintln!("no userfaultfd here: A is not held (the outcome is checked all the same)");
        }
        for (letter, len) in [(b'A', 4 * KIB), (b'B', 4 * KIB), (b'C', 100)] {
            file.write_all(&vec![letter; len])
                .await
                .expect("write_all (accepted)");
        }
        (file, held)
    });
    let (mut file, child) = fork_and_drop_in_child(file);
    let after_child = std::fs::read(&path).expect("read the log");
    rt.block_on(async {
        if let Some(held) = held {
            held.release().await;
        }
        bounded("the parent's flush", 10, file.flush())
            .await
            .expect("the parent's flush");
        drop(file);
        settle().await;
    });
    assert_eq!(child, Ok(0), "the child");
    let got = std::fs::read(&path).expect("read the log");
    let mut want = vec![b'.'; 4 * KIB];
    want.extend([b'A'; 4 * KIB]);
    want.extend([b'B'; 4 * KIB]);
    want.extend([b'C'; 100]);
    assert!(
        got == want,
        "a child forked without exec dropped its copy of the File (A in flight, B held, C \
         buffered); the parent flushed its own: the log holds {} (after the child: {}), \
         where the parent wrote {}",
        describe(&got),
        describe(&after_child),
        describe(&want)
    );
}
