//! Giving up buffered writes after an error (issue 11, item 3):
//! `File::discard_unwritten(&mut self) -> u64`.
//!
//! A write-behind chunk that can never succeed (`EBADF`, `EFBIG`) used to be
//! reported by every flush until the `File` was dropped, with no way to give
//! it up. `discard_unwritten` gives up the buffered data that is not in the
//! file (failed chunks and bytes not yet submitted) and its pending error,
//! and says how many bytes it gave up; the next flush is `Ok`.
//!
//! - `discard_unwritten_gives_up_a_failed_write_behind_and_the_next_flush_is_ok`
//!   (`EBADF`: the file is open read-only);
//! - `discard_unwritten_gives_up_a_write_behind_past_the_file_size_limit`
//!   (`EFBIG`, in a child process of this binary: `RLIMIT_FSIZE`);
//! - `discard_unwritten_gives_up_bytes_not_yet_submitted`: bytes still in the
//!   buffer never reach the file; later writes do.
//!
//! `discard_unwritten` is new: this file does not compile on today's main.
//! The notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::io::SeekFrom;

use support::{in_child, open_rw, pattern_bytes, serial};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

const LEN: usize = 64 * 1024;
const DATA: usize = 3000;

#[tokio::test]
async fn discard_unwritten_gives_up_a_failed_write_behind_and_the_next_flush_is_ok() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("read-only");
    std::fs::write(&path, pattern_bytes(0, LEN)).expect("write");
    let mut f = aiofs::File::open(&path).await.expect("open read-only");
    f.write_all(&pattern_bytes(1 << 40, DATA))
        .await
        .expect("write_all is accepted");
    let e = f.flush().await.expect_err("a write to a read-only file");
    assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e:?}");
    // Kept and retried: the next flush fails again.
    assert!(f.flush().await.is_err(), "the failed chunk is retried");

    assert_eq!(f.discard_unwritten(), DATA as u64, "bytes given up");
    f.flush().await.expect("flush after discard_unwritten");
    f.shutdown()
        .await
        .expect("shutdown after discard_unwritten");
    f.sync_all()
        .await
        .expect("sync_all after discard_unwritten");
    // Nothing left to give up.
    assert_eq!(f.discard_unwritten(), 0);
    drop(f);
    assert!(std::fs::read(&path).expect("read") == pattern_bytes(0, LEN));
}

#[test]
fn discard_unwritten_gives_up_a_write_behind_past_the_file_size_limit() {
    let _serial = serial();
    if !in_child("discard_unwritten_gives_up_a_write_behind_past_the_file_size_limit") {
        return;
    }
    // SAFETY: ignoring SIGXFSZ (whose default action ends the process) in this
    // child process, which runs this test alone.
    assert_ne!(
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) },
        libc::SIG_ERR
    );
    support::process::set_soft_limit(libc::RLIMIT_FSIZE, 1 << 20);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("data");
            std::fs::write(&path, pattern_bytes(0, LEN)).expect("write");
            let mut f = open_rw(&path).await;
            // Below the limit: written. Past it: refused.
            f.write_all(b"head").await.expect("write_all");
            f.flush().await.expect("flush below the limit");
            f.seek(SeekFrom::Start(2 << 20)).await.expect("seek");
            f.write_all(&pattern_bytes(1 << 40, DATA))
                .await
                .expect("write_all is accepted");
            let e = f.flush().await.expect_err("a write past RLIMIT_FSIZE");
            assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e:?}");
            assert_eq!(f.discard_unwritten(), DATA as u64, "bytes given up");
            f.flush().await.expect("flush after discard_unwritten");
            f.sync_all()
                .await
                .expect("sync_all after discard_unwritten");
            drop(f);
            let mut want = pattern_bytes(0, LEN);
            want[..4].copy_from_slice(b"head");
            assert!(std::fs::read(&path).expect("read") == want);
        });
}

#[tokio::test]
async fn discard_unwritten_gives_up_bytes_not_yet_submitted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, LEN)).expect("write");
    let mut f = open_rw(&path).await;
    // A few bytes: they stay in the write-behind buffer.
    f.write_all(b"never").await.expect("write_all");
    assert_eq!(f.discard_unwritten(), 5, "bytes given up");
    f.flush().await.expect("flush");
    // Later writes go out as usual.
    f.seek(SeekFrom::Start(100)).await.expect("seek");
    f.write_all(b"later").await.expect("write_all");
    f.flush().await.expect("flush");
    drop(f);
    let mut want = pattern_bytes(0, LEN);
    want[100..105].copy_from_slice(b"later");
    assert!(
        std::fs::read(&path).expect("read") == want,
        "the file holds given-up bytes, or misses later ones"
    );
}
