//! `O_DIRECT`: round trips with aligned buffers, misaligned requests refused
//! before submission, the descriptor pool for reads, and writes kept in order.
//!
//! The files live under `CARGO_TARGET_TMPDIR`, not `/tmp`, which may be a tmpfs
//! (tmpfs refuses `O_DIRECT` at `open`). If `open` refuses `O_DIRECT` anyway, the
//! test says why and passes without checking anything.
//!
//! Every test holds `serial()`: they assert on process-wide counters
//! (`aiofs::stats()`).

// `serial()` is held across awaits on purpose: it keeps the tests of this binary
// one at a time, and no other task ever takes it.
#![allow(clippy::await_holding_lock)]

mod support;

use std::ffi::CString;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aiofs::buf::{AlignedBuf, IoBuf, IoBufMut};
use aiofs::{Batch, BufResult, File};
use support::{bounded, idle, open_fds_under, pattern, pattern_bytes, serial, settle};
use tempfile::TempDir;

/// Offsets, lengths and buffer addresses that any `O_DIRECT` alignment accepts.
const ALIGN: usize = 4096;

/// A directory that is not a tmpfs, holding `data`: `len` bytes of `pattern`.
fn fixture(len: usize) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, len)).expect("write fixture");
    (dir, path)
}

/// Opens `path` read-write with `O_DIRECT`, or `None` (saying why) if the file
/// system refuses `O_DIRECT`.
async fn open_direct(path: &Path) -> Option<File> {
    let res = aiofs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .await;
    match res {
        Ok(file) => Some(file),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            eprintln!(
                "skipped: the file system of {} refuses O_DIRECT ({e})",
                path.display()
            );
            None
        }
        Err(e) => panic!("open {} with O_DIRECT: {e}", path.display()),
    }
}

/// The file system's `O_DIRECT` alignments of `path` (memory, file offset), from
/// `statx(STATX_DIOALIGN)`, or `None` if it does not say.
fn dio_align(path: &Path) -> Option<(u32, u32)> {
    let cpath = CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: `statx` is plain old data; all-zero bytes are a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `cpath` is a NUL-terminated path and `stx` a writable `statx` that
    // outlive the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            cpath.as_ptr(),
            0,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    (rc == 0 && stx.stx_mask & libc::STATX_DIOALIGN != 0 && stx.stx_dio_offset_align != 0)
        .then_some((stx.stx_dio_mem_align, stx.stx_dio_offset_align))
}

/// An aligned buffer of `len` bytes of `pattern(pos..)`.
fn aligned_pattern(pos: u64, len: usize) -> AlignedBuf {
    let mut buf = AlignedBuf::new(ALIGN, len);
    buf.extend_from_slice(&pattern_bytes(pos, len));
    buf
}

/// An aligned buffer of `len` bytes of `byte`.
fn aligned_fill(byte: u8, len: usize) -> AlignedBuf {
    let mut buf = AlignedBuf::new(ALIGN, len);
    buf.resize(len, byte);
    buf
}

/// A buffer whose start is `shift` bytes past an aligned address: with `shift`
/// 1 its address is odd, misaligned for any `O_DIRECT` alignment.
#[derive(Debug)]
struct Shifted {
    /// `shift + cap` bytes, all initialised.
    inner: AlignedBuf,
    shift: usize,
    cap: usize,
    len: usize,
}

impl Shifted {
    /// `cap` bytes of `byte` (all of them counted as data with `full`).
    fn new(shift: usize, cap: usize, byte: u8, full: bool) -> Shifted {
        let mut inner = AlignedBuf::new(ALIGN, shift + cap);
        inner.resize(shift + cap, byte);
        Shifted {
            inner,
            shift,
            cap,
            len: if full { cap } else { 0 },
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.inner[self.shift..self.shift + self.len]
    }
}

// SAFETY: the pointer is `shift` bytes into `inner`'s allocation, which does not
// move with the value; `cap` bytes from there are inside it (`inner` holds
// `shift + cap` bytes) and all initialised (`resize` in `new`); `len <= cap`.
unsafe impl IoBuf for Shifted {
    fn stable_ptr(&self) -> *const u8 {
        IoBuf::stable_ptr(&self.inner).wrapping_add(self.shift)
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.cap
    }
}

// SAFETY: as for `IoBuf`; the pointer comes from `inner`'s mutable pointer, valid
// for writes of its `shift + cap` bytes.
unsafe impl IoBufMut for Shifted {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        IoBufMut::stable_mut_ptr(&mut self.inner).wrapping_add(self.shift)
    }
    unsafe fn set_init(&mut self, pos: usize) {
        assert!(pos <= self.cap);
        self.len = pos;
    }
}

