//! Every conversion `tokio::fs::File` has (issue 11, item 7): code written for
//! `tokio::fs` compiles unchanged with `use aiofs as fs;`. `tokio::fs::File`
//! implements `FromRawFd`; `aiofs::File` did not (found by running Tokio's own
//! `tests/fs_*.rs` against aiofs).
//!
//! - `both_file_types_have_the_same_conversions`: a compile-time check of
//!   the conversions `tokio::fs::File` implements (`From<std::fs::File>`,
//!   `From<OwnedFd>`, `AsRawFd`, `AsFd`, `FromRawFd`), for both types;
//! - `a_file_from_a_raw_fd_reads_and_writes`: `unsafe { from_raw_fd(fd) }`,
//!   then positioned and stream reads and a write, as with `tokio::fs`.
//!
//! `FromRawFd` is new: this file does not compile on today's main. The
//! notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use support::pattern_bytes;
use tokio::io::AsyncReadExt;

const LEN: usize = 64 * 1024;

/// The conversions of `tokio::fs::File`.
fn conversions<F>()
where
    F: From<std::fs::File> + From<OwnedFd> + AsRawFd + AsFd + FromRawFd + std::fmt::Debug,
{
}

#[test]
fn both_file_types_have_the_same_conversions() {
    conversions::<tokio::fs::File>();
    conversions::<aiofs::File>();
}

#[tokio::test]
async fn a_file_from_a_raw_fd_reads_and_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, LEN)).expect("write");
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open")
            .into_raw_fd()
    };

    // tokio::fs.
    let raw = open();
    // SAFETY: `raw` was just opened and is owned by nobody else.
    let mut file = unsafe { tokio::fs::File::from_raw_fd(raw) };
    let mut buf = vec![0; 100];
    file.read_exact(&mut buf).await.expect("tokio read");
    assert!(buf == pattern_bytes(0, 100));

    // aiofs, the same way.
    let raw = open();
    // SAFETY: as above.
    let mut file = unsafe { aiofs::File::from_raw_fd(raw) };
    assert_eq!(file.as_raw_fd(), raw, "the File owns the descriptor given");
    file.read_exact(&mut buf).await.expect("aiofs read");
    assert!(buf == pattern_bytes(0, 100));
    let (res, got) = file.read_exact_at(Vec::with_capacity(4096), 5000).await;
    res.expect("read_exact_at");
    assert!(got == pattern_bytes(5000, 4096));
    let (res, _) = file.write_all_at(b"raw".to_vec(), 10).await;
    res.expect("write_all_at");
    drop(file);
    let mut want = pattern_bytes(0, LEN);
    want[10..13].copy_from_slice(b"raw");
    assert!(std::fs::read(&path).expect("read") == want);
}
