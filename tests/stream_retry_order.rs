//! A write-behind chunk written in two goes (a short write, or a failure and
//! a flush's retry) lands before the chunks written after it over the same
//! bytes, or after it with `O_APPEND` (review of d56b616, defect 2:
//! "reorder", the cases where no signal is lost).
//!
//! The stream writes the rest of a short write, and the data of a failed
//! chunk, when it next polls the chunk: a flush. It used to start later
//! chunks at once meanwhile, so that rest landed after them: over a newer
//! rewrite of the same bytes, or, with `O_APPEND`, after the records written
//! later (a record split in two, or moved behind the next one). The stream
//! must not start a chunk while an older overlapping one (any older one, with
//! `O_APPEND`) is unfinished.
//!
//! `RLIMIT_FSIZE` makes the first write stop short (a write that crosses the
//! limit writes what fits) or fail (`EFBIG`, at the limit); the test waits
//! until the driver has that result (`support::settle`), lifts the limit and
//! writes the next chunk, then flushes:
//!
//! - `an_o_append_record_cut_short_is_finished_before_the_next_record`: record
//!   `a` crosses the limit, then record `b`: the log holds `a` then `b`;
//! - `a_rewrite_is_not_undone_by_the_rest_of_an_older_short_write`: 1 MiB of
//!   `A` crosses the limit, then 1 MiB of `B` at the same offset: the file
//!   holds `B`;
//! - `an_o_append_record_retried_after_a_failure_is_not_appended_after_later_records`:
//!   record `a` fails at the limit (`EFBIG`, reported once), then record `b`;
//!   the second flush writes `a` again: the log holds `a` then `b`. Ignored:
//!   on cf6508c the first flush never finishes (record `b` waits for the
//!   failed record `a`, which only that flush's error would re-arm); on
//!   d56b616 the log holds `b` then `a`. Run it with `--ignored`.
//!
//! Process-wide state (a resource limit, `SIGXFSZ` ignored): each test runs
//! alone in a child process of this binary. The notifier comes from
//! `AIOFS_NOTIFIER`.

mod support;

use std::io::SeekFrom;
use std::path::Path;
use std::time::Duration;

use support::process::{run_self, set_soft_limit};
use support::{bounded, serial, settle};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

const MIB: usize = 1 << 20;
const HEADER: usize = 4096;
const CHILD: &str = "AIOFS_TEST_CHILD";

/// As `support::in_child`, for ignored tests too: `true` in the child.
fn in_child(name: &str) -> bool {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        return true;
    }
    let out = run_self(
        &[
            "--exact",
            name,
            "--include-ignored",
            "--test-threads=1",
            "--nocapture",
        ],
        &[(CHILD, name)],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        out.status.success(),
        "{name} failed in its child process ({}):\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("1 passed"),
        "the child process did not run {name}:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    false
}

/// A runtime, with `SIGXFSZ` ignored (its default action kills the process
/// at the first write past the limit).
fn setup() -> tokio::runtime::Runtime {
    // SAFETY: a plain libc call with a valid disposition.
    let old = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    assert_ne!(old, libc::SIG_ERR, "ignore SIGXFSZ");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A file of `HEADER` bytes of `.`.
fn header_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("f");
    std::fs::write(&path, [b'.'; HEADER]).expect("write the header");
    path
}

/// The letters of the 512 KiB pieces after the header, `?` for a piece that
/// is not one letter.
fn pieces(content: &[u8]) -> String {
    content[HEADER.min(content.len())..]
        .chunks(MIB / 2)
        .map(|p| {
            if p.iter().all(|&c| c == p[0]) {
                p[0] as char
            } else {
                '?'
            }
        })
        .collect()
}