/// Checks that a request was refused for its alignment: `InvalidInput`, a
/// message about alignment, and nothing submitted since `before`.
fn assert_refused<T: std::fmt::Debug>(res: &std::io::Result<T>, before: u64, what: &str) {
    let err = match res {
        Ok(v) => panic!("{what}: accepted ({v:?}), want InvalidInput"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
    assert!(
        err.to_string().contains("align"),
        "{what}: the message does not say what must be aligned: {err}"
    );
    let now = aiofs::stats();
    assert_eq!(
        now.submitted, before,
        "{what}: refused before submission: {now:?}"
    );
}

#[tokio::test]
async fn round_trip_with_aligned_buffers_via_write_at_and_read_at() {
    bounded(
        "round_trip_with_aligned_buffers_via_write_at_and_read_at",
        60,
        async {
            let _serial = serial();
            let (dir, _) = fixture(0);
            let path = dir.path().join("direct");
            let Some(file) = open_direct(&path).await else {
                return;
            };
            let (res, buf) = file.write_at(aligned_pattern(8192, 65536), 8192).await;
            assert_eq!(res.unwrap(), 65536);
            assert_eq!(buf[..], pattern_bytes(8192, 65536), "the buffer comes back");

            let (res, buf) = file.read_at(AlignedBuf::new(ALIGN, 65536), 8192).await;
            assert_eq!(res.unwrap(), 65536);
            assert!(buf[..] == pattern_bytes(8192, 65536), "bytes read back");

            // Cut short by the end of file (at 73728), then past it.
            let (res, buf) = file.read_at(AlignedBuf::new(ALIGN, 16384), 69632).await;
            assert_eq!(res.unwrap(), 4096);
            assert!(buf[..] == pattern_bytes(69632, 4096));
            let (res, buf) = file.read_at(AlignedBuf::new(ALIGN, 4096), 1 << 20).await;
            assert_eq!(res.unwrap(), 0);
            assert!(buf.is_empty());

            idle().await;
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk.len(), 73728);
            assert!(on_disk[..8192].iter().all(|&b| b == 0), "a hole before");
            assert!(on_disk[8192..] == pattern_bytes(8192, 65536));
        },
    )
    .await;
}

#[tokio::test]
async fn round_trip_with_aligned_buffers_via_writev_at_and_readv_at() {
    bounded(
        "round_trip_with_aligned_buffers_via_writev_at_and_readv_at",
        60,
        async {
            let _serial = serial();
            let (dir, _) = fixture(0);
            let path = dir.path().join("direct");
            let Some(file) = open_direct(&path).await else {
                return;
            };
            let bufs = vec![
                aligned_pattern(4096, 4096),
                aligned_pattern(8192, 3 * 4096),
                aligned_pattern(20480, 8192),
            ];
            let (res, back) = file.writev_at(bufs, 4096).await;
            assert_eq!(res.unwrap(), 24576);
            assert_eq!(back.len(), 3);
            assert!(back[1][..] == pattern_bytes(8192, 3 * 4096));

            let bufs = vec![
                AlignedBuf::new(ALIGN, 8192),
                AlignedBuf::new(ALIGN, 4096),
                AlignedBuf::new(ALIGN, 20480),
                AlignedBuf::new(ALIGN, 4096),
            ];
            let (res, back) = file.readv_at(bufs, 0).await;
            // The file ends at 28672, 16384 bytes into the third segment.
            assert_eq!(res.unwrap(), 8192 + 4096 + 16384);
            let lens: Vec<usize> = back.iter().map(|b| b.len()).collect();
            assert_eq!(lens, [8192, 4096, 16384, 0]);
            assert!(back[0][..4096].iter().all(|&b| b == 0), "the hole");
            assert!(back[0][4096..] == pattern_bytes(4096, 4096));
            assert!(back[1][..] == pattern_bytes(8192, 4096));
            assert!(back[2][..] == pattern_bytes(12288, 16384));
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn round_trip_with_aligned_buffers_via_batch() {
    bounded("round_trip_with_aligned_buffers_via_batch", 60, async {
        let _serial = serial();
        let (dir, _) = fixture(0);
        let (path_a, path_b) = (dir.path().join("a"), dir.path().join("b"));
        let (Some(a), Some(b)) = (open_direct(&path_a).await, open_direct(&path_b).await) else {
            return;
        };
        let mut batch = Batch::new();
        for i in 0..64u64 {
            let file = if i.is_multiple_of(2) { &a } else { &b };
            batch.write_at(file, aligned_pattern(i * 4096, 4096), i * 4096);
        }
        let results = batch.submit().await;
        assert_eq!(results.len(), 64);
        for (i, (res, _)) in results.iter().enumerate() {
            assert_eq!(*res.as_ref().unwrap(), 4096, "write {i}");
        }

        let mut batch = Batch::new();
        for i in 0..64u64 {
            let file = if i.is_multiple_of(2) { &a } else { &b };
            batch.read_at(file, AlignedBuf::new(ALIGN, 4096), i * 4096);
        }
        let results = batch.submit().await;
        for (i, (res, buf)) in results.iter().enumerate() {
            let pos = i as u64 * 4096;
            assert_eq!(*res.as_ref().unwrap(), 4096, "read {i}");
            assert!(buf[..] == pattern_bytes(pos, 4096), "read {i}'s bytes");
        }
        idle().await;
        for (path, parity) in [(&path_a, 0), (&path_b, 1)] {
            let on_disk = std::fs::read(path).unwrap();
            for i in (parity..64).step_by(2) {
                let at = i * 4096;
                assert!(on_disk[at..at + 4096] == pattern_bytes(at as u64, 4096));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn read_exact_at_past_the_end_of_an_o_direct_file_is_unexpected_eof() {
    bounded(
        "read_exact_at_past_the_end_of_an_o_direct_file_is_unexpected_eof",
        60,
        async {
            let _serial = serial();
            // A file whose end is not aligned: O_DIRECT reads stop there.
            let (_dir, path) = fixture(5000);
            let Some(file) = open_direct(&path).await else {
                return;
            };
            let (res, buf) = file.read_at(AlignedBuf::new(ALIGN, 8192), 0).await;
            assert_eq!(res.unwrap(), 5000, "read_at stops at the end of file");
            assert!(buf[..] == pattern_bytes(0, 5000));

            // As `read_exact_at` documents: `UnexpectedEof`, the length is the count.
            let (res, buf) = file.read_exact_at(AlignedBuf::new(ALIGN, 8192), 0).await;
            let err = res.expect_err("the file ends first");
            assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
            assert_eq!(buf.len(), 5000);
            assert!(buf[..] == pattern_bytes(0, 5000));
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn misaligned_read_at_and_write_at_are_refused_before_submission() {
    bounded(
        "misaligned_read_at_and_write_at_are_refused_before_submission",
        60,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(1 << 20);
            let Some(file) = open_direct(&path).await else {
                return;
            };
            let dio = dio_align(&path);
            eprintln!("STATX_DIOALIGN (memory, offset): {dio:?}");
            settle().await;
            let before = aiofs::stats().submitted;

            // The buffer's address.
            let buf = Shifted::new(1, 4096, 0xAB, false);
            let ptr = buf.stable_ptr();
            assert_eq!(ptr as usize % 2, 1, "an odd address");
            let (res, buf) = file.read_at(buf, 0).await;
            assert_refused(&res, before, "read_at into an odd address");
            assert_eq!(buf.stable_ptr(), ptr, "the buffer comes back");
            assert_eq!(buf.len, 0);
            let buf = Shifted::new(1, 4096, 0xAB, true);
            let (res, buf) = file.write_at(buf, 0).await;
            assert_refused(&res, before, "write_at from an odd address");
            assert_eq!(buf.bytes(), [0xAB; 4096], "the buffer comes back");

            // A `Vec`'s address: malloc aligns to 16, less than O_DIRECT wants
            // (unless the device takes any 4-byte-aligned address).
            let mem_align = dio.map_or(ALIGN, |(mem, _)| mem as usize);
            if mem_align > 16 {
                let mut vecs: Vec<Vec<u8>> = Vec::new();
                let vec = loop {
                    let v = vec![0x5A; 4096];
                    if !(v.as_ptr() as usize).is_multiple_of(mem_align) {
                        break v;
                    }
                    assert!(vecs.len() < 100, "no misaligned Vec in 100 allocations");
                    vecs.push(v);
                };
                let ptr = vec.as_ptr();
                let (res, mut vec) = file.write_at(vec, 4096).await;
                assert_refused(&res, before, "write_at from a Vec");
                assert_eq!(vec.as_ptr(), ptr);
                assert_eq!(vec, [0x5A; 4096], "the buffer comes back unchanged");
                vec.clear();
                let (res, vec) = file.read_at(vec, 4096).await;
                assert_refused(&res, before, "read_at into a Vec");
                assert_eq!(vec.as_ptr(), ptr);
                assert!(vec.is_empty());
            } else {
                eprintln!("no Vec case: the device takes {mem_align}-byte-aligned memory");
            }

            // The file offset.
            for pos in [1, 4096 + 1, 4096 + 100] {
                let (res, buf) = file.read_at(AlignedBuf::new(ALIGN, 4096), pos).await;
                assert_refused(&res, before, &format!("read_at at {pos}"));
                assert!(buf.is_empty() && buf.capacity() == 4096);
                let (res, buf) = file.write_at(aligned_fill(1, 4096), pos).await;
                assert_refused(&res, before, &format!("write_at at {pos}"));
                assert_eq!(buf[..], [1; 4096]);
            }

            // The length.
            for len in [1000, 4096 + 1, 1] {
                let (res, buf) = file.read_at(AlignedBuf::new(ALIGN, len), 0).await;
                assert_refused(&res, before, &format!("read_at of {len} bytes"));
                assert!(buf.is_empty() && buf.capacity() == len);
                let mut data = AlignedBuf::new(ALIGN, 8192);
                data.resize(len, 2);
                let (res, buf) = file.write_at(data, 0).await;
                assert_refused(&res, before, &format!("write_at of {len} bytes"));
                assert_eq!(buf[..], vec![2; len]);
            }

            // Nothing reached the file; aligned requests still work.
            assert!(std::fs::read(&path).unwrap() == pattern_bytes(0, 1 << 20));
            let (res, buf) = file.read_at(AlignedBuf::new(ALIGN, 4096), 4096).await;
            assert_eq!(res.unwrap(), 4096);
            assert!(buf[..] == pattern_bytes(4096, 4096));
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn misaligned_readv_at_and_writev_at_are_refused_whole() {
    bounded(
        "misaligned_readv_at_and_writev_at_are_refused_whole",
        60,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(1 << 20);
            let Some(file) = open_direct(&path).await else {
                return;
            };
            settle().await;
            let before = aiofs::stats().submitted;

            // One segment of three has an odd address.
            let bufs = vec![
                Shifted::new(0, 4096, 0, false),
                Shifted::new(1, 4096, 0, false),
                Shifted::new(0, 4096, 0, false),
            ];
            let ptrs: Vec<*const u8> = bufs.iter().map(IoBuf::stable_ptr).collect();
            let (res, back) = file.readv_at(bufs, 0).await;
            assert_refused(&res, before, "readv_at with an odd segment");
            let back_ptrs: Vec<*const u8> = back.iter().map(IoBuf::stable_ptr).collect();
            assert_eq!(back_ptrs, ptrs, "every segment comes back, in order");
            assert!(back.iter().all(|b| b.len == 0));

            let bufs = vec![
                Shifted::new(0, 4096, 3, true),
                Shifted::new(0, 4096, 4, true),
                Shifted::new(1, 4096, 5, true),
            ];
            let (res, back) = file.writev_at(bufs, 0).await;
            assert_refused(&res, before, "writev_at with an odd segment");
            assert_eq!(back.len(), 3);
            for (k, b) in back.iter().enumerate() {
                assert_eq!(b.bytes(), [3 + k as u8; 4096], "segment {k} unchanged");
            }

            // A segment of 1000 bytes: its length, and the next one's file offset.
            let bufs = vec![
                AlignedBuf::new(ALIGN, 4096),
                AlignedBuf::new(ALIGN, 1000),
                AlignedBuf::new(ALIGN, 4096),
            ];
            let (res, back) = file.readv_at(bufs, 0).await;
            assert_refused(&res, before, "readv_at with a 1000-byte segment");
            let caps: Vec<usize> = back.iter().map(AlignedBuf::capacity).collect();
            assert_eq!(caps, [4096, 1000, 4096]);
            let bufs = vec![aligned_fill(6, 4096), aligned_fill(7, 1000)];
            let (res, back) = file.writev_at(bufs, 0).await;
            assert_refused(&res, before, "writev_at with a 1000-byte segment");
            assert_eq!(back[1][..], [7; 1000]);

            // Aligned segments at a misaligned position.
            let bufs = vec![AlignedBuf::new(ALIGN, 4096), AlignedBuf::new(ALIGN, 4096)];
            let (res, _) = file.readv_at(bufs, 1).await;
            assert_refused(&res, before, "readv_at at 1");
            let bufs = vec![aligned_fill(8, 4096), aligned_fill(9, 4096)];
            let (res, _) = file.writev_at(bufs, 1).await;
            assert_refused(&res, before, "writev_at at 1");

            assert!(std::fs::read(&path).unwrap() == pattern_bytes(0, 1 << 20));
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn misaligned_batch_entries_are_refused_alone() {
    bounded("misaligned_batch_entries_are_refused_alone", 60, async {
        let _serial = serial();
        let (_dir, path) = fixture(1 << 20);
        let Some(file) = open_direct(&path).await else {
            return;
        };
        settle().await;
        let before = aiofs::stats().submitted;

        // (shift, capacity, position, bad)
        let reads = [
            (0, 4096, 0, false),
            (1, 4096, 4096, true),
            (0, 4096, 8192, false),
            (0, 4096, 12288 + 1, true),
            (0, 1000, 16384, true),
            (0, 8192, 20480, false),
        ];
        let mut batch = Batch::new();
        for &(shift, cap, pos, _) in &reads {
            batch.read_at(&file, Shifted::new(shift, cap, 0, false), pos);
        }
        let results = batch.submit().await;
        let good = reads.iter().filter(|r| !r.3).count() as u64;
        let now = aiofs::stats().submitted;
        assert_eq!(
            now - before,
            good,
            "only the aligned entries were submitted"
        );
        for (i, ((res, buf), &(shift, cap, pos, bad))) in results.iter().zip(&reads).enumerate() {
            let what = format!("read {i} (shift {shift}, {cap} bytes at {pos})");
            assert_eq!(buf.shift, shift, "{what}: its own buffer comes back");
            if bad {
                assert_refused(res, now, &what);
                assert_eq!(buf.len, 0, "{what}");
            } else {
                assert_eq!(*res.as_ref().unwrap(), cap, "{what}");
                assert!(buf.bytes() == pattern_bytes(pos, cap), "{what}: bytes");
            }
        }

        let before = aiofs::stats().submitted;
        let writes = [
            (0, 4096, 0, false),
            (0, 4096, 4096 + 512 + 1, true),
            (1, 4096, 8192, true),
            (0, 4096, 12288, false),
        ];
        let mut batch = Batch::new();
        for (i, &(shift, cap, pos, _)) in writes.iter().enumerate() {
            batch.write_at(&file, Shifted::new(shift, cap, 0xF0 + i as u8, true), pos);
        }
        let mut data = AlignedBuf::new(ALIGN, 8192);
        data.resize(1000, 0xEE);
        let results: Vec<BufResult<usize, Shifted>> = batch.submit().await;
        let now = aiofs::stats().submitted;
        assert_eq!(now - before, 2, "only the aligned entries were submitted");
        for (i, ((res, buf), &(_, cap, pos, bad))) in results.iter().zip(&writes).enumerate() {
            let what = format!("write {i} at {pos}");
            assert_eq!(
                buf.bytes(),
                vec![0xF0 + i as u8; cap],
                "{what}: buffer back"
            );
            if bad {
                assert_refused(res, now, &what);
            } else {
                assert_eq!(*res.as_ref().unwrap(), cap, "{what}");
            }
        }
        // A misaligned length in a batch of AlignedBuf.
        let mut batch = Batch::new();
        batch.write_at(&file, data, 16384);
        let (res, buf) = batch.submit().await.pop().unwrap();
        assert_refused(&res, now, "a 1000-byte write in a batch");
        assert_eq!(buf[..], [0xEE; 1000]);

        idle().await;
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk[..4096], [0xF0; 4096]);
        assert!(
            on_disk[4096..12288] == pattern_bytes(4096, 8192),
            "refused writes"
        );
        assert_eq!(on_disk[12288..16384], [0xF3; 4096]);
        assert!(on_disk[16384..] == pattern_bytes(16384, (1 << 20) - 16384));
    })
    .await;
}

/// 256 concurrent 4 KiB reads of `file` (1 MiB of `pattern`), each checked.
async fn read_256(file: &Arc<File>) {
    let reads = (0..256u64).map(|i| {
        let file = Arc::clone(file);
        async move {
            // Spread over the file, in an order that is not sequential.
            let pos = (i * 97 % 256) * 4096;
            let (res, buf) = file.read_at(AlignedBuf::new(ALIGN, 4096), pos).await;
            assert_eq!(res.unwrap(), 4096, "read at {pos}");
            if let Some(k) = (0..4096).find(|&k| buf[k] != pattern(pos + k as u64)) {
                panic!("read at {pos}: byte {k} is wrong");
            }
        }
    });
    futures::future::join_all(reads).await;
}

#[tokio::test]
async fn fd_pool_defaults_to_8_for_o_direct_and_1_otherwise() {
    bounded(
        "fd_pool_defaults_to_8_for_o_direct_and_1_otherwise",
        60,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(1 << 20);
            let Some(direct) = open_direct(&path).await else {
                return;
            };
            assert_eq!(direct.fd_pool(), 8);
            let buffered = File::open(&path).await.unwrap();
            assert_eq!(buffered.fd_pool(), 1);
            direct.set_fd_pool(1);
            assert_eq!(direct.fd_pool(), 1);
            buffered.set_fd_pool(4);
            assert_eq!(buffered.fd_pool(), 4);
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn concurrent_reads_on_an_o_direct_file_spread_over_its_fd_pool() {
    bounded(
        "concurrent_reads_on_an_o_direct_file_spread_over_its_fd_pool",
        60,
        async {
            let _serial = serial();
            let (dir, path) = fixture(1 << 20);
            let Some(file) = open_direct(&path).await else {
                return;
            };
            let file = Arc::new(file);
            assert_eq!(file.fd_pool(), 8);
            settle().await;
            let before = aiofs::stats();
            read_256(&file).await;
            let after = aiofs::stats();
            assert!(
                after.pool_requests > before.pool_requests,
                "no read went to a pool descriptor: {before:?} -> {after:?}"
            );
            assert!(
                after.pool_fds >= 2 && after.pool_fds > before.pool_fds,
                "descriptors dup'ed for the pool: {before:?} -> {after:?}"
            );
            assert!(
                open_fds_under(dir.path()) >= 2,
                "the pool's descriptors are open"
            );

            // Dropping the file closes every descriptor of its pool.
            drop(file);
            idle().await;
            assert_eq!(open_fds_under(dir.path()), 0, "descriptors left open");
        },
    )
    .await;
}

#[tokio::test]
async fn dropping_the_file_with_pool_reads_pending_closes_its_descriptors_after_them() {
    bounded(
        "dropping_the_file_with_pool_reads_pending_closes_its_descriptors_after_them",
        60,
        async {
            let _serial = serial();
            let (dir, path) = fixture(1 << 20);
            let Some(file) = open_direct(&path).await else {
                return;
            };
            settle().await;
            let before = aiofs::stats();
            // Each future holds its descriptor (the file's own or a duplicate).
            let reads: Vec<_> = (0..256u64)
                .map(|i| {
                    let pos = i * 4096;
                    let read = file.read_at(AlignedBuf::new(ALIGN, 4096), pos);
                    async move { (pos, read.await) }
                })
                .collect();
            drop(file);
            // Nothing is submitted yet: the futures hold the file's own
            // descriptor; duplicates are made when they are submitted.
            assert!(
                open_fds_under(dir.path()) >= 1,
                "the pending reads hold the file's descriptor"
            );
            for (pos, (res, buf)) in futures::future::join_all(reads).await {
                assert_eq!(res.unwrap(), 4096, "read at {pos}");
                assert!(buf[..] == pattern_bytes(pos, 4096), "read at {pos}");
            }
            let after = aiofs::stats();
            assert!(after.pool_requests > before.pool_requests, "{after:?}");
            idle().await;
            assert_eq!(open_fds_under(dir.path()), 0, "descriptors left open");
        },
    )
    .await;
}

#[tokio::test]
async fn fd_pool_of_1_keeps_every_read_on_the_files_own_descriptor() {
    bounded(
        "fd_pool_of_1_keeps_every_read_on_the_files_own_descriptor",
        60,
        async {
            let _serial = serial();
            let (dir, path) = fixture(1 << 20);
            let Some(file) = open_direct(&path).await else {
                return;
            };
            file.set_fd_pool(1);
            assert_eq!(file.fd_pool(), 1);
            let file = Arc::new(file);
            settle().await;
            let before = aiofs::stats();
            read_256(&file).await;
            let after = aiofs::stats();
            assert!(after.submitted - before.submitted >= 256);
            assert_eq!(
                after.pool_requests, before.pool_requests,
                "a read went to a pool descriptor: {after:?}"
            );
            drop(file);
            idle().await;
            assert_eq!(open_fds_under(dir.path()), 0, "descriptors left open");
        },
    )
    .await;
}

#[tokio::test]
async fn buffered_file_with_a_pool_spreads_its_reads_too() {
    bounded(
        "buffered_file_with_a_pool_spreads_its_reads_too",
        60,
        async {
            let _serial = serial();
            let (dir, path) = fixture(1 << 20);
            let file = File::open(&path).await.unwrap();
            file.set_fd_pool(4);
            settle().await;
            let before = aiofs::stats();
            // A batch's reads go to AIO (a cached `read_at` is served from the
            // page cache on the polling thread, without any descriptor pool).
            let mut batch = aiofs::Batch::new();
            for i in 0..256u64 {
                batch.read_at(&file, vec![0u8; 4096], (i * 97 % 256) * 4096);
            }
            for (i, (res, buf)) in batch.submit().await.into_iter().enumerate() {
                let pos = (i as u64 * 97 % 256) * 4096;
                assert_eq!(res.unwrap(), 4096, "read at {pos}");
                assert!(buf == pattern_bytes(pos, 4096), "read at {pos}");
            }
            let after = aiofs::stats();
            assert!(
                after.pool_requests > before.pool_requests,
                "no read went to a pool descriptor: {before:?} -> {after:?}"
            );
            drop(file);
            idle().await;
            assert_eq!(open_fds_under(dir.path()), 0, "descriptors left open");
        },
    )
    .await;
}

#[tokio::test]
async fn overlapping_writes_on_an_o_direct_file_land_in_order() {
    bounded(
        "overlapping_writes_on_an_o_direct_file_land_in_order",
        60,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(8192);
            let Some(file) = open_direct(&path).await else {
                return;
            };
            assert_eq!(file.fd_pool(), 8);
            settle().await;
            let before = aiofs::stats();
            // Submitted in this order: `join_all` polls them first to last.
            let writes = (0..100u8).map(|i| file.write_at(aligned_fill(i, 4096), 0));
            let results = futures::future::join_all(writes).await;
            for (i, (res, buf)) in results.iter().enumerate() {
                assert_eq!(*res.as_ref().unwrap(), 4096, "write {i}");
                assert_eq!(buf[..], [i as u8; 4096], "write {i}'s buffer");
            }
            let after = aiofs::stats();
            assert_eq!(
                after.pool_requests, before.pool_requests,
                "writes never use the pool: {after:?}"
            );
            idle().await;
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk[..4096], [99; 4096], "the last write wins");
            assert!(on_disk[4096..] == pattern_bytes(4096, 4096));

            // And read back through the pool.
            let (res, buf) = file.read_at(AlignedBuf::new(ALIGN, 8192), 0).await;
            assert_eq!(res.unwrap(), 8192);
            assert_eq!(buf[..4096], [99; 4096]);
            idle().await;
        },
    )
    .await;
}
