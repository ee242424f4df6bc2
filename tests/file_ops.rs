//! Each positioned `File` operation, checked against what `std::fs` does on the
//! same kind of file.
//!
//! Every test holds `serial()`: some assert on process-wide counters
//! (`aiofs::stats()`), which any other test's request would move.

// `serial()` is held across awaits on purpose: it keeps the tests of this binary
// one at a time, and no other task ever takes it.
#![allow(clippy::await_holding_lock)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aiofs::buf::AlignedBuf;
use support::{bounded, idle, in_child, open_fds_under, pattern_bytes, serial, settle};
use tempfile::TempDir;

/// A temporary directory holding `data`, a file of `len` bytes of `pattern`.
fn fixture(len: usize) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, len)).expect("write fixture");
    (dir, path)
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// What `std`'s `pread` gives for `n` bytes at `pos`.
fn std_read(file: &std::fs::File, n: usize, pos: u64) -> Vec<u8> {
    let mut buf = vec![0; n];
    let count = file.read_at(&mut buf, pos).expect("std read_at");
    buf.truncate(count);
    buf
}

#[test]
fn file_is_send_sync_unpin_debug() {
    fn check<T: Send + Sync + Unpin + std::fmt::Debug>() {}
    check::<aiofs::File>();
    check::<aiofs::OpenOptions>();
}

