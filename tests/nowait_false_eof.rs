//! A false end of file from the page-cache fast path (issue 10, item 5).
//!
//! On Linux 5.9 and 5.10, `preadv2(RWF_NOWAIT)` may return 0 before the end of
//! the file (`man preadv2`, BUGS; Tokio dropped its own fast path over it,
//! tokio#3803). A 0 from the fast path is not proof of the end of file: the
//! read must confirm it (through AIO, or against the file size) and still
//! return every byte. The test-only seam `aiofs::__fake_nowait_eof(count)`
//! makes the next `count` fast-path reads that would have returned data
//! return 0, as those kernels do.
//!
//! - `a_false_eof_under_read_at_still_reads_every_byte`
//! - `a_false_eof_under_read_exact_at_still_reads_every_byte`
//! - `a_false_eof_under_aiofs_read_still_reads_every_byte`
//! - `a_false_eof_under_the_async_read_stream_still_reads_every_byte`
//! - `false_eofs_on_every_fast_read_still_read_every_byte`
//!
//! Each reads a file whose pages are cached (so the fast path serves it) and
//! compares with `std`. The seam is new: this file does not compile on
//! today's main. The seam is process-wide: the tests run one at a time, the
//! last one in a child process of this binary. The notifier comes from
//! `AIOFS_NOTIFIER`.

// The tests run one at a time (`serial`): the seam is process-wide.
#![allow(clippy::await_holding_lock)]

mod support;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use aiofs::File;
use support::{in_child, pattern_bytes, serial};
use tokio::io::AsyncReadExt;

const LEN: usize = 1 << 20;

/// A directory on a disk filesystem (tmpfs refuses `RWF_NOWAIT`): Cargo's
/// target tmpdir.
fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

/// A file of `LEN` pattern bytes, all in the page cache.
fn cached_file(dir: &Path) -> PathBuf {
    cached_file_of(dir, "data", LEN)
}

/// A file of `len` pattern bytes, all in the page cache.
fn cached_file_of(dir: &Path, name: &str, len: usize) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pattern_bytes(0, len)).expect("write");
    assert_eq!(std::fs::read(&path).expect("read").len(), len);
    path
}

/// Smaller than the largest read the fast path takes (128 KiB by default):
/// `aiofs::read` of it tries the page cache first.
const SMALL: usize = 100 * 1024;

/// Checks that the fast path serves this file's reads (else the tests below
/// would not exercise it).
///
/// A few tries: the first ones may use up false 0s another test left unused.
async fn assert_fast_path(file: &File) {
    for _ in 0..8 {
        let before = aiofs::stats().nowait_reads;
        let (res, _) = file.read_at(Vec::with_capacity(4096), 0).await;
        res.expect("read");
        if aiofs::stats().nowait_reads > before {
            return;
        }
    }
    panic!(
        "precondition: a cached read is served by the fast path: {:?}",
        aiofs::stats()
    );
}

/// What `pread` gives for `len` bytes at `pos`.
fn std_pread(path: &Path, pos: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).expect("open");
    let mut buf = vec![0; len];
    let n = f.read_at(&mut buf, pos).expect("pread");
    buf.truncate(n);
    buf
}

#[tokio::test]
async fn a_false_eof_under_read_at_still_reads_every_byte() {
    let _serial = serial();
    let dir = disk_dir();
    let path = cached_file(dir.path());
    let file = File::open(&path).await.expect("open");
    assert_fast_path(&file).await;
    for (pos, len) in [(4096u64, 4096usize), (100_000, 64 << 10), (0, 1)] {
        aiofs::__fake_nowait_eof(1);
        let (res, buf) = file.read_at(Vec::with_capacity(len), pos).await;
        let want = std_pread(&path, pos, len);
        let n = res.expect("read_at");
        assert_eq!(
            n,
            want.len(),
            "read_at({len}, {pos}) after a false 0 from the fast path: {n} bytes, pread gives {}",
            want.len()
        );
        assert!(buf == want, "read_at({len}, {pos}): wrong bytes");
    }
}

