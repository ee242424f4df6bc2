//! `readv_at` / `writev_at`, checked against `preadv(2)` / `pwritev(2)` on the
//! same data.
//!
//! Every test holds `serial()`: some assert on process-wide counters
//! (`aiofs::stats()`).

// `serial()` is held across awaits on purpose: it keeps the tests of this binary
// one at a time, and no other task ever takes it.
#![allow(clippy::await_holding_lock)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use aiofs::File;
use support::{Rng, bounded, idle, open_rw, pattern_bytes, serial, settle};
use tempfile::TempDir;

/// The size of the fixture: 1 MiB.
const SIZE: u64 = 1 << 20;

/// A temporary directory holding `data`: `len` bytes of `pattern`.
fn fixture(len: u64) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, len as usize)).expect("write fixture");
    (dir, path)
}

/// What `preadv(2)` gives for segments of `sizes` bytes at `pos`: the count, and
/// each segment truncated to the bytes it received.
fn std_preadv(file: &std::fs::File, sizes: &[usize], pos: u64) -> (usize, Vec<Vec<u8>>) {
    let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0; n]).collect();
    let iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: each iovec points to the `iov_len` bytes of a live `Vec` that
    // nothing else touches during the call; `iov` outlives the call.
    let n = unsafe {
        libc::preadv(
            file.as_raw_fd(),
            iov.as_ptr(),
            iov.len() as libc::c_int,
            pos as libc::off_t,
        )
    };
    assert!(
        n >= 0,
        "preadv at {pos}: {}",
        std::io::Error::last_os_error()
    );
    let mut left = n as usize;
    for buf in &mut bufs {
        let got = left.min(buf.len());
        buf.truncate(got);
        left -= got;
    }
    (n as usize, bufs)
}

/// What `pwritev(2)` gives for `bufs` at `pos`.
fn std_pwritev(file: &std::fs::File, bufs: &[Vec<u8>], pos: u64) -> usize {
    let iov: Vec<libc::iovec> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr().cast_mut().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: each iovec points to the `iov_len` initialised bytes of a live
    // `Vec`, which `pwritev` only reads; `iov` outlives the call.
    let n = unsafe {
        libc::pwritev(
            file.as_raw_fd(),
            iov.as_ptr(),
            iov.len() as libc::c_int,
            pos as libc::off_t,
        )
    };
    assert!(
        n >= 0,
        "pwritev at {pos}: {}",
        std::io::Error::last_os_error()
    );
    n as usize
}

/// Fresh segments of these capacities, and the capacities they really got.
fn segments(sizes: &[usize]) -> (Vec<Vec<u8>>, Vec<usize>) {
    let bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| Vec::with_capacity(n)).collect();
    let caps = bufs.iter().map(Vec::capacity).collect();
    (bufs, caps)
}

/// Checks `readv_at(sizes, pos)` against `preadv` on the same file.
async fn check_readv(file: &File, std_file: &std::fs::File, sizes: &[usize], pos: u64) {
    let what = format!("readv_at of {sizes:?} at {pos}");
    let (bufs, caps) = segments(sizes);
    let ptrs: Vec<*const u8> = bufs.iter().map(|b| b.as_ptr()).collect();
    let (res, bufs) = file.readv_at(bufs, pos).await;
    let (want_n, want) = std_preadv(std_file, &caps, pos);
    let n = res.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(n, want_n, "{what}: count");
    assert_eq!(bufs.len(), sizes.len(), "{what}: every segment comes back");
    for (k, (buf, want)) in bufs.iter().zip(&want).enumerate() {
        assert_eq!(
            buf.as_ptr(),
            ptrs[k],
            "{what}: segment {k} is its own buffer"
        );
        assert_eq!(buf.len(), want.len(), "{what}: segment {k}'s length");
        assert!(buf == want, "{what}: segment {k}'s bytes");
    }
}

