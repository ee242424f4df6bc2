//! `Batch`: many reads and writes, on one or several files, submitted together
//! (`lio_listio`), every byte checked.
//!
//! Every test holds `serial()`: they assert on process-wide counters
//! (`aiofs::stats()`) and on the process's open descriptors.

// `serial()` is held across awaits on purpose: it keeps the tests of this binary
// one at a time, and no other task ever takes it.
#![allow(clippy::await_holding_lock)]

mod support;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use aiofs::{Batch, File};
use futures::StreamExt;
use support::{
    Rng, bounded, idle, open_fds, open_fds_under, open_rw, pattern, pattern_bytes, serial, settle,
};
use tempfile::TempDir;

/// The size of the big fixture: 8 MiB.
const SIZE: u64 = 8 << 20;

/// `len` bytes of `pattern`, or of its complement with `inverted` (a second
/// file whose bytes differ from the first's everywhere).
fn file_bytes(len: u64, inverted: bool) -> Vec<u8> {
    let mut data = pattern_bytes(0, len as usize);
    if inverted {
        data.iter_mut().for_each(|b| *b = !*b);
    }
    data
}

/// A temporary directory holding `data`: `len` bytes of `pattern`.
fn fixture(len: u64) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, file_bytes(len, false)).expect("write fixture");
    (dir, path)
}

/// Panics at the first byte of `buf` (read from `pos`) that is not `pattern`.
fn verify(buf: &[u8], pos: u64, what: &str) {
    if let Some(k) = (0..buf.len()).find(|&k| buf[k] != pattern(pos + k as u64)) {
        panic!(
            "{what}: byte {k} of {} (file position {}) is {:#04x}, want {:#04x}",
            buf.len(),
            pos + k as u64,
            buf[k],
            pattern(pos + k as u64)
        );
    }
}

/// The count a read of `len` bytes at `pos` gives on a file of `size` bytes.
fn count_at(size: u64, pos: u64, len: usize) -> usize {
    size.saturating_sub(pos).min(len as u64) as usize
}

/// One request, so that the driver (its thread, pipe, signal stream) exists
/// before descriptors are counted.
async fn warm_up(file: &File) {
    let (res, _) = file.read_at(Vec::with_capacity(16), 0).await;
    res.expect("warm-up read");
}