#[tokio::test]
async fn a_false_eof_under_read_exact_at_still_reads_every_byte() {
    let _serial = serial();
    let dir = disk_dir();
    let path = cached_file(dir.path());
    let file = File::open(&path).await.expect("open");
    assert_fast_path(&file).await;
    aiofs::__fake_nowait_eof(1);
    let (res, buf) = file
        .read_exact_at(Vec::with_capacity(96 << 10), 12_345)
        .await;
    res.expect("read_exact_at after a false 0 from the fast path");
    assert!(
        buf == std_pread(&path, 12_345, 96 << 10),
        "read_exact_at: wrong bytes"
    );
}

#[tokio::test]
async fn a_false_eof_under_aiofs_read_still_reads_every_byte() {
    let _serial = serial();
    let dir = disk_dir();
    let path = cached_file(dir.path());
    let small = cached_file_of(dir.path(), "small", SMALL);
    let file = File::open(&path).await.expect("open");
    assert_fast_path(&file).await;
    for path in [&small, &path] {
        aiofs::__fake_nowait_eof(1);
        let got = aiofs::read(path).await.expect("aiofs::read");
        let want = std::fs::read(path).expect("std::fs::read");
        assert_eq!(
            got.len(),
            want.len(),
            "aiofs::read of {} bytes after a false 0 from the fast path",
            want.len()
        );
        assert!(got == want, "aiofs::read: wrong bytes");
    }
}

#[tokio::test]
async fn a_false_eof_under_the_async_read_stream_still_reads_every_byte() {
    let _serial = serial();
    let dir = disk_dir();
    let path = cached_file(dir.path());
    let probe = File::open(&path).await.expect("open");
    assert_fast_path(&probe).await;
    for count in [1u64, 2, 3] {
        let mut file = File::open(&path).await.expect("open");
        aiofs::__fake_nowait_eof(count);
        let mut got = Vec::new();
        file.read_to_end(&mut got).await.expect("read_to_end");
        assert_eq!(
            got.len(),
            LEN,
            "read_to_end after {count} false 0s from the fast path"
        );
        assert!(got == pattern_bytes(0, LEN), "read_to_end: wrong bytes");
    }
}

/// Every fast-path read in a row returns a false 0: each read still returns
/// what `std` does.
///
/// In a child process of this binary: the false 0s it asks for are never all
/// used up.
#[test]
fn false_eofs_on_every_fast_read_still_read_every_byte() {
    let _serial = serial();
    if !in_child("false_eofs_on_every_fast_read_still_read_every_byte") {
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(every_fast_read());
}

async fn every_fast_read() {
    let dir = disk_dir();
    let path = cached_file(dir.path());
    let mut file = File::open(&path).await.expect("open");
    assert_fast_path(&file).await;
    aiofs::__fake_nowait_eof(1_000_000);
    for (pos, len) in [(0u64, 4096usize), (LEN as u64 - 10, 4096), (777, 128 << 10)] {
        let (res, buf) = file.read_at(Vec::with_capacity(len), pos).await;
        let want = std_pread(&path, pos, len);
        assert_eq!(res.expect("read_at"), want.len(), "read_at({len}, {pos})");
        assert!(buf == want, "read_at({len}, {pos}): wrong bytes");
    }
    let got = aiofs::read(&path).await.expect("aiofs::read");
    assert!(got == pattern_bytes(0, LEN), "aiofs::read");
    let small = cached_file_of(dir.path(), "small", SMALL);
    let got = aiofs::read(&small).await.expect("aiofs::read");
    assert!(
        got == pattern_bytes(0, SMALL),
        "aiofs::read of a small file"
    );
    let mut got = Vec::new();
    file.read_to_end(&mut got).await.expect("read_to_end");
    assert!(got == pattern_bytes(0, LEN), "read_to_end");
    // At the real end of file, 0 is still 0.
    let (res, _) = file.read_at(Vec::with_capacity(4096), LEN as u64).await;
    assert_eq!(res.expect("read_at at the end"), 0);
}