#[tokio::test]
async fn readv_at_random_segments_match_preadv() {
    bounded("readv_at_random_segments_match_preadv", 60, async {
        let _serial = serial();
        let (_dir, path) = fixture(SIZE);
        let file = File::open(&path).await.unwrap();
        let std_file = std::fs::File::open(&path).unwrap();
        let mut rng = Rng::new(0x5E65);
        for _ in 0..300 {
            let count = 1 + rng.below(16) as usize;
            let sizes: Vec<usize> = (0..count).map(|_| 1 + rng.below(20_000) as usize).collect();
            // Some start near the end of file, some past it.
            let pos = rng.below(SIZE + 20_000);
            check_readv(&file, &std_file, &sizes, pos).await;
        }
        idle().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readv_at_on_one_file_match_preadv() {
    bounded("concurrent_readv_at_on_one_file_match_preadv", 60, async {
        let _serial = serial();
        let (_dir, path) = fixture(SIZE);
        let file = File::open(&path).await.unwrap();
        let std_file = std::fs::File::open(&path).unwrap();
        let mut rng = Rng::new(0xC0C0);
        let cases: Vec<(Vec<usize>, u64)> = (0..200)
            .map(|_| {
                let count = 1 + rng.below(8) as usize;
                let sizes = (0..count).map(|_| 1 + rng.below(8192) as usize).collect();
                (sizes, rng.below(SIZE))
            })
            .collect();
        let futs = cases
            .iter()
            .map(|(sizes, pos)| check_readv(&file, &std_file, sizes, *pos));
        futures::future::join_all(futs).await;
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn writev_at_random_segments_match_pwritev() {
    bounded("writev_at_random_segments_match_pwritev", 60, async {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
        std::fs::write(&ours, pattern_bytes(0, SIZE as usize)).unwrap();
        std::fs::write(&theirs, pattern_bytes(0, SIZE as usize)).unwrap();
        let file = open_rw(&ours).await;
        let std_file = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&theirs)
            .unwrap();
        let mut rng = Rng::new(0x3717E);
        for round in 0..200 {
            let count = 1 + rng.below(16) as usize;
            let bufs: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let len = 1 + rng.below(20_000) as usize;
                    (0..len).map(|_| rng.next_u64() as u8).collect()
                })
                .collect();
            // Some extend the file.
            let pos = rng.below(SIZE + 50_000);
            let what = format!("round {round}: writev_at of {count} segments at {pos}");
            let want = std_pwritev(&std_file, &bufs, pos);
            let (res, back) = file.writev_at(bufs.clone(), pos).await;
            assert_eq!(
                res.unwrap_or_else(|e| panic!("{what}: {e}")),
                want,
                "{what}"
            );
            assert_eq!(back, bufs, "{what}: the segments come back unchanged");
        }
        idle().await;
        let (a, b) = (
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap(),
        );
        assert_eq!(a.len(), b.len(), "the files' lengths");
        if let Some(at) = (0..a.len()).find(|&i| a[i] != b[i]) {
            panic!(
                "byte {at}: {:#04x} by writev_at, {:#04x} by pwritev",
                a[at], b[at]
            );
        }
    })
    .await;
}

#[tokio::test]
async fn readv_at_stops_counting_at_the_end_of_file_inside_the_third_segment() {
    bounded(
        "readv_at_stops_counting_at_the_end_of_file_inside_the_third_segment",
        60,
        async {
            let _serial = serial();
            let (s1, s2, s3, s4) = (1000, 3000, 5000, 700);
            let (k, pos) = (1234, 10_000u64);
            let (_dir, path) = fixture(pos + (s1 + s2 + k) as u64);
            let file = File::open(&path).await.unwrap();
            let std_file = std::fs::File::open(&path).unwrap();

            let bufs = vec![
                Vec::with_capacity(s1),
                Vec::with_capacity(s2),
                Vec::with_capacity(s3),
                vec![0xEE; s4],
            ];
            let (res, bufs) = file.readv_at(bufs, pos).await;
            assert_eq!(res.unwrap(), s1 + s2 + k);
            let lens: Vec<usize> = bufs.iter().map(Vec::len).collect();
            assert_eq!(lens, [s1, s2, k, 0]);
            let mut at = pos;
            for buf in &bufs {
                assert!(*buf == pattern_bytes(at, buf.len()), "bytes at {at}");
                at += buf.len() as u64;
            }
            check_readv(&file, &std_file, &[s1, s2, s3, s4], pos).await;

            // At the end of file exactly, and past it: nothing.
            let end = pos + (s1 + s2 + k) as u64;
            for at in [end, end + 1, end + 1_000_000] {
                let (res, bufs) = file.readv_at(vec![vec![1u8; 10], vec![2u8; 10]], at).await;
                assert_eq!(res.unwrap(), 0, "at {at}");
                assert!(bufs.iter().all(Vec::is_empty), "at {at}");
            }
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn zero_length_segments_are_skipped_as_preadv_skips_them() {
    bounded(
        "zero_length_segments_are_skipped_as_preadv_skips_them",
        60,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(SIZE);
            let file = open_rw(&path).await;
            let std_file = std::fs::File::open(&path).unwrap();

            for sizes in [
                &[100, 0, 100][..],
                &[0, 4096],
                &[4096, 0],
                &[0, 0, 0],
                &[10, 0, 0, 20, 0, 30],
            ] {
                check_readv(&file, &std_file, sizes, 5000).await;
            }
            // Near the end of file.
            check_readv(&file, &std_file, &[100, 0, 100], SIZE - 150).await;

            let bufs = vec![vec![1u8; 10], Vec::new(), vec![2u8; 10]];
            let (res, back) = file.writev_at(bufs.clone(), 0).await;
            assert_eq!(
                res.unwrap(),
                20,
                "a zero-length segment does not stop the count"
            );
            assert_eq!(back, bufs);
            idle().await;
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk[..10], [1; 10]);
            assert_eq!(on_disk[10..20], [2; 10]);
        },
    )
    .await;
}

#[tokio::test]
async fn readv_and_writev_past_i64_max_are_invalid_input_and_submit_nothing() {
    bounded(
        "readv_and_writev_past_i64_max_are_invalid_input_and_submit_nothing",
        60,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(1000);
            let file = open_rw(&path).await;
            settle().await;
            let before = aiofs::stats();
            let max = i64::MAX as u64;

            // Each segment alone would fit; together they pass i64::MAX.
            for (sizes, pos) in [
                (&[60, 60][..], max - 100),
                (&[1][..], max),
                (&[1, 1][..], u64::MAX),
                (&[0, 0, 1][..], max),
            ] {
                let what = format!("readv_at of {sizes:?} at {pos}");
                let (bufs, caps) = segments(sizes);
                let (res, back) = file.readv_at(bufs, pos).await;
                let err = res.expect_err(&what);
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
                assert_eq!(back.len(), sizes.len(), "{what}: the segments come back");
                for (buf, cap) in back.iter().zip(&caps) {
                    assert!(buf.is_empty() && buf.capacity() == *cap, "{what}");
                }

                let what = format!("writev_at of {sizes:?} at {pos}");
                let bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![7; n]).collect();
                let (res, back) = file.writev_at(bufs.clone(), pos).await;
                let err = res.expect_err(&what);
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
                assert_eq!(back, bufs, "{what}: the segments come back");
            }
            let after = aiofs::stats();
            assert_eq!(
                after.submitted, before.submitted,
                "nothing submitted: {after:?}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), pattern_bytes(0, 1000));
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn zero_segments_are_ok_zero() {
    bounded("zero_segments_are_ok_zero", 60, async {
        let _serial = serial();
        let (_dir, path) = fixture(1000);
        let file = open_rw(&path).await;
        settle().await;
        let before = aiofs::stats();
        let (res, back) = file.readv_at(Vec::<Vec<u8>>::new(), 0).await;
        assert_eq!(res.unwrap(), 0);
        assert!(back.is_empty());
        let (res, back) = file.writev_at(Vec::<Vec<u8>>::new(), 500).await;
        assert_eq!(res.unwrap(), 0);
        assert!(back.is_empty());
        let after = aiofs::stats();
        assert_eq!(
            after.submitted, before.submitted,
            "nothing submitted: {after:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), pattern_bytes(0, 1000));
        idle().await;
    })
    .await;
}

#[tokio::test]
async fn readv_and_writev_on_a_pipe_are_not_seekable_and_leave_it_alone() {
    bounded(
        "readv_and_writev_on_a_pipe_are_not_seekable_and_leave_it_alone",
        60,
        async {
            let _serial = serial();
            settle().await;
            let before = aiofs::stats();

            let (reader, mut writer) = std::io::pipe().unwrap();
            let data = b"bytes that must stay in the pipe";
            writer.write_all(data).unwrap();
            let mut drain = reader.try_clone().unwrap();
            let file = File::from(OwnedFd::from(reader));
            for _ in 0..2 {
                let (res, back) = file
                    .readv_at(vec![Vec::with_capacity(8), Vec::with_capacity(64)], 0)
                    .await;
                let err = res.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::NotSeekable, "{err}");
                assert_eq!(err.raw_os_error(), Some(libc::ESPIPE), "{err}");
                assert_eq!(back.len(), 2);
                assert!(back.iter().all(Vec::is_empty));
            }

            let (mut other_reader, other_writer) = std::io::pipe().unwrap();
            let wfile = File::from(OwnedFd::from(other_writer));
            let bufs = vec![b"no".to_vec(), b"pe".to_vec()];
            let (res, back) = wfile.writev_at(bufs.clone(), 0).await;
            let err = res.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotSeekable, "{err}");
            assert_eq!(err.raw_os_error(), Some(libc::ESPIPE), "{err}");
            assert_eq!(back, bufs);

            assert_eq!(
                aiofs::stats().submitted,
                before.submitted,
                "nothing submitted"
            );
            drop((writer, file));
            let mut got = Vec::new();
            drain.read_to_end(&mut got).unwrap();
            assert_eq!(got, data, "every byte is still in the pipe");
            drop(wfile);
            let mut got = Vec::new();
            other_reader.read_to_end(&mut got).unwrap();
            assert!(got.is_empty(), "{got:?} was written into the pipe");
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn readv_at_dropped_in_flight_is_cleaned_up() {
    bounded("readv_at_dropped_in_flight_is_cleaned_up", 60, async {
        let _serial = serial();
        // 8 MiB in 128 segments: far too much to be done at the first poll.
        let (dir, path) = fixture(8 << 20);
        let file = File::open(&path).await.unwrap();
        settle().await;
        let before = aiofs::stats();

        let bufs: Vec<Vec<u8>> = (0..128).map(|_| Vec::with_capacity(65536)).collect();
        let mut fut = Box::pin(file.readv_at(bufs, 0));
        let first = futures::poll!(fut.as_mut());
        assert!(first.is_pending(), "8 MiB read by the first poll");
        assert!(
            aiofs::stats().submitted > before.submitted,
            "the first poll submits"
        );
        drop(fut);
        drop(file);

        idle().await;
        let after = aiofs::stats();
        assert_eq!(
            after.submitted - before.submitted,
            after.completed - before.completed,
            "every submitted request was collected: {after:?}"
        );
        assert_eq!(
            support::open_fds_under(dir.path()),
            0,
            "the file's descriptor closed"
        );
    })
    .await;
}
