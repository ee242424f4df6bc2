//! Clones share one stream state (issue 11, items 1 and 2), as `dup`'ed
//! descriptors share one open file description.
//!
//! - `a_clones_write_just_ahead_of_the_reader_is_seen_by_the_original`: the
//!   original reads sequentially (read-ahead in flight), a clone writes
//!   `BBBB` with `write_all_at` just ahead of it, the original reads on: it
//!   must read `BBBB` (it used to read the old bytes: the write epoch lived on
//!   each descriptor object, and a clone has its own).
//! - `a_clones_set_len_is_seen_by_the_original_reader`: the same with the
//!   clone shrinking the file: the original must reach the end of file there.
//! - `two_clones_writing_records_at_once_never_overwrite_each_other`: two
//!   threads (each with a current-thread runtime, so that they truly run at
//!   once) write 20,000 records each through two clones (`AsyncWrite`), then
//!   flush: the file holds every record exactly once (the position used to be
//!   read and stored back without an atomic read-modify-write).
//! - `two_clones_reading_at_once_never_read_the_same_bytes_twice`: two threads
//!   read one file through two clones, 4 bytes at a time: together they read
//!   every byte once.
//!
//! Each runs the same scenario on `std::fs::File::try_clone` first, to show the
//! expectation is `std`'s. The notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use support::{open_rw, pattern_bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// The reads of the sequential reader.
const READ: usize = 64 * KIB;
/// How far the reader gets before the clone acts.
const AHEAD_OF: usize = 8 * READ;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn file_of(dir: &Path, name: &str, len: usize) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pattern_bytes(0, len)).expect("write");
    path
}