#[tokio::test]
async fn ten_thousand_random_reads_in_one_batch_match_the_file() {
    bounded(
        "ten_thousand_random_reads_in_one_batch_match_the_file",
        120,
        async {
            let _serial = serial();
            let (_dir, path) = fixture(SIZE);
            let file = File::open(&path).await.unwrap();
            let mut rng = Rng::new(0xBA7C4);
            let mut batch = Batch::new();
            let mut wanted = Vec::new();
            for _ in 0..10_000 {
                // Some start near the end and are cut short by it, some start past it.
                let pos = rng.below(SIZE + 4096);
                let len = 1 + rng.below(8192) as usize;
                batch.read_at(&file, Vec::with_capacity(len), pos);
                wanted.push((pos, len));
            }
            assert_eq!(batch.len(), 10_000);
            assert!(!batch.is_empty());
            assert!(
                wanted.iter().any(|&(pos, _)| pos >= SIZE),
                "the seed gives reads past the end"
            );

            settle().await;
            let before = aiofs::stats();
            let results = batch.submit().await;
            settle().await;
            let after = aiofs::stats();

            assert_eq!(results.len(), wanted.len(), "one result per request");
            for (i, ((res, buf), &(pos, len))) in results.iter().zip(&wanted).enumerate() {
                let what = format!("read {i} ({len} bytes at {pos})");
                let n = match res {
                    Ok(n) => *n,
                    Err(e) => panic!("{what}: {e}"),
                };
                let want = count_at(SIZE, pos, len);
                assert_eq!(n, want, "{what}: count");
                assert_eq!(buf.len(), want, "{what}: the buffer's length is the count");
                assert!(buf.capacity() >= len, "{what}: its own buffer comes back");
                verify(buf, pos, &what);
            }

            let submitted = after.submitted - before.submitted;
            assert!(submitted >= 10_000, "only {submitted} submitted: {after:?}");
            assert_eq!(
                after.completed - before.completed,
                submitted,
                "every request was collected: {after:?}"
            );
            let calls = after.listio_calls - before.listio_calls;
            let listed = after.listio_requests - before.listio_requests;
            assert!(calls >= 1, "no lio_listio call: {before:?} -> {after:?}");
            assert!(
                listed >= calls,
                "{calls} lio_listio calls carried {listed} requests"
            );
            assert!(
                listed <= submitted,
                "{listed} listed, {submitted} submitted"
            );
            idle().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_reads_and_writes_on_two_files_land_where_asked() {
    bounded(
        "mixed_reads_and_writes_on_two_files_land_where_asked",
        60,
        async {
            let _serial = serial();
            const LEN: u64 = 1 << 20;
            const CHUNK: u64 = 4096;
            let dir = tempfile::tempdir().unwrap();
            let paths = [dir.path().join("a"), dir.path().join("b")];
            let mut model = [file_bytes(LEN, false), file_bytes(LEN, true)];
            for (path, data) in paths.iter().zip(&model) {
                std::fs::write(path, data).unwrap();
            }
            let files = [open_rw(&paths[0]).await, open_rw(&paths[1]).await];

            // Each 4 KiB chunk of each file is written, read or left alone; a
            // request stays inside its chunk, so no read sees a write of the batch.
            enum Req {
                Read {
                    file: usize,
                    pos: u64,
                    len: usize,
                },
                Write {
                    file: usize,
                    pos: u64,
                    data: Vec<u8>,
                },
            }
            let mut rng = Rng::new(0x31CED);
            let mut reqs = Vec::new();
            for file in 0..2 {
                for chunk in 0..LEN / CHUNK {
                    let off = rng.below(CHUNK);
                    let len = 1 + rng.below(CHUNK - off) as usize;
                    let pos = chunk * CHUNK + off;
                    match rng.below(3) {
                        0 => reqs.push(Req::Read { file, pos, len }),
                        1 => {
                            let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                            reqs.push(Req::Write { file, pos, data });
                        }
                        _ => {}
                    }
                }
            }
            // Interleave the two files and the two kinds.
            for i in (1..reqs.len()).rev() {
                reqs.swap(i, rng.below(i as u64 + 1) as usize);
            }

            let mut batch = Batch::new();
            for req in &reqs {
                match req {
                    Req::Read { file, pos, len } => {
                        batch.read_at(&files[*file], Vec::with_capacity(*len), *pos);
                    }
                    Req::Write { file, pos, data } => {
                        batch.write_at(&files[*file], data.clone(), *pos);
                    }
                }
            }
            assert_eq!(batch.len(), reqs.len());
            let results = batch.submit().await;
            assert_eq!(results.len(), reqs.len());

            let (mut reads, mut writes) = (0, 0);
            for (i, ((res, buf), req)) in results.iter().zip(&reqs).enumerate() {
                match req {
                    Req::Read { file, pos, len } => {
                        reads += 1;
                        let what = format!("request {i}: read of {len} at {pos} in file {file}");
                        let n = res.as_ref().unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_eq!(*n, *len, "{what}: count");
                        let start = *pos as usize;
                        assert!(
                            buf[..] == model[*file][start..start + len],
                            "{what}: wrong bytes"
                        );
                    }
                    Req::Write { file, pos, data } => {
                        writes += 1;
                        let what = format!(
                            "request {i}: write of {} at {pos} in file {file}",
                            data.len()
                        );
                        let n = res.as_ref().unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_eq!(*n, data.len(), "{what}: count");
                        assert!(buf == data, "{what}: the buffer comes back unchanged");
                        let start = *pos as usize;
                        model[*file][start..start + data.len()].copy_from_slice(data);
                    }
                }
            }
            assert!(reads > 50 && writes > 50, "{reads} reads, {writes} writes");

            idle().await;
            for (k, path) in paths.iter().enumerate() {
                let on_disk = std::fs::read(path).unwrap();
                assert_eq!(on_disk.len(), model[k].len(), "file {k}'s length");
                if let Some(at) = (0..on_disk.len()).find(|&j| on_disk[j] != model[k][j]) {
                    panic!(
                        "file {k}, byte {at}: {:#04x} on disk, want {:#04x}",
                        on_disk[at], model[k][at]
                    );
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn read_from_a_write_only_file_fails_alone_with_ebadf() {
    bounded(
        "read_from_a_write_only_file_fails_alone_with_ebadf",
        60,
        async {
            let _serial = serial();
            let (dir, path) = fixture(1 << 20);
            let readable = File::open(&path).await.unwrap();
            let out_path = dir.path().join("out");
            let write_only = File::create(&out_path).await.unwrap();
            warm_up(&readable).await;
            settle().await;
            let fds = open_fds();
            let fds_under = open_fds_under(dir.path());

            // Good requests on both sides of the bad one, and a write on the
            // write-only file that must succeed.
            let mut batch = Batch::new();
            for i in 0..20u64 {
                batch.read_at(&readable, Vec::with_capacity(1000), i * 5000);
            }
            let bad = Vec::with_capacity(777);
            let bad_ptr = bad.as_ptr();
            batch.read_at(&write_only, bad, 0);
            batch.write_at(&write_only, b"written next to a failure".to_vec(), 3);
            for i in 20..40u64 {
                batch.read_at(&readable, Vec::with_capacity(1000), i * 5000);
            }
            let results = batch.submit().await;
            assert_eq!(results.len(), 42);

            for (i, (res, buf)) in results.iter().enumerate() {
                match i {
                    20 => {
                        let err = res.as_ref().expect_err("a read of a write-only file");
                        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
                        assert_eq!(buf.as_ptr(), bad_ptr, "its own buffer comes back");
                        assert!(buf.is_empty() && buf.capacity() >= 777);
                    }
                    21 => {
                        assert_eq!(*res.as_ref().expect("the write"), 25);
                        assert_eq!(buf, b"written next to a failure");
                    }
                    _ => {
                        let k = (if i < 20 { i } else { i - 2 }) as u64;
                        let what = format!("read {i} at {}", k * 5000);
                        assert_eq!(*res.as_ref().expect(&what), 1000, "{what}");
                        verify(buf, k * 5000, &what);
                    }
                }
            }
            drop(results);

            idle().await;
            assert_eq!(open_fds(), fds, "descriptors open before and after");
            assert_eq!(open_fds_under(dir.path()), fds_under);
            let mut want = vec![0; 3];
            want.extend_from_slice(b"written next to a failure");
            assert_eq!(std::fs::read(&out_path).unwrap(), want);
            drop((readable, write_only));
            settle().await;
            assert_eq!(open_fds_under(dir.path()), 0, "no descriptor left behind");
        },
    )
    .await;
}

#[tokio::test]
async fn pipe_in_a_batch_is_refused_with_espipe_and_the_others_complete() {
    bounded(
        "pipe_in_a_batch_is_refused_with_espipe_and_the_others_complete",
        60,
        async {
            let _serial = serial();
            let (dir, path) = fixture(1 << 20);
            let file = open_rw(&path).await;
            warm_up(&file).await;
            settle().await;
            let fds = open_fds();

            let (reader, mut writer) = std::io::pipe().unwrap();
            let data = b"bytes that must stay in the pipe";
            writer.write_all(data).unwrap();
            let mut drain = reader.try_clone().unwrap();
            let pipe_in = File::from(OwnedFd::from(reader));
            let (mut other_reader, other_writer) = std::io::pipe().unwrap();
            let pipe_out = File::from(OwnedFd::from(other_writer));

            let mut batch = Batch::new();
            batch.read_at(&file, Vec::with_capacity(4096), 0);
            batch.read_at(&pipe_in, Vec::with_capacity(64), 0);
            batch.write_at(&file, b"abc".to_vec(), 100_000);
            batch.write_at(&pipe_out, b"nope".to_vec(), 0);
            batch.read_at(&file, Vec::with_capacity(4096), 200_000);

            settle().await;
            let before = aiofs::stats();
            let results = batch.submit().await;
            let after = aiofs::stats();
            assert_eq!(results.len(), 5);

            let (res, buf) = &results[0];
            assert_eq!(*res.as_ref().unwrap(), 4096);
            verify(buf, 0, "read 0");
            let (res, buf) = &results[1];
            let err = res.as_ref().expect_err("a read of a pipe");
            assert_eq!(err.kind(), ErrorKind::NotSeekable, "{err}");
            assert_eq!(err.raw_os_error(), Some(libc::ESPIPE), "{err}");
            assert!(buf.is_empty() && buf.capacity() >= 64);
            let (res, buf) = &results[2];
            assert_eq!(*res.as_ref().unwrap(), 3);
            assert_eq!(buf, b"abc");
            let (res, buf) = &results[3];
            let err = res.as_ref().expect_err("a write to a pipe");
            assert_eq!(err.kind(), ErrorKind::NotSeekable, "{err}");
            assert_eq!(err.raw_os_error(), Some(libc::ESPIPE), "{err}");
            assert_eq!(buf, b"nope", "the buffer comes back unchanged");
            let (res, buf) = &results[4];
            assert_eq!(*res.as_ref().unwrap(), 4096);
            verify(buf, 200_000, "read 4");

            assert_eq!(
                after.submitted - before.submitted,
                3,
                "the pipe's requests were refused before submission: {before:?} -> {after:?}"
            );

            // Every byte is still in the first pipe, and nothing reached the second.
            drop((writer, pipe_in));
            let mut got = Vec::new();
            drain.read_to_end(&mut got).unwrap();
            assert_eq!(got, data);
            drop(pipe_out);
            let mut got = Vec::new();
            other_reader.read_to_end(&mut got).unwrap();
            assert!(got.is_empty(), "{got:?} was written into the pipe");
            drop((drain, other_reader));

            idle().await;
            assert_eq!(open_fds(), fds, "descriptors open before and after");
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(&on_disk[100_000..100_003], b"abc");
            drop(file);
            settle().await;
            assert_eq!(open_fds_under(dir.path()), 0, "no descriptor left behind");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_each_yields_every_index_once_with_its_data() {
    bounded(
        "submit_each_yields_every_index_once_with_its_data",
        60,
        async {
            let _serial = serial();
            let (dir, path) = fixture(SIZE);
            let file = File::open(&path).await.unwrap();
            std::fs::write(dir.path().join("out"), b"").unwrap();
            let out = open_rw(&dir.path().join("out")).await;
            let mut rng = Rng::new(0xEAC4);
            let mut batch = Batch::new();
            let mut wanted = Vec::new();
            for i in 0..2000u64 {
                if i % 10 == 3 {
                    // Writes of distinct 100-byte records.
                    let data = vec![i as u8; 100];
                    batch.write_at(&out, data, i * 100);
                    wanted.push((true, i * 100, 100));
                } else {
                    let pos = rng.below(SIZE);
                    let len = 1 + rng.below(16384) as usize;
                    batch.read_at(&file, Vec::with_capacity(len), pos);
                    wanted.push((false, pos, len));
                }
            }

            let mut seen = BTreeMap::new();
            let mut stream = std::pin::pin!(batch.submit_each());
            while let Some((index, (res, buf))) = stream.next().await {
                assert!(index < wanted.len(), "index {index} out of range");
                let (is_write, pos, len) = wanted[index];
                let what = format!("request {index} ({len} bytes at {pos})");
                let n = res.unwrap_or_else(|e| panic!("{what}: {e}"));
                if is_write {
                    assert_eq!(n, len, "{what}: count");
                    assert_eq!(buf, vec![(pos / 100) as u8; 100], "{what}: buffer back");
                } else {
                    assert_eq!(n, count_at(SIZE, pos, len), "{what}: count");
                    assert_eq!(buf.len(), n, "{what}: length");
                    verify(&buf, pos, &what);
                }
                assert!(
                    seen.insert(index, ()).is_none(),
                    "index {index} yielded twice"
                );
            }
            assert!(stream.next().await.is_none(), "the stream stays ended");
            assert_eq!(seen.len(), wanted.len(), "every index yielded");

            idle().await;
            let on_disk = std::fs::read(dir.path().join("out")).unwrap();
            for &(is_write, pos, len) in &wanted {
                if is_write {
                    let at = pos as usize;
                    assert_eq!(on_disk[at..at + len], vec![(pos / 100) as u8; len]);
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn empty_batch_gives_an_empty_vec_and_submits_nothing() {
    bounded(
        "empty_batch_gives_an_empty_vec_and_submits_nothing",
        60,
        async {
            let _serial = serial();
            settle().await;
            let before = aiofs::stats();

            let batch = Batch::<Vec<u8>>::new();
            assert_eq!(batch.len(), 0);
            assert!(batch.is_empty());
            let results = batch.submit().await;
            assert!(results.is_empty());

            let mut each = std::pin::pin!(Batch::<Vec<u8>>::new().submit_each());
            assert!(each.next().await.is_none());

            let after = aiofs::stats();
            assert_eq!(after.submitted, before.submitted, "{after:?}");
            idle().await;
        },
    )
    .await;
}

#[tokio::test]
async fn batch_is_lazy_and_dropping_it_unpolled_releases_everything() {
    bounded(
        "batch_is_lazy_and_dropping_it_unpolled_releases_everything",
        60,
        async {
            let _serial = serial();
            let (dir, path) = fixture(1 << 20);
            let file = open_rw(&path).await;
            settle().await;
            let before = aiofs::stats();

            let mut batch = Batch::new();
            batch.read_at(&file, Vec::with_capacity(100), 0).write_at(
                &file,
                b"must not be written".to_vec(),
                0,
            );
            assert_eq!(batch.len(), 2);
            let fut = batch.submit();
            tokio::task::yield_now().await;
            assert_eq!(
                aiofs::stats().submitted,
                before.submitted,
                "nothing before the first poll"
            );
            drop(fut);

            let mut batch = Batch::new();
            batch.read_at(&file, Vec::with_capacity(100), 0);
            let each = batch.submit_each();
            tokio::task::yield_now().await;
            assert_eq!(aiofs::stats().submitted, before.submitted);
            drop(each);

            drop(file);
            settle().await;
            assert_eq!(
                open_fds_under(dir.path()),
                0,
                "an unpolled batch holds no descriptor"
            );
            assert_eq!(std::fs::read(&path).unwrap(), file_bytes(1 << 20, false));
            assert_eq!(aiofs::stats().submitted, before.submitted);
        },
    )
    .await;
}

#[tokio::test]
async fn batch_dropped_in_flight_is_orphaned_and_cleaned_up() {
    bounded(
        "batch_dropped_in_flight_is_orphaned_and_cleaned_up",
        60,
        async {
            let _serial = serial();
            let (dir, path) = fixture(SIZE);
            let file = File::open(&path).await.unwrap();
            warm_up(&file).await;
            settle().await;
            let fds = open_fds();
            let before = aiofs::stats();

            let mut batch = Batch::new();
            for i in 0..1000u64 {
                batch.read_at(&file, Vec::with_capacity(65536), (i * 4096) % SIZE);
            }
            let mut fut = Box::pin(batch.submit());
            let first = futures::poll!(fut.as_mut());
            assert!(first.is_pending(), "62 MiB read by the first poll");
            assert!(
                aiofs::stats().submitted > before.submitted,
                "the first poll submits"
            );
            // Drop the batch's future while (most of) its requests are in flight.
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
                open_fds_under(dir.path()),
                0,
                "the file's descriptor closed"
            );
            assert_eq!(
                open_fds(),
                fds - 1,
                "descriptors open before, less the file's"
            );

            // The driver still works.
            let file = File::open(&path).await.unwrap();
            let mut batch = Batch::new();
            batch.read_at(&file, Vec::with_capacity(10), 5);
            let results = batch.submit().await;
            assert_eq!(*results[0].0.as_ref().unwrap(), 10);
            verify(&results[0].1, 5, "read after the drop");
        },
    )
    .await;
}

#[tokio::test]
async fn submit_each_dropped_part_way_is_cleaned_up() {
    bounded("submit_each_dropped_part_way_is_cleaned_up", 60, async {
        let _serial = serial();
        let (dir, path) = fixture(SIZE);
        let file = File::open(&path).await.unwrap();
        warm_up(&file).await;
        settle().await;
        let before = aiofs::stats();

        let mut batch = Batch::new();
        for i in 0..1000u64 {
            batch.read_at(&file, Vec::with_capacity(65536), (i * 8192) % SIZE);
        }
        let mut stream = Box::pin(batch.submit_each());
        for _ in 0..10 {
            let (index, (res, buf)) = stream.next().await.expect("ten results at least");
            let pos = (index as u64 * 8192) % SIZE;
            assert_eq!(res.unwrap(), 65536, "request {index}");
            verify(&buf, pos, &format!("request {index}"));
        }
        drop(stream);
        drop(file);

        idle().await;
        let after = aiofs::stats();
        assert_eq!(
            after.submitted - before.submitted,
            after.completed - before.completed,
            "every submitted request was collected: {after:?}"
        );
        assert_eq!(
            open_fds_under(dir.path()),
            0,
            "the file's descriptor closed"
        );
    })
    .await;
}