/// With the limit in the middle of `first`'s MiB: `first` is written (it
/// stops short), the driver has its result, the limit is lifted, `second` is
/// written (after `seek(Start(pos))` unless appending), then `flush` twice.
/// Returns the file's 512 KiB pieces after the header, and the flushes.
fn two_chunks(append: bool, limit_at: u64, first: u8, second: u8) -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = header_file(dir.path());
    setup().block_on(async {
        let mut file = aiofs::OpenOptions::new()
            .write(!append)
            .append(append)
            .open(&path)
            .await
            .expect("open");
        let pos = HEADER as u64;
        let limit = set_soft_limit(libc::RLIMIT_FSIZE, limit_at);
        if !append {
            file.seek(SeekFrom::Start(pos)).await.expect("seek");
        }
        file.write_all(&vec![first; MIB])
            .await
            .expect("write_all (accepted)");
        // The first write is over; the stream has not looked at its result.
        settle().await;
        set_soft_limit(libc::RLIMIT_FSIZE, limit);
        if !append {
            file.seek(SeekFrom::Start(pos)).await.expect("seek");
        }
        let written = file.write_all(&vec![second; MIB]).await;
        let flush = bounded("the first flush", 20, file.flush()).await;
        let again = bounded("the second flush", 20, file.flush()).await;
        drop(file);
        settle().await;
        let content = std::fs::read(&path).expect("read the file");
        assert_eq!(
            &content[..HEADER],
            &[b'.'; HEADER][..],
            "the header changed"
        );
        let flushes = format!("write_all: {written:?}; flush: {flush:?}; flush: {again:?}");
        println!("{flushes}; after the header: {}", pieces(&content));
        (pieces(&content), flushes)
    })
}

/// Record `a` crosses the limit: 512 KiB fit, the rest is written by the
/// flush, before record `b`.
#[test]
fn an_o_append_record_cut_short_is_finished_before_the_next_record() {
    let _serial = serial();
    if !in_child("an_o_append_record_cut_short_is_finished_before_the_next_record") {
        return;
    }
    let (pieces, flushes) = two_chunks(true, (HEADER + MIB / 2) as u64, b'a', b'b');
    assert_eq!(
        pieces, "aabb",
        "record a stopped short at the size limit and the rest of it was appended after \
         record b, written after it: the log holds, in 512 KiB pieces, {pieces:?} ({flushes})"
    );
    assert!(
        !flushes.contains("Err"),
        "nothing failed, yet an error was reported: {flushes}"
    );
}

/// `A` crosses the limit: 512 KiB fit, the rest is written by the flush,
/// before `B` at the same offset.
#[test]
fn a_rewrite_is_not_undone_by_the_rest_of_an_older_short_write() {
    let _serial = serial();
    if !in_child("a_rewrite_is_not_undone_by_the_rest_of_an_older_short_write") {
        return;
    }
    let (pieces, flushes) = two_chunks(false, (HEADER + MIB / 2) as u64, b'A', b'B');
    assert_eq!(
        pieces, "BB",
        "1 MiB of A stopped short at the size limit, 1 MiB of B was written over it, and \
         the rest of A, written by the flush, landed over B: the file holds, in 512 KiB \
         pieces, {pieces:?} ({flushes})"
    );
    assert!(
        !flushes.contains("Err"),
        "nothing failed, yet an error was reported: {flushes}"
    );
}

/// Record `a` fails at the limit (`EFBIG`); its error is reported once, and
/// the next flush writes it again, before record `b`.
/// (On cf6508c the first flush hung: a chunk behind a failed `O_APPEND` chunk
/// never started, and the flush waited for it.)
#[test]
fn an_o_append_record_retried_after_a_failure_is_not_appended_after_later_records() {
    let _serial = serial();
    if !in_child("an_o_append_record_retried_after_a_failure_is_not_appended_after_later_records") {
        return;
    }
    let (pieces, flushes) = two_chunks(true, HEADER as u64, b'a', b'b');
    assert_eq!(
        flushes.matches("FileTooLarge").count(),
        1,
        "record a's EFBIG is reported once, by write_all or the first flush: {flushes}"
    );
    if flushes.starts_with("write_all: Err") {
        // Record b was refused: the caller would write it again.
        assert_eq!(pieces, "aa", "the log holds, in 512 KiB pieces, {pieces:?}");
        return;
    }
    assert!(
        flushes.ends_with("flush: Ok(())"),
        "the second flush did not write record a again: {flushes}"
    );
    assert_eq!(
        pieces, "aabb",
        "record a failed, was written again by a flush, and was appended after record b, \
         written after it: the log holds, in 512 KiB pieces, {pieces:?} ({flushes})"
    );
}