/// `len` bytes from `r`, in `READ`-sized reads (fewer at the end of file).
async fn read_n<R: AsyncReadExt + Unpin>(r: &mut R, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut buf = vec![0; READ];
    while out.len() < len {
        let want = (len - out.len()).min(READ);
        let n = r.read(&mut buf[..want]).await.expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn std_read_n(r: &mut std::fs::File, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    r.take(len as u64).read_to_end(&mut out).expect("std read");
    out
}

#[tokio::test]
async fn a_clones_write_just_ahead_of_the_reader_is_seen_by_the_original() {
    let dir = tempfile::tempdir().expect("tempdir");
    let len = 4 * MIB;
    let target = (AHEAD_OF + READ + 100) as u64;
    let rest = target as usize + 4 - AHEAD_OF;

    // std: the clone's write is in the file when the original reads there.
    let path = file_of(dir.path(), "std", len);
    let mut orig = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open");
    let clone = orig.try_clone().expect("try_clone");
    assert_eq!(std_read_n(&mut orig, AHEAD_OF).len(), AHEAD_OF);
    clone.write_all_at(b"BBBB", target).expect("write_all_at");
    let got = std_read_n(&mut orig, rest);
    assert_eq!(&got[got.len() - 4..], b"BBBB", "std");

    // aiofs: the same.
    let path = file_of(dir.path(), "aiofs", len);
    let mut orig = open_rw(&path).await;
    let clone = orig.try_clone().await.expect("try_clone");
    assert_eq!(read_n(&mut orig, AHEAD_OF).await.len(), AHEAD_OF);
    let (res, _) = clone.write_all_at(b"BBBB".to_vec(), target).await;
    res.expect("write_all_at through the clone");
    let got = read_n(&mut orig, rest).await;
    assert_eq!(got.len(), rest);
    assert_eq!(
        &got[got.len() - 4..],
        b"BBBB",
        "the original read old bytes at {target}, where its clone had written BBBB (the file \
         holds {:?})",
        &std::fs::read(&path).expect("read")[target as usize..target as usize + 4]
    );
    // And the bytes around it are the file's.
    let mut want = pattern_bytes(AHEAD_OF as u64, rest);
    let at = want.len() - 4;
    want[at..].copy_from_slice(b"BBBB");
    assert!(
        got == want,
        "the original read wrong bytes around the clone's write"
    );
}

#[tokio::test]
async fn a_clones_set_len_is_seen_by_the_original_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let len = 4 * MIB;
    let new_len = AHEAD_OF + READ + 100;

    // std: the original reaches the end of file at the new length.
    let path = file_of(dir.path(), "std", len);
    let mut orig = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open");
    let clone = orig.try_clone().expect("try_clone");
    assert_eq!(std_read_n(&mut orig, AHEAD_OF).len(), AHEAD_OF);
    clone.set_len(new_len as u64).expect("set_len");
    let got = std_read_n(&mut orig, len);
    assert_eq!(AHEAD_OF + got.len(), new_len, "std");

    // aiofs: the same.
    let path = file_of(dir.path(), "aiofs", len);
    let mut orig = open_rw(&path).await;
    let clone = orig.try_clone().await.expect("try_clone");
    assert_eq!(read_n(&mut orig, AHEAD_OF).await.len(), AHEAD_OF);
    clone.set_len(new_len as u64).await.expect("set_len");
    let got = read_n(&mut orig, len).await;
    assert_eq!(
        AHEAD_OF + got.len(),
        new_len,
        "after its clone shrank the file to {new_len} bytes, the original read on to {} \
         (old bytes past the end of file)",
        AHEAD_OF + got.len()
    );
    assert!(
        got == pattern_bytes(AHEAD_OF as u64, got.len()),
        "the original read wrong bytes"
    );
}

const RECORDS: usize = 20_000;
/// A record's length: it divides the write-behind chunk, so a whole record
/// always fits in a stream write (no write is split by `write_all`).
const RECORD: usize = 128;

/// Record `i` of writer `w`: its name, then bytes derived from it.
fn record(w: usize, i: usize) -> Vec<u8> {
    let mut r = format!("w{w} {i:08} ").into_bytes();
    r.extend((r.len()..RECORD - 1).map(|j| b'a' + ((w * 7 + i * 13 + j) % 26) as u8));
    r.push(b'\n');
    assert_eq!(r.len(), RECORD);
    r
}

/// The file holds each of the two writers' records exactly once, whole.
fn check_records(path: &Path, what: &str) {
    let content = std::fs::read(path).expect("read");
    assert_eq!(
        content.len(),
        2 * RECORDS * RECORD,
        "{what}: the file holds {} bytes, not the {} written: records overwrote each other",
        content.len(),
        2 * RECORDS * RECORD
    );
    let mut seen = HashSet::new();
    for (k, r) in content.chunks(RECORD).enumerate() {
        let head = std::str::from_utf8(&r[..12]).unwrap_or("");
        let parsed = (|| {
            let w: usize = head.get(1..2)?.parse().ok()?;
            let i: usize = head.get(3..11)?.parse().ok()?;
            (w < 2 && i < RECORDS).then_some((w, i))
        })();
        let Some((w, i)) = parsed else {
            panic!("{what}: record {k} of the file is not one of ours: {r:?}");
        };
        assert!(r == record(w, i), "{what}: record {k} ({w}, {i}) is torn");
        assert!(
            seen.insert((w, i)),
            "{what}: record ({w}, {i}) is in the file twice"
        );
    }
}

#[test]
fn two_clones_writing_records_at_once_never_overwrite_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");

    // std: two threads, two clones.
    let path = dir.path().join("std");
    let a = std::fs::File::create(&path).expect("create");
    let b = a.try_clone().expect("try_clone");
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = [a, b]
        .into_iter()
        .enumerate()
        .map(|(w, mut f)| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..RECORDS {
                    f.write_all(&record(w, i)).expect("std write");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("std writer");
    }
    check_records(&path, "std");

    // aiofs: two threads, each with a runtime of its own, two clones.
    let path = dir.path().join("aiofs");
    let (a, b) = current_thread().block_on(async {
        let a = aiofs::File::create(&path).await.expect("create");
        let b = a.try_clone().await.expect("try_clone");
        (a, b)
    });
    let threads: Vec<_> = [a, b]
        .into_iter()
        .enumerate()
        .map(|(w, mut f)| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                current_thread().block_on(async {
                    barrier.wait();
                    for i in 0..RECORDS {
                        f.write_all(&record(w, i)).await.expect("aiofs write_all");
                    }
                    f.flush().await.expect("flush");
                })
            })
        })
        .collect();
    for t in threads {
        t.join().expect("aiofs writer");
    }
    check_records(&path, "aiofs");
}

