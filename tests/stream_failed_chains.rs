//! Write-behind chunks held behind a failed one, three or more deep, never make
//! a wait hang (review of e38435a, defect 1: "gate hang").
//!
//! Overlapping chunks reach the file in the order written: a chunk does not
//! start while an older one it overlaps is unfinished (with `O_APPEND`, every
//! chunk overlaps every other). When the oldest of three, `f`, failed, the
//! second, `o`, was held by a failure (it never ran, so it is not marked
//! failed itself), and the third, `i`, took `o` for a chunk that runs: `flush`
//! waited for a wake-up that nothing in flight would ever send. `flush`,
//! `shutdown`, `sync_*`, and everything that first waits for the writes before
//! it (reads, `SeekFrom::End`, `metadata`, `set_len`) hung for good. (The
//! two-chunk case was fixed in 288a60b.)
//!
//! Here every write fails with `EBADF`: the description is open read-only.
//! `tokio::fs` reports that error from `write_all` or `flush`; aiofs must
//! report it too (from `write_all` or `flush`), every later `flush` must
//! report it again (it writes the chunks again, in order, and they fail
//! again), and reads, seeks and `metadata` must go on. Each wait is bounded
//! (`tokio::time::timeout`): a hang fails the test.
//!
//! - `a_flush_behind_a_failed_o_append_record_reports_it_with_three_or_four_records_held`:
//!   1-byte chunks (`set_max_buf_size(1)`) to an `O_APPEND` description: 3
//!   and 4 records (4 is the most a stream holds: a fifth write waits for the
//!   oldest);
//! - `a_flush_behind_a_failed_rewrite_reports_it_with_three_or_more_rewrites_held`:
//!   `seek(Start(0))` then `write_all`, 3 and 5 times (the fifth write waits
//!   for the oldest and gets its error; four chunks are held).
//!
//! The notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::io::{self, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

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
fn assert_ebadf<T: std::fmt::Debug>(res: &io::Result<T>, what: &str) {
    match res {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => {}
        other => panic!("{what}: want the chunks' EBADF, got {other:?}"),
    }
}

/// A read-only description of `path`, `O_APPEND` if `append`: every write fails
/// with `EBADF`.
fn read_only(path: &Path, append: bool) -> aiofs::File {
    let flags = if append { libc::O_APPEND } else { 0 };
    let std = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .expect("open read-only");
    aiofs::File::from_std(std)
}

/// After the writes: `flush` reports `EBADF` (unless `reported`, the writes
/// did: then it may too, as it writes the chunks again); a read, seeks and
/// `metadata` go on; a second `flush` reports it again; once the data is given
/// up, `flush` succeeds. The file stays as it was (`content`).
async fn after_the_writes(
    file: &mut aiofs::File,
    path: &Path,
    content: &[u8],
    what: &str,
    reported: bool,
) {
    let flush = within(&format!("{what}: flush"), file.flush()).await;
    if !reported {
        assert_ebadf(&flush, &format!("{what}: flush"));
    }
    let mut buf = [0u8; 1];
    let read = within(
        &format!("{what}: a read after the flush"),
        file.read(&mut buf),
    )
    .await;
    read.unwrap_or_else(|e| panic!("{what}: a read after the flush: {e}"));
    within(
        &format!("{what}: seek(End(0)) after the flush"),
        file.seek(SeekFrom::End(0)),
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: seek(End(0)): {e}"));
    within(&format!("{what}: metadata"), file.metadata())
        .await
        .unwrap_or_else(|e| panic!("{what}: metadata: {e}"));
    let again = within(&format!("{what}: the second flush"), file.flush()).await;
    assert_ebadf(
        &again,
        &format!("{what}: the second flush (the chunks fail again)"),
    );
    let dropped = file.discard_unwritten();
    assert!(dropped > 0, "{what}: nothing to discard");
    within(
        &format!("{what}: flush after discard_unwritten"),
        file.flush(),
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: flush after discard_unwritten: {e}"));
    assert_eq!(
        std::fs::read(path).expect("read the file"),
        content,
        "{what}: the file changed"
    );
}

#[tokio::test]
async fn a_flush_behind_a_failed_o_append_record_reports_it_with_three_or_four_records_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    std::fs::write(&path, b"").expect("create the file");
    for n in [3, 4] {
        let what = format!("O_APPEND, {n} records of 1 byte");
        let mut file = read_only(&path, true);
        file.set_max_buf_size(1);
        let written = within(&format!("{what}: write_all"), file.write_all(&b"abcd"[..n])).await;
        // Each record is a chunk: accepted at once (the failure comes later).
        written.unwrap_or_else(|e| panic!("{what}: write_all: {e}"));
        after_the_writes(&mut file, &path, b"", &what, false).await;
    }
}

#[tokio::test]
async fn a_flush_behind_a_failed_rewrite_reports_it_with_three_or_more_rewrites_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    std::fs::write(&path, b"0123456789").expect("create the file");
    for n in [3, 5] {
        let what = format!("{n} rewrites of 4 bytes at 0");
        let mut file = read_only(&path, false);
        let mut reported = false;
        for k in 0..n {
            within(&format!("{what}: seek"), file.seek(SeekFrom::Start(0)))
                .await
                .unwrap_or_else(|e| panic!("{what}: seek: {e}"));
            // Each write is buffered; the next one (not contiguous) sends it.
            let res = within(
                &format!("{what}: write_all {k}"),
                file.write_all(&[b'a' + k as u8; 4]),
            )
            .await;
            if res.is_err() {
                // The fifth waits for the oldest (four chunks are out) and
                // gets its error.
                assert_ebadf(&res, &format!("{what}: write_all {k}"));
                reported = true;
            }
        }
        assert_eq!(reported, n > 4, "{what}: which write reported the error");
        after_the_writes(&mut file, &path, b"0123456789", &what, reported).await;
    }
}