#[tokio::test]
async fn read_at_into_vec_with_capacity_reads_what_std_reads() {
    bounded(
        "read_at_into_vec_with_capacity_reads_what_std_reads",
        60,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(10_000);
            let file = aiofs::File::open(&path).await.unwrap();
            let std_file = std::fs::File::open(&path).unwrap();
            for (pos, n) in [
                (0, 100),
                (1, 1),
                (1234, 4096),
                (0, 10_000),
                (9990, 100),
                (5000, 20_000),
            ] {
                let buf = Vec::with_capacity(n);
                let (ptr, cap) = (buf.as_ptr(), buf.capacity());
                let (res, buf) = file.read_at(buf, pos).await;
                let want = std_read(&std_file, cap, pos);
                assert_eq!(res.unwrap(), want.len(), "count of {n} at {pos}");
                assert_eq!(buf, want, "bytes of {n} at {pos}");
                assert_eq!(buf.as_ptr(), ptr, "the same buffer comes back");
            }
            idle().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_at_into_initialised_vec_sets_len_to_count() {
    bounded(
        "read_at_into_initialised_vec_sets_len_to_count",
        60,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(10_000);
            let file = aiofs::File::open(&path).await.unwrap();
            let std_file = std::fs::File::open(&path).unwrap();
            for (pos, n) in [(0, 100), (777, 8192), (9000, 4096), (10_000, 16)] {
                let (res, buf) = file.read_at(vec![0xEE; n], pos).await;
                let want = std_read(&std_file, n, pos);
                assert_eq!(res.unwrap(), want.len(), "count of {n} at {pos}");
                assert_eq!(buf, want, "bytes of {n} at {pos}");
                assert!(buf.capacity() >= n);
            }

            // The read starts at the buffer's start, whatever its length, and fills up
            // to its capacity.
            let mut buf = Vec::with_capacity(64);
            buf.extend_from_slice(b"old");
            let cap = buf.capacity();
            let (res, buf) = file.read_at(buf, 100).await;
            assert_eq!(res.unwrap(), cap);
            assert_eq!(buf, pattern_bytes(100, cap));
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn read_at_on_a_short_file_returns_what_is_there() {
    bounded("read_at_on_a_short_file_returns_what_is_there", 60, async {
        let _serial = serial();
        let (_dir, path) = fixture(10);
        let file = aiofs::File::open(&path).await.unwrap();
        let std_file = std::fs::File::open(&path).unwrap();
        for pos in [0, 3, 9] {
            let (res, buf) = file.read_at(Vec::with_capacity(4096), pos).await;
            let want = std_read(&std_file, 4096, pos);
            assert_eq!(want.len(), 10 - pos as usize);
            assert_eq!(res.unwrap(), want.len());
            assert_eq!(buf, want);
        }
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn read_at_at_or_past_end_of_file_is_ok_zero() {
    bounded("read_at_at_or_past_end_of_file_is_ok_zero", 60, async {
        let _serial = serial();
        let (dir, path) = fixture(1000);
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let file = aiofs::File::open(&path).await.unwrap();
        let std_file = std::fs::File::open(&path).unwrap();
        for pos in [1000, 1001, 4096, 1 << 40] {
            let (res, buf) = file.read_at(vec![1; 64], pos).await;
            assert_eq!(std_read(&std_file, 64, pos).len(), 0);
            assert_eq!(res.unwrap(), 0, "at {pos}");
            assert!(buf.is_empty(), "length set to 0 at {pos}");
        }
        let file = aiofs::File::open(&empty).await.unwrap();
        let (res, buf) = file.read_at(Vec::with_capacity(64), 0).await;
        assert_eq!(res.unwrap(), 0);
        assert!(buf.is_empty());
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn zero_length_reads_and_writes_do_what_std_does() {
    bounded("zero_length_reads_and_writes_do_what_std_does", 60, async {
        let _serial = serial();
        let (_dir, path) = fixture(100);
        let file = aiofs::File::options()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .unwrap();
        let std_file = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        for pos in [0, 50, 100, 1000] {
            let std_read = std_file.read_at(&mut [], pos).unwrap();
            let (res, buf) = file.read_at(Vec::new(), pos).await;
            assert_eq!(res.unwrap(), std_read, "read at {pos}");
            assert!(buf.is_empty());

            let std_exact = std_file.read_exact_at(&mut [], pos).is_ok();
            let (res, _) = file.read_exact_at(Vec::new(), pos).await;
            assert_eq!(res.is_ok(), std_exact, "read_exact at {pos}");

            let std_written = std_file.write_at(&[], pos).unwrap();
            let (res, _) = file.write_at(Vec::new(), pos).await;
            assert_eq!(res.unwrap(), std_written, "write at {pos}");
            let (res, _) = file.write_at(&b""[..], pos).await;
            assert_eq!(res.unwrap(), std_written, "write of &[u8] at {pos}");
            let (res, _) = file.write_all_at(String::new(), pos).await;
            res.unwrap();
        }
        // Nothing grew or changed.
        assert_eq!(std::fs::read(&path).unwrap(), pattern_bytes(0, 100));
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn position_past_i64_max_is_invalid_input_and_not_submitted() {
    bounded(
        "position_past_i64_max_is_invalid_input_and_not_submitted",
        60,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(100);
            let file = aiofs::File::options()
                .read(true)
                .write(true)
                .open(&path)
                .await
                .unwrap();
            settle().await;
            let before = requests();
            let max = i64::MAX as u64;
            for pos in [max - 9, max, max + 1, u64::MAX - 5, u64::MAX] {
                let buf = Vec::with_capacity(10);
                let ptr = buf.as_ptr();
                let (res, buf) = file.read_at(buf, pos).await;
                assert_eq!(
                    res.unwrap_err().kind(),
                    ErrorKind::InvalidInput,
                    "read at {pos}"
                );
                assert_eq!((buf.as_ptr(), buf.len(), buf.capacity()), (ptr, 0, 10));

                let (res, buf) = file.read_exact_at(buf, pos).await;
                assert_eq!(
                    res.unwrap_err().kind(),
                    ErrorKind::InvalidInput,
                    "exact at {pos}"
                );
                assert_eq!((buf.as_ptr(), buf.len(), buf.capacity()), (ptr, 0, 10));

                let (res, buf) = file.write_at(vec![7u8; 10], pos).await;
                assert_eq!(
                    res.unwrap_err().kind(),
                    ErrorKind::InvalidInput,
                    "write at {pos}"
                );
                assert_eq!(buf, [7u8; 10]);

                let (res, buf) = file.write_all_at(&b"0123456789"[..], pos).await;
                assert_eq!(
                    res.unwrap_err().kind(),
                    ErrorKind::InvalidInput,
                    "write_all at {pos}"
                );
                assert_eq!(buf, b"0123456789");
            }
            assert_eq!(requests(), before, "nothing was submitted");

            // The last valid range ends exactly at i64::MAX: submitted, and past the end
            // of file like std's.
            let std_file = std::fs::File::open(&path).unwrap();
            let mut want = [0u8; 10];
            let std_count = std_file.read_at(&mut want, max - 10).unwrap();
            let (res, buf) = file.read_at(Vec::with_capacity(10), max - 10).await;
            assert_eq!(res.unwrap(), std_count);
            assert_eq!(buf.len(), std_count);
            assert_eq!(requests(), before + 1);

            assert_eq!(std::fs::read(&path).unwrap(), pattern_bytes(0, 100));
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn read_exact_at_fills_the_buffer_or_reports_unexpected_eof() {
    bounded(
        "read_exact_at_fills_the_buffer_or_reports_unexpected_eof",
        60,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(10_000);
            let file = aiofs::File::open(&path).await.unwrap();
            for (pos, n) in [(0, 10_000), (1, 4096), (9000, 1000), (9999, 1)] {
                let (res, buf) = file.read_exact_at(Vec::with_capacity(n), pos).await;
                res.unwrap();
                assert_eq!(buf, pattern_bytes(pos, n));
                let (res, buf) = file.read_exact_at(vec![0; n], pos).await;
                res.unwrap();
                assert_eq!(buf, pattern_bytes(pos, n));
            }
            let std_file = std::fs::File::open(&path).unwrap();
            for (pos, n) in [(9000, 1001), (9999, 2), (10_000, 1), (20_000, 100)] {
                let std_err = std_file.read_exact_at(&mut vec![0; n], pos).unwrap_err();
                let (res, buf) = file.read_exact_at(Vec::with_capacity(n), pos).await;
                let err = res.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{n} at {pos}");
                assert_eq!(err.kind(), std_err.kind());
                // The buffer holds what was read before the end.
                let available = 10_000u64.saturating_sub(pos) as usize;
                assert_eq!(buf, pattern_bytes(pos, available), "{n} at {pos}");
            }
            idle().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_land_where_std_puts_them() {
    bounded("writes_land_where_std_puts_them", 60, async {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("aiofs");
        let theirs = dir.path().join("std");
        let file = aiofs::File::create_new(&ours).await.unwrap();
        let twin = std::fs::File::create_new(&theirs).unwrap();
        // In order: a start, a hole, an overlap, a single byte, a large tail.
        let writes = [
            (0u64, 5000usize),
            (10_000, 300),
            (4000, 2000),
            (1, 1),
            (20_000, 3 << 16),
        ];
        for (i, &(pos, len)) in writes.iter().enumerate() {
            let data = pattern_bytes(pos + 7 * i as u64 + 1, len);
            if i % 2 == 0 {
                let (res, buf) = file.write_at(data.clone(), pos).await;
                let n = res.unwrap();
                assert!(n > 0 && n <= len, "wrote {n} of {len}");
                assert_eq!(buf, data, "the buffer comes back");
                if n < len {
                    let (res, _) = file.write_all_at(data[n..].to_vec(), pos + n as u64).await;
                    res.unwrap();
                }
            } else {
                let (res, buf) = file.write_all_at(data.clone(), pos).await;
                res.unwrap();
                assert_eq!(buf, data);
            }
            twin.write_all_at(&data, pos).unwrap();
        }
        let want = std::fs::read(&theirs).unwrap();
        assert_eq!(std::fs::read(&ours).unwrap(), want);
        // And read back through aiofs itself.
        let (res, buf) = file.read_exact_at(Vec::with_capacity(want.len()), 0).await;
        res.unwrap();
        assert_eq!(buf, want);
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn write_all_at_takes_every_owned_buffer_type() {
    bounded("write_all_at_takes_every_owned_buffer_type", 60, async {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = aiofs::File::create_new(&path).await.unwrap();
        let mut want = Vec::new();

        let (res, back) = file.write_all_at("a &'static str;", 0).await;
        res.unwrap();
        assert_eq!(back, "a &'static str;");
        want.extend_from_slice(back.as_bytes());

        // Only the initialised bytes of a String are written, not its capacity.
        let mut string = String::with_capacity(256);
        string.push_str("a String;");
        let (res, back) = file.write_all_at(string, want.len() as u64).await;
        res.unwrap();
        assert_eq!(back, "a String;");
        want.extend_from_slice(back.as_bytes());

        let boxed: Box<[u8]> = b"a Box<[u8]>;".to_vec().into_boxed_slice();
        let (res, back) = file.write_all_at(boxed, want.len() as u64).await;
        res.unwrap();
        assert_eq!(&*back, b"a Box<[u8]>;");
        want.extend_from_slice(&back);

        let slice: &'static [u8] = b"a &'static [u8];";
        let (res, back) = file.write_all_at(slice, want.len() as u64).await;
        res.unwrap();
        assert_eq!(back, slice);
        want.extend_from_slice(back);

        let mut vec = Vec::with_capacity(100);
        vec.extend_from_slice(b"a Vec<u8>;");
        let (res, back) = file.write_all_at(vec, want.len() as u64).await;
        res.unwrap();
        want.extend_from_slice(&back);

        let mut aligned = AlignedBuf::new(4096, 4096);
        aligned.extend_from_slice(b"an AlignedBuf.");
        let (res, back) = file.write_all_at(aligned, want.len() as u64).await;
        res.unwrap();
        assert_eq!(&back[..], b"an AlignedBuf.");
        want.extend_from_slice(&back);

        assert_eq!(std::fs::read(&path).unwrap(), want);
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn aligned_buf_read_sets_len_and_keeps_alignment() {
    bounded("aligned_buf_read_sets_len_and_keeps_alignment", 60, async {
        let _serial = serial();
        let (_dir, path) = fixture(10_000);
        let file = aiofs::File::open(&path).await.unwrap();
        let std_file = std::fs::File::open(&path).unwrap();
        let mut buf = AlignedBuf::new(4096, 8192);
        for pos in [0, 4096, 9000, 10_000] {
            buf.extend_from_slice(b"stale");
            let (res, back) = file.read_at(buf, pos).await;
            buf = back;
            let want = std_read(&std_file, 8192, pos);
            assert_eq!(res.unwrap(), want.len(), "at {pos}");
            assert_eq!(&buf[..], &want[..], "at {pos}");
            assert_eq!(buf.as_ptr() as usize % 4096, 0);
            assert_eq!(buf.capacity(), 8192);
            buf.clear();
        }
        let (res, buf) = file.read_exact_at(AlignedBuf::new(512, 1024), 512).await;
        res.unwrap();
        assert_eq!(&buf[..], &pattern_bytes(512, 1024)[..]);
        let (res, buf) = file.read_at(AlignedBuf::new(512, 0), 0).await;
        assert_eq!(res.unwrap(), 0);
        assert!(buf.is_empty());
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn read_from_a_write_only_file_fails_like_std() {
    bounded("read_from_a_write_only_file_fails_like_std", 60, async {
        let _serial = serial();
        let (_dir, path) = fixture(100);
        let file = aiofs::File::options()
            .write(true)
            .open(&path)
            .await
            .unwrap();
        let std_file = std::fs::File::options().write(true).open(&path).unwrap();
        let std_err = std_file.read_at(&mut [0; 10], 0).unwrap_err();
        assert_eq!(std_err.raw_os_error(), Some(libc::EBADF));

        let (res, buf) = file.read_at(Vec::with_capacity(10), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), std_err.raw_os_error());
        assert!(buf.is_empty() && buf.capacity() == 10);
        let (res, buf) = file.read_exact_at(vec![1; 10], 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), std_err.raw_os_error());
        assert_eq!(buf.capacity(), 10);

        // The driver keeps working for everyone else.
        let reader = aiofs::File::open(&path).await.unwrap();
        let (res, buf) = reader.read_at(Vec::with_capacity(10), 0).await;
        assert_eq!(res.unwrap(), 10);
        assert_eq!(buf, pattern_bytes(0, 10));
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn write_to_a_read_only_file_fails_like_std() {
    bounded("write_to_a_read_only_file_fails_like_std", 60, async {
        let _serial = serial();
        let (_dir, path) = fixture(100);
        let file = aiofs::File::open(&path).await.unwrap();
        let std_file = std::fs::File::open(&path).unwrap();
        let std_err = std_file.write_at(b"x", 0).unwrap_err();
        assert_eq!(std_err.raw_os_error(), Some(libc::EBADF));

        let (res, buf) = file.write_at(b"xyz".to_vec(), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), std_err.raw_os_error());
        assert_eq!(buf, b"xyz");
        let (res, _) = file.write_all_at("xyz", 50).await;
        assert_eq!(res.unwrap_err().raw_os_error(), std_err.raw_os_error());
        assert_eq!(std::fs::read(&path).unwrap(), pattern_bytes(0, 100));

        let writer = aiofs::File::options()
            .write(true)
            .open(&path)
            .await
            .unwrap();
        let (res, _) = writer.write_at(b"xyz".to_vec(), 0).await;
        assert_eq!(res.unwrap(), 3);
        assert_eq!(&std::fs::read(&path).unwrap()[..3], b"xyz");
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn pipe_is_refused_with_espipe_and_its_data_is_not_consumed() {
    bounded(
        "pipe_is_refused_with_espipe_and_its_data_is_not_consumed",
        60,
        async {
            let _serial = serial();
            settle().await;
            let before = aiofs::stats().submitted;

            let (reader, mut writer) = std::io::pipe().unwrap();
            let data = b"bytes that must stay in the pipe";
            writer.write_all(data).unwrap();
            let mut drain = reader.try_clone().unwrap();
            let std_err = std::fs::File::from(OwnedFd::from(reader.try_clone().unwrap()))
                .read_at(&mut [0; 64], 0)
                .unwrap_err();
            assert_eq!(std_err.raw_os_error(), Some(libc::ESPIPE));

            let file = aiofs::File::from(OwnedFd::from(reader));
            // The first request finds out; the next ones are refused the same way.
            for _ in 0..2 {
                let (res, buf) = file.read_at(Vec::with_capacity(64), 0).await;
                let err = res.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::NotSeekable);
                assert_eq!(err.raw_os_error(), std_err.raw_os_error());
                assert!(buf.is_empty() && buf.capacity() == 64);
                let (res, _) = file.read_exact_at(vec![0; 8], 5).await;
                assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ESPIPE));
            }

            let (mut other_reader, other_writer) = std::io::pipe().unwrap();
            let wfile = aiofs::File::from(OwnedFd::from(other_writer));
            let (res, buf) = wfile.write_at(b"nope".to_vec(), 0).await;
            let err = res.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotSeekable);
            assert_eq!(err.raw_os_error(), Some(libc::ESPIPE));
            assert_eq!(buf, b"nope");
            let (res, _) = wfile.write_all_at("nope", 0).await;
            assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ESPIPE));

            assert_eq!(aiofs::stats().submitted, before, "nothing was submitted");

            // Every byte is still in the first pipe, and nothing reached the second.
            drop(writer);
            let mut got = Vec::new();
            drain.read_to_end(&mut got).unwrap();
            assert_eq!(got, data);
            drop(wfile);
            let mut got = Vec::new();
            other_reader.read_to_end(&mut got).unwrap();
            assert!(got.is_empty(), "{got:?} was written into the pipe");
            idle().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_all_and_sync_data_after_writes() {
    bounded("sync_all_and_sync_data_after_writes", 60, async {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = aiofs::File::create_new(&path).await.unwrap();
        let (res, _) = file.write_all_at(pattern_bytes(0, 100_000), 0).await;
        res.unwrap();
        file.sync_data().await.unwrap();
        let (res, _) = file
            .write_all_at(pattern_bytes(100_000, 1000), 100_000)
            .await;
        res.unwrap();
        file.sync_all().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), pattern_bytes(0, 101_000));

        // On a read-only descriptor, as std: fsync works.
        let std_ok = std::fs::File::open(&path).unwrap().sync_all().is_ok();
        let reader = aiofs::File::open(&path).await.unwrap();
        assert_eq!(reader.sync_all().await.is_ok(), std_ok);
        assert_eq!(reader.sync_data().await.is_ok(), std_ok);
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn metadata_matches_std_after_writes() {
    bounded("metadata_matches_std_after_writes", 60, async {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = aiofs::File::create_new(&path).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 0);
        let (res, _) = file.write_all_at(pattern_bytes(0, 5000), 100).await;
        res.unwrap();
        let ours = file.metadata().await.unwrap();
        let theirs = std::fs::metadata(&path).unwrap();
        assert_eq!(ours.len(), 5100);
        assert_eq!(ours.len(), theirs.len());
        assert_eq!(ours.ino(), theirs.ino());
        assert_eq!(ours.dev(), theirs.dev());
        assert_eq!(ours.mode(), theirs.mode());
        assert!(ours.is_file());
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn set_len_extends_and_truncates_like_std() {
    bounded("set_len_extends_and_truncates_like_std", 60, async {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("aiofs");
        let theirs = dir.path().join("std");
        let file = aiofs::File::create_new(&ours).await.unwrap();
        let twin = std::fs::File::create_new(&theirs).unwrap();
        let (res, _) = file.write_all_at(pattern_bytes(0, 3000), 0).await;
        res.unwrap();
        twin.write_all_at(&pattern_bytes(0, 3000), 0).unwrap();
        for len in [10_000, 10, 0, 4097] {
            file.set_len(len).await.unwrap();
            twin.set_len(len).unwrap();
            assert_eq!(file.metadata().await.unwrap().len(), len);
            assert_eq!(
                std::fs::read(&ours).unwrap(),
                std::fs::read(&theirs).unwrap()
            );
            let (res, buf) = file.read_at(Vec::with_capacity(100), len).await;
            assert_eq!(res.unwrap(), 0, "end of file at {len}");
            assert!(buf.is_empty());
        }

        let reader = aiofs::File::open(&ours).await.unwrap();
        let std_err = std::fs::File::open(&ours).unwrap().set_len(1).unwrap_err();
        let err = reader.set_len(1).await.unwrap_err();
        assert_eq!(err.raw_os_error(), std_err.raw_os_error());
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn set_permissions_changes_the_mode() {
    bounded("set_permissions_changes_the_mode", 60, async {
        let _serial = serial();
        let (_dir, path) = fixture(10);
        let file = aiofs::File::open(&path).await.unwrap();
        for mode in [0o600, 0o444, 0o640] {
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .await
                .unwrap();
            assert_eq!(mode_of(&path), mode);
            assert_eq!(
                file.metadata().await.unwrap().permissions().mode() & 0o777,
                mode
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_clone_opens_another_descriptor_on_the_same_file() {
    bounded(
        "try_clone_opens_another_descriptor_on_the_same_file",
        60,
        async {
            let _serial = serial();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let mut file = aiofs::File::create_new(&path).await.unwrap();
            file.set_max_buf_size(1 << 20);
            assert_eq!(open_fds_under(dir.path()), 1);
            let clone = file.try_clone().await.unwrap();
            assert_ne!(clone.as_raw_fd(), file.as_raw_fd());
            assert_eq!(open_fds_under(dir.path()), 2);
            assert_eq!(clone.max_buf_size(), 1 << 20);
            assert_eq!(
                clone.metadata().await.unwrap().ino(),
                file.metadata().await.unwrap().ino()
            );

            let (res, _) = clone.write_all_at(b"through the clone".to_vec(), 0).await;
            res.unwrap();
            let (res, buf) = file.read_at(Vec::with_capacity(64), 0).await;
            assert_eq!(res.unwrap(), 17);
            assert_eq!(buf, b"through the clone");

            drop(file);
            assert_eq!(open_fds_under(dir.path()), 1);
            let (res, buf) = clone.read_at(Vec::with_capacity(7), 8).await;
            assert_eq!(res.unwrap(), 7);
            assert_eq!(buf, b"the clo");
            drop(clone);
            assert_eq!(open_fds_under(dir.path()), 0);
            idle().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_std_waits_for_spawned_writes_it_let_start() {
    bounded(
        "into_std_waits_for_spawned_writes_it_let_start",
        60,
        async {
            let _serial = serial();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let file = aiofs::File::create_new(&path).await.unwrap();
            const CHUNK: usize = 64 * 1024;
            const CHUNKS: u64 = 64;
            let tasks: Vec<_> = (0..CHUNKS)
                .map(|i| {
                    let pos = i * CHUNK as u64;
                    tokio::spawn(file.write_all_at(pattern_bytes(pos, CHUNK), pos))
                })
                .collect();
            let std_file = file.into_std().await;
            // What the file holds when `into_std` returns: every write that started
            // before it had finished; those that had not started fail, untouched.
            let mut got = vec![0; CHUNK * CHUNKS as usize];
            let n = std_file.read_at(&mut got, 0).unwrap();
            got.truncate(n);
            let mut ok = 0;
            for (i, task) in tasks.into_iter().enumerate() {
                let pos = i * CHUNK;
                match task.await.unwrap().0 {
                    Ok(()) => {
                        ok += 1;
                        assert!(
                            got.len() >= pos + CHUNK
                                && got[pos..pos + CHUNK] == pattern_bytes(pos as u64, CHUNK)[..],
                            "write {i} reported done but was not in the file at into_std"
                        );
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), std::io::ErrorKind::NotConnected, "write {i}: {e}")
                    }
                }
            }
            println!("{ok} of {CHUNKS} writes started before into_std");
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn into_std_waits_for_an_orphaned_write() {
    bounded("into_std_waits_for_an_orphaned_write", 60, async {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = aiofs::File::create_new(&path).await.unwrap();
        let data = pattern_bytes(0, 1 << 20);
        let mut write = file.write_at(data.clone(), 0);
        assert!(futures::poll!(&mut write).is_pending());
        drop(write);
        let std_file = file.into_std().await;
        // The write either ran or was cancelled; nothing runs on the file now.
        let len = std_file.metadata().unwrap().len();
        let mut got = vec![0; len as usize];
        std_file.read_exact_at(&mut got, 0).unwrap();
        assert!(
            got.is_empty() || got == data,
            "{len} bytes, neither none nor all"
        );
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn try_into_std_is_ok_only_when_nothing_holds_the_descriptor() {
    bounded(
        "try_into_std_is_ok_only_when_nothing_holds_the_descriptor",
        60,
        async {
            let _serial = serial();
            let file = aiofs::File::from_std(tempfile::tempfile().unwrap());
            let (res, _) = file.write_all_at(b"abc".to_vec(), 0).await;
            res.unwrap();

            // A request submitted and not yet finished holds the descriptor
            // (16 MiB in one request: it is almost always still running when
            // `try_into_std` looks; if not, it must be in the file by then).
            const BIG: usize = 16 << 20;
            let mut pending = file.write_at(vec![7u8; BIG], 3);
            assert!(futures::poll!(&mut pending).is_pending());
            let std_file = match file.try_into_std() {
                Err(file) => {
                    let (res, _) = pending.await;
                    assert_eq!(res.unwrap(), BIG);
                    file.try_into_std().expect("nothing in flight")
                }
                Ok(std_file) => {
                    assert_eq!(std_file.metadata().unwrap().len(), (3 + BIG) as u64);
                    let (res, _) = pending.await;
                    assert_eq!(res.unwrap(), BIG);
                    std_file
                }
            };
            let mut got = [0; 4];
            std_file.read_exact_at(&mut got, 0).unwrap();
            assert_eq!(&got, b"abc\x07");

            // A future created and never polled does not hold it, and is
            // refused when polled afterwards.
            let file = aiofs::File::from_std(std_file);
            let lazy = file.read_at(Vec::with_capacity(3), 0);
            let _std_file = file.try_into_std().expect("a lazy future holds nothing");
            let (res, _) = lazy.await;
            assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::NotConnected);
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn open_create_and_create_new_behave_like_std() {
    bounded("open_create_and_create_new_behave_like_std", 60, async {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();

        let missing = dir.path().join("missing");
        let err = aiofs::File::open(&missing).await.unwrap_err();
        let std_err = std::fs::File::open(&missing).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.raw_os_error(), std_err.raw_os_error());

        // `create` truncates an existing file and opens it write-only.
        let path = dir.path().join("f");
        std::fs::write(&path, b"old contents").unwrap();
        let file = aiofs::File::create(&path).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        let (res, _) = file.write_all_at(b"new".to_vec(), 0).await;
        res.unwrap();
        let (res, _) = file.read_at(Vec::with_capacity(3), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");

        // `open` is read-only.
        let file = aiofs::File::open(&path).await.unwrap();
        let (res, buf) = file.read_at(Vec::with_capacity(8), 0).await;
        assert_eq!(res.unwrap(), 3);
        assert_eq!(buf, b"new");
        let (res, _) = file.write_at(b"x".to_vec(), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));

        // `create_new` refuses an existing path and opens a new one read-write.
        let err = aiofs::File::create_new(&path).await.unwrap_err();
        let std_err = std::fs::File::create_new(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(err.raw_os_error(), std_err.raw_os_error());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let fresh = aiofs::File::create_new(dir.path().join("fresh"))
            .await
            .unwrap();
        let (res, _) = fresh.write_all_at(b"fresh".to_vec(), 0).await;
        res.unwrap();
        let (res, buf) = fresh.read_at(Vec::with_capacity(8), 0).await;
        assert_eq!(res.unwrap(), 5);
        assert_eq!(buf, b"fresh");
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn open_options_mode_custom_flags_and_append_like_std() {
    bounded(
        "open_options_mode_custom_flags_and_append_like_std",
        60,
        async {
            let _serial = serial();
            let dir = tempfile::tempdir().unwrap();
            let at = |name: &str| dir.path().join(name);

            // `mode`: the same permission bits as std under the same umask.
            for mode in [0o640, 0o604] {
                let ours = at(&format!("ours-{mode:o}"));
                let theirs = at(&format!("theirs-{mode:o}"));
                aiofs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .mode(mode)
                    .open(&ours)
                    .await
                    .unwrap();
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .mode(mode)
                    .open(&theirs)
                    .unwrap();
                assert_eq!(mode_of(&ours), mode_of(&theirs), "mode {mode:o}");
            }

            // `custom_flags`: O_NOFOLLOW refuses a symlink, as std does.
            let target = at("target");
            std::fs::write(&target, b"target").unwrap();
            let link = at("link");
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let err = aiofs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&link)
                .await
                .unwrap_err();
            let std_err = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&link)
                .unwrap_err();
            assert_eq!(std_err.raw_os_error(), Some(libc::ELOOP));
            assert_eq!(err.raw_os_error(), std_err.raw_os_error());

            // O_APPEND (by `append` or `custom_flags`): a positioned write lands at the
            // end, as std's `pwrite` on Linux.
            let theirs = at("append-std");
            std::fs::write(&theirs, b"0123456789").unwrap();
            std::fs::OpenOptions::new()
                .append(true)
                .open(&theirs)
                .unwrap()
                .write_at(b"abc", 0)
                .unwrap();
            let want = std::fs::read(&theirs).unwrap();
            assert_eq!(want, b"0123456789abc");
            let mut append = aiofs::OpenOptions::new();
            append.append(true);
            let mut custom = aiofs::OpenOptions::default();
            custom.write(true).custom_flags(libc::O_APPEND);
            for (name, options) in [("append", append), ("custom", custom.clone())] {
                let ours = at(name);
                std::fs::write(&ours, b"0123456789").unwrap();
                let file = options.open(&ours).await.unwrap();
                let (res, _) = file.write_at(b"abc".to_vec(), 0).await;
                assert_eq!(res.unwrap(), 3);
                assert_eq!(std::fs::read(&ours).unwrap(), want, "{name}: {options:?}");
            }

            // No access mode: the error std gives.
            let err = aiofs::OpenOptions::new().open(&target).await.unwrap_err();
            let std_err = std::fs::OpenOptions::new().open(&target).unwrap_err();
            assert_eq!(err.kind(), std_err.kind());
            assert_eq!(err.raw_os_error(), std_err.raw_os_error());
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn dropping_the_file_keeps_its_descriptor_until_requests_finish() {
    bounded(
        "dropping_the_file_keeps_its_descriptor_until_requests_finish",
        60,
        async {
            let _serial = serial();
            const CHUNK: usize = 1 << 20;
            const READS: u64 = 8;
            let (dir, path) = fixture(CHUNK * READS as usize);
            let other_path = dir.path().join("other");
            std::fs::write(&other_path, vec![0u8; CHUNK * READS as usize]).unwrap();
            let path = path.canonicalize().unwrap();

            let file = aiofs::File::open(&path).await.unwrap();
            let raw = file.as_raw_fd();
            let mut reads: Vec<_> = (0..READS)
                .map(|i| Box::pin(file.read_exact_at(Vec::with_capacity(CHUNK), i * CHUNK as u64)))
                .collect();
            // Submit every read; none can be collected before it is polled again.
            for read in &mut reads {
                assert!(futures::poll!(read.as_mut()).is_pending());
            }
            drop(file);

            // The descriptor stays open, so a new file cannot take its number.
            let link = PathBuf::from(format!("/proc/self/fd/{raw}"));
            assert_eq!(std::fs::read_link(&link).unwrap(), path);
            let other = std::fs::File::open(&other_path).unwrap();
            assert_ne!(other.as_raw_fd(), raw);

            for (i, read) in reads.into_iter().enumerate() {
                let (res, buf) = read.await;
                res.unwrap();
                assert!(
                    buf == pattern_bytes(i as u64 * CHUNK as u64, CHUNK),
                    "read {i} got the wrong bytes"
                );
            }
            // The last request closed it.
            assert_ne!(std::fs::read_link(&link).ok(), Some(path));
            idle().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_dropped_while_spawned_reads_run() {
    bounded("file_dropped_while_spawned_reads_run", 60, async {
        let _serial = serial();
        const CHUNK: usize = 1 << 20;
        const READS: u64 = 8;
        let (dir, path) = fixture(CHUNK * READS as usize);
        let other_path = dir.path().join("other");
        std::fs::write(&other_path, vec![0u8; CHUNK]).unwrap();

        let file = aiofs::File::open(&path).await.unwrap();
        let tasks: Vec<_> = (0..READS)
            .map(|i| tokio::spawn(file.read_exact_at(Vec::with_capacity(CHUNK), i * CHUNK as u64)))
            .collect();
        drop(file);
        // Were the descriptor closed early, this file would take its number and the
        // reads would see its zeros.
        let _other = std::fs::File::open(&other_path).unwrap();
        for (i, task) in tasks.into_iter().enumerate() {
            let (res, buf) = task.await.unwrap();
            res.unwrap();
            assert!(
                buf == pattern_bytes(i as u64 * CHUNK as u64, CHUNK),
                "read {i} got the wrong bytes"
            );
        }
        idle().await;
        assert_eq!(open_fds_under(dir.path()), 1, "only `_other` is open");
    })
    .await;
}

#[tokio::test]
async fn futures_are_lazy_and_send() {
    bounded("futures_are_lazy_and_send", 60, async {
        fn send<T: Send>(t: T) -> T {
            t
        }
        let _serial = serial();
        let (_dir, path) = fixture(100);
        let file = aiofs::File::options()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .unwrap();
        settle().await;
        let before = requests();

        let read = send(file.read_at(Vec::with_capacity(10), 0));
        let exact = send(file.read_exact_at(Vec::with_capacity(10), 10));
        let write = send(file.write_at(b"zzz".to_vec(), 0));
        let write_all = send(file.write_all_at("zzz", 0));
        let sync = send(file.sync_all());
        tokio::task::yield_now().await;
        assert_eq!(requests(), before, "submitted before a poll");
        drop((write, write_all));

        let (res, buf) = read.await;
        assert_eq!(res.unwrap(), 10);
        assert_eq!(buf, pattern_bytes(0, 10));
        assert_eq!(requests(), before + 1);
        let (res, buf) = exact.await;
        res.unwrap();
        assert_eq!(buf, pattern_bytes(10, 10));
        sync.await.unwrap();
        assert_eq!(requests(), before + 3);
        // The writes dropped before their first poll never ran.
        assert_eq!(std::fs::read(&path).unwrap(), pattern_bytes(0, 100));
        idle().await;
    })
    .await;
}

/// `read_at`/`write_at` under `futures::executor::block_on`, in a child process
/// running only this test: no other test's runtime can be there to read the
/// signal notifier's stream for it.
#[test]
fn positioned_io_outside_tokio() {
    if in_child("positioned_io_outside_tokio") {
        outside_tokio();
    }
}

fn outside_tokio() {
    use futures::executor::block_on;

    assert!(tokio::runtime::Handle::try_current().is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let std_file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std_file.write_all_at(&pattern_bytes(0, 1000), 0).unwrap();
    let file = aiofs::File::from_std(std_file);

    let notifier = std::env::var("AIOFS_NOTIFIER")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match notifier.as_str() {
        "" | "pipe" => {
            let (res, buf) = block_on(file.read_at(Vec::with_capacity(100), 900));
            assert_eq!(res.unwrap(), 100);
            assert_eq!(buf, pattern_bytes(900, 100));
            let (res, _) = block_on(file.write_at(b"outside".to_vec(), 1000));
            assert_eq!(res.unwrap(), 7);
            let (res, _) = block_on(file.write_all_at("tokio", 1007));
            res.unwrap();
            let (res, buf) = block_on(file.read_exact_at(Vec::with_capacity(12), 1000));
            res.unwrap();
            assert_eq!(buf, b"outsidetokio");
            block_on(file.sync_all()).unwrap();
            assert_eq!(block_on(file.metadata()).unwrap().len(), 1012);
            assert_eq!(aiofs::stats().in_flight, 0);
        }
        "signal" => {
            let (res, buf) = block_on(file.read_at(Vec::with_capacity(100), 0));
            let err = res.unwrap_err();
            assert!(err.to_string().contains("Tokio"), "unclear error: {err}");
            assert_eq!(buf.capacity(), 100);
            let (res, buf) = block_on(file.write_at(b"outside".to_vec(), 0));
            let err = res.unwrap_err();
            assert!(err.to_string().contains("Tokio"), "unclear error: {err}");
            assert_eq!(buf, b"outside");
            assert_eq!(aiofs::stats().submitted, 0, "nothing was submitted");
            assert_eq!(std::fs::read(&path).unwrap(), pattern_bytes(0, 1000));
        }
        other => panic!("unknown AIOFS_NOTIFIER={other:?}"),
    }
}

/// Requests that reached the OS: submitted to AIO, or served from the page
/// cache by the `RWF_NOWAIT` fast path.
fn requests() -> u64 {
    let s = aiofs::stats();
    s.submitted + s.nowait_reads
}

/// Group commit: 16 `sync_data` calls made while one is running share one
/// more `aio_fsync` (each gets its result: a sync that started after the call);
/// a call after they finished starts its own. Deterministic: the running
/// round is not polled while the 16 join, so it cannot be seen finished.
#[tokio::test]
async fn concurrent_syncs_of_one_file_share_one_fsync_per_round() {
    bounded(
        "concurrent_syncs_of_one_file_share_one_fsync_per_round",
        60,
        async {
            let _serial = serial();
            let file = std::sync::Arc::new(aiofs::File::from_std(tempfile::tempfile().unwrap()));
            let (res, _) = file.write_all_at(vec![1u8; 1 << 20], 0).await;
            res.unwrap();
            idle().await;
            let before = aiofs::stats();
            let mut first = Box::pin(file.sync_data());
            assert!(
                futures::poll!(first.as_mut()).is_pending(),
                "the first sync runs"
            );
            let mut joined: Vec<_> = (0..16).map(|_| Box::pin(file.sync_data())).collect();
            for sync in &mut joined {
                // Joins the next round (it waits for the first, then syncs).
                assert!(futures::poll!(sync.as_mut()).is_pending());
            }
            first.await.unwrap();
            for sync in joined {
                sync.await.unwrap();
            }
            let after = aiofs::stats();
            assert_eq!(
                after.submitted - before.submitted,
                2,
                "17 syncs: the first one, and one shared by the 16 that came while it ran: \
                 {after:?}"
            );
            // Each caller's own later sync is a round of its own.
            file.sync_data().await.unwrap();
            assert_eq!(aiofs::stats().submitted - before.submitted, 3);
            idle().await;
        },
    )
    .await;
}

/// `read_exact_at` and `write_all_at` futures do not borrow the `File`: they
/// can outlive the borrow (e.g. be made in a closure and awaited later), as
/// their `'static` bound says.
#[tokio::test]
async fn read_exact_at_and_write_all_at_futures_outlive_the_borrow() {
    let file = aiofs::File::from_std(tempfile::tempfile().unwrap());
    let write = {
        let f = &file;
        f.write_all_at(b"abcd".to_vec(), 0)
    };
    let (res, _) = write.await;
    res.unwrap();
    let reads: Vec<_> = (0..2u64)
        .map(|i| file.read_exact_at(Vec::with_capacity(2), i * 2))
        .collect();
    let moved = tokio::spawn(async move {
        let mut out = Vec::new();
        for r in reads {
            let (res, buf) = r.await;
            res.unwrap();
            out.extend(buf);
        }
        out
    });
    assert_eq!(moved.await.unwrap(), b"abcd");
}
