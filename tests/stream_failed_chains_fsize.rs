//! Write-behind chunks held behind a failed one, three or more deep: `flush`
//! reports the failure while it lasts, and once its cause is gone the next
//! `flush` writes every chunk, in the order written (review of e38435a,
//! defect 1: "gate hang", with an error that goes away).
//!
//! The chunks fail with `EFBIG`: `RLIMIT_FSIZE` is 0. `flush` used to wait
//! for good when three or more overlapping chunks were out (the third took the
//! second, held behind the failed first, for a running chunk), and went on
//! waiting after the limit was lifted: no later `flush` could write them.
//!
//! - `o_append_records_held_behind_a_failed_one_are_written_in_order_once_the_limit_is_lifted`:
//!   3 and 5 records of 4 KiB (the fifth `write_all` waits for the oldest
//!   record and gets its error: that record is refused, the four before it
//!   are held);
//! - `rewrites_held_behind_a_failed_one_are_written_in_order_once_the_limit_is_lifted`:
//!   3 and 5 writes at offset 0 (after `seek(Start(0))`), each shorter than the
//!   one before, so that the file shows the order they landed in (the fifth
//!   is refused, as above).
//!
//! With the limit at 0 every `flush` reports `EFBIG` (the first one the error
//! of the writes, the next ones that of their new attempt) and the file stays
//! empty; a read after the failed `flush` goes on. Then the limit is lifted:
//! `flush` succeeds and the file holds exactly what `std` gives for the writes
//! `write_all` accepted, applied in order. Each wait is bounded
//! (`tokio::time::timeout`): a hang fails the test.
//!
//! Process-wide state (a resource limit, `SIGXFSZ` ignored): its own binary,
//! each test alone in a child process of it (`support::in_child`). The
//! notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::io::{self, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use support::process::set_soft_limit;
use support::{in_child, serial};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const KIB: usize = 1024;

/// How long a wait may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(5);

/// Awaits `fut` for at most [`HANG`]; a timeout fails the test, naming `what`.
async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(HANG, fut).await {
        Ok(out) => out,
        Err(_) => panic!(
            "{what} TIMED OUT after {HANG:?}: the write-behind chunks held behind a failed one \
             never settle ({:?})",
            aiofs::stats()
        ),
    }
}

#[track_caller]
fn assert_efbig<T: std::fmt::Debug>(res: &io::Result<T>, what: &str) {
    match res {
        Err(e) if e.raw_os_error() == Some(libc::EFBIG) => {}
        other => panic!("{what}: want EFBIG (the size limit is 0), got {other:?}"),
    }
}