const WORDS: u32 = 512 * 1024;

/// A file of `WORDS` 4-byte words, word `k` holding `k`.
fn words_file(path: &Path) {
    let data: Vec<u8> = (0..WORDS).flat_map(u32::to_le_bytes).collect();
    std::fs::write(path, data).expect("write");
}

/// Every word read by the two readers, and the bytes they read in all: each
/// word exactly once.
fn check_words(what: &str, reads: Vec<(Vec<u32>, usize)>) {
    let total: usize = reads.iter().map(|(_, n)| n).sum();
    let mut seen = vec![false; WORDS as usize];
    let mut twice = Vec::new();
    for (words, _) in &reads {
        for &w in words {
            assert!(
                w < WORDS,
                "{what}: read a word that is not in the file: {w:#x}"
            );
            if std::mem::replace(&mut seen[w as usize], true) {
                twice.push(w);
            }
        }
    }
    assert!(
        twice.is_empty(),
        "{what}: {} words were read twice by the two clones, e.g. {:?} (the readers read {} \
         and {} words)",
        twice.len(),
        &twice[..twice.len().min(8)],
        reads[0].0.len(),
        reads[1].0.len()
    );
    assert_eq!(
        total,
        WORDS as usize * 4,
        "{what}: the two clones read {total} bytes of a {}-byte file",
        WORDS * 4
    );
}

#[test]
fn two_clones_reading_at_once_never_read_the_same_bytes_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("words");
    words_file(&path);

    // std: two threads, two clones, 4 bytes a read.
    let a = std::fs::File::open(&path).expect("open");
    let b = a.try_clone().expect("try_clone");
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = [a, b]
        .into_iter()
        .map(|mut f| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let (mut words, mut bytes) = (Vec::new(), 0);
                let mut buf = [0u8; 4];
                loop {
                    let n = f.read(&mut buf).expect("std read");
                    if n == 0 {
                        return (words, bytes);
                    }
                    if n == 4 {
                        words.push(u32::from_le_bytes(buf));
                    }
                    bytes += n;
                }
            })
        })
        .collect();
    let reads = threads
        .into_iter()
        .map(|t| t.join().expect("std reader"))
        .collect();
    check_words("std", reads);

    // aiofs: two threads, each with a runtime of its own, two clones.
    let (a, b) = current_thread().block_on(async {
        let a = aiofs::File::open(&path).await.expect("open");
        let b = a.try_clone().await.expect("try_clone");
        (a, b)
    });
    let threads: Vec<_> = [a, b]
        .into_iter()
        .map(|mut f| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                current_thread().block_on(async {
                    barrier.wait();
                    let (mut words, mut bytes) = (Vec::new(), 0);
                    let mut buf = [0u8; 4];
                    loop {
                        let n = f.read(&mut buf).await.expect("aiofs read");
                        if n == 0 {
                            return (words, bytes);
                        }
                        // A short read (legal) only counts its bytes.
                        if n == 4 {
                            words.push(u32::from_le_bytes(buf));
                        }
                        bytes += n;
                    }
                })
            })
        })
        .collect();
    let reads = threads
        .into_iter()
        .map(|t| t.join().expect("aiofs reader"))
        .collect();
    check_words("aiofs", reads);
}

/// A `File` (and a clone) dropped outside any runtime with buffered data still
/// writes it, under either notifier (under the signal notifier no request can
/// be submitted there: the last handle writes it with `pwrite`, as a dropped
/// `BufWriter` does; a clone dropped first leaves it buffered for the other).
#[test]
fn handles_dropped_outside_a_runtime_keep_their_buffered_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    let (a, b) = current_thread().block_on(async {
        let mut a = aiofs::File::create(&path).await.expect("create");
        let b = a.try_clone().await.expect("try_clone");
        a.write_all(b"buffered by a clone, ").await.expect("write");
        (a, b)
    });
    let mut b = b;
    current_thread().block_on(async {
        b.write_all(b"and by the other").await.expect("write");
    });
    // Outside any runtime.
    drop(a);
    drop(b);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let data = std::fs::read(&path).expect("read");
        if data == b"buffered by a clone, and by the other" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the buffered data did not land: {:?}",
            String::from_utf8_lossy(&data)
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