/// A runtime, with `SIGXFSZ` ignored (its default action kills the process
/// at the first write past the limit).
fn setup() -> tokio::runtime::Runtime {
    // SAFETY: a plain libc call with a valid disposition.
    let old = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    assert_ne!(old, libc::SIG_ERR, "ignore SIGXFSZ");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// One write: `(letter, length)`, at offset 0 after a seek unless appending.
type Writes = [(u8, usize)];

/// What `std` makes of the writes `accepted` (the others were refused):
/// applied in order to a fresh file.
fn with_std(dir: &Path, append: bool, accepted: &Writes) -> Vec<u8> {
    let path = dir.join("std");
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(!append)
        .append(append)
        .open(&path)
        .expect("open the std file");
    for &(letter, len) in accepted {
        let data = vec![letter; len];
        if append {
            file.write_all(&data).expect("std write");
        } else {
            file.write_all_at(&data, 0).expect("std write_all_at");
        }
    }
    drop(file);
    std::fs::read(&path).expect("read the std file")
}

/// Runs of one letter, for the failure messages: "3 KiB of 'a', ...".
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

/// The writes with the size limit at 0, two flushes (both `EFBIG`), a read,
/// then the limit lifted and a flush: the file must hold what `std` makes of
/// the writes accepted.
fn scenario(append: bool, writes: &Writes) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    std::fs::write(&path, b"").expect("create the file");
    let what = format!(
        "{} {} writes",
        if append {
            "O_APPEND:"
        } else {
            "rewrites at 0:"
        },
        writes.len()
    );
    setup().block_on(async {
        let mut file = aiofs::OpenOptions::new()
            .read(true)
            .write(!append)
            .append(append)
            .open(&path)
            .await
            .expect("open");
        if append {
            // One chunk per record. (A rewrite stays buffered until the next
            // seek sends it: one chunk per write as well.)
            file.set_max_buf_size(4 * KIB);
        }
        let unlimited = set_soft_limit(libc::RLIMIT_FSIZE, 0);
        let mut accepted = Vec::new();
        let mut reported = false;
        for (k, &(letter, len)) in writes.iter().enumerate() {
            if !append {
                within(&format!("{what}: seek"), file.seek(SeekFrom::Start(0)))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: seek: {e}"));
            }
            let res = within(
                &format!("{what}: write_all {k}"),
                file.write_all(&vec![letter; len]),
            )
            .await;
            match res {
                Ok(()) => accepted.push((letter, len)),
                Err(_) => {
                    // Four chunks are out: this write waited for the oldest,
                    // and got its error (before accepting a byte).
                    assert_efbig(&res, &format!("{what}: write_all {k}"));
                    reported = true;
                }
            }
        }
        assert_eq!(
            reported,
            writes.len() > 4,
            "{what}: which write reported the error ({} accepted)",
            accepted.len()
        );
        let flush = within(&format!("{what}: the first flush"), file.flush()).await;
        if !reported {
            assert_efbig(&flush, &format!("{what}: the first flush"));
        }
        let mut buf = [0u8; 1];
        let read = within(&format!("{what}: a read after it"), file.read(&mut buf)).await;
        assert_eq!(
            read.unwrap_or_else(|e| panic!("{what}: a read: {e}")),
            0,
            "{what}: the file is empty"
        );
        let again = within(&format!("{what}: the second flush"), file.flush()).await;
        assert_efbig(
            &again,
            &format!("{what}: the second flush (the limit is still 0)"),
        );
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len(),
            0,
            "{what}: bytes past the size limit"
        );

        set_soft_limit(libc::RLIMIT_FSIZE, unlimited);
        let last = within(
            &format!("{what}: the flush once the limit is lifted"),
            file.flush(),
        )
        .await;
        last.unwrap_or_else(|e| panic!("{what}: the flush once the limit is lifted: {e}"));
        drop(file);
        let got = std::fs::read(&path).expect("read the file");
        let want = with_std(dir.path(), append, &accepted);
        assert!(
            got == want,
            "{what}: once the limit is lifted, the file holds {} where std gives {} for the \
             writes accepted, in order: {:?}",
            describe(&got),
            describe(&want),
            accepted
                .iter()
                .map(|&(c, n)| format!("{n} x {:?}", c as char))
                .collect::<Vec<_>>()
        );
        println!("{what}: {}", describe(&got));
    });
}

/// 4 KiB records, letters `a`, `b`, ...
fn records(n: usize) -> Vec<(u8, usize)> {
    (0..n).map(|k| (b'a' + k as u8, 4 * KIB)).collect()
}

/// Writes at 0, letters `a`, `b`, ..., each 1 KiB shorter than the one before
/// (the last 1 KiB long).
fn shrinking(n: usize) -> Vec<(u8, usize)> {
    (0..n).map(|k| (b'a' + k as u8, (n - k) * KIB)).collect()
}

#[test]
fn o_append_records_held_behind_a_failed_one_are_written_in_order_once_the_limit_is_lifted() {
    let _serial = serial();
    if !in_child(
        "o_append_records_held_behind_a_failed_one_are_written_in_order_once_the_limit_is_lifted",
    ) {
        return;
    }
    for n in [3, 5] {
        scenario(true, &records(n));
    }
}

#[test]
fn rewrites_held_behind_a_failed_one_are_written_in_order_once_the_limit_is_lifted() {
    let _serial = serial();
    if !in_child("rewrites_held_behind_a_failed_one_are_written_in_order_once_the_limit_is_lifted")
    {
        return;
    }
    for n in [3, 5] {
        scenario(false, &shrinking(n));
    }
}
