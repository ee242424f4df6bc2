//! Faults: a full disk (`ENOSPC`), a descriptor that cannot do the operation
//! (`EBADF`: a read on a write-only or `O_PATH` descriptor, a write on a
//! read-only one), a file truncated while being read, and misaligned `O_DIRECT`
//! requests.
//!
//! Each fault must give a clear error (checked by `raw_os_error` or
//! `ErrorKind`), to the request that caused it alone; while it happens, a
//! [`Background`] load on another file keeps running and every one of its
//! requests completes with verified data; a request after the fault works; and
//! nothing acknowledged is lost: data whose write returned `Ok` (positioned,
//! `Batch`, or `AsyncWrite` + `flush` / `sync_all`) is read back intact.
//!
//! Covered elsewhere, not repeated here: `tests/stream_faults.rs` (`AsyncWrite`
//! write-behind on a full disk, retried flushes, `aiofs::write` on a full
//! disk), `tests/file_ops.rs` (the same errors as `std` for one request at a
//! time), `tests/batch.rs` (an `EBADF` read alone in a batch), `tests/direct.rs`
//! (every kind of misalignment refused before submission), and
//! `tests/fault_efbig.rs` (`EFBIG`, its own binary: it sets `RLIMIT_FSIZE`).
//!
//! The disk-full tests mount a small tmpfs, so they need root; they say so and
//! pass without checking anything otherwise. The truncation test holds its
//! reads behind a read stalled on a `userfaultfd` page (root, or
//! `vm.unprivileged_userfaultfd=1`); without it the reads race the truncation
//! and only their results are checked. Every test holds `serial()`: they end
//! by checking that nothing is left in flight.

// `serial()` is held across awaits on purpose: it keeps the tests of this binary
// one at a time, and no other task ever takes it.
#![allow(clippy::await_holding_lock)]

mod support;

use std::future::Future;
use std::io::{self, ErrorKind};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use aiofs::buf::AlignedBuf;
use aiofs::{Batch, File, OpenOptions};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use support::{
    Background, Rng, Stall, Tmpfs, aio_only, bounded, idle, open_rw, pattern_bytes, serial,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Where the data of a second generation of writes comes from in the pattern,
/// so that it differs from what was there.
const NEW: u64 = 1 << 40;

type Check = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// `e` is the OS error `code`.
#[track_caller]
fn assert_errno(e: &io::Error, code: i32, what: &str) {
    assert_eq!(
        e.raw_os_error(),
        Some(code),
        "{what}: want {}, got {e:?}",
        io::Error::from_raw_os_error(code)
    );
}

/// `res` is the OS error `code`.
#[track_caller]
fn expect_errno<T: std::fmt::Debug>(res: io::Result<T>, code: i32, what: &str) {
    match res {
        Ok(v) => panic!(
            "{what}: succeeded ({v:?}), want {}",
            io::Error::from_raw_os_error(code)
        ),
        Err(e) => assert_errno(&e, code, what),
    }
}

/// An error `Err` for a `Check`, unless `res` is the OS error `code`.
fn check_errno<T: std::fmt::Debug>(
    res: io::Result<T>,
    code: i32,
    what: &str,
) -> Result<(), String> {
    match res {
        Err(e) if e.raw_os_error() == Some(code) => Ok(()),
        other => Err(format!(
            "{what}: want {}, got {other:?}",
            io::Error::from_raw_os_error(code)
        )),
    }
}

/// Runs every check at once (one future: the first poll makes every request)
/// and panics with the failures.
async fn run_all(checks: Vec<Check>) {
    let n = checks.len();
    let failures: Vec<String> = checks
        .into_iter()
        .collect::<FuturesUnordered<_>>()
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {n} requests went wrong: {failures:#?}",
        failures.len()
    );
}

/// `path` holds `len` bytes of the pattern.
fn fixture(dir: &Path, name: &str, len: usize) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pattern_bytes(0, len)).expect("write the fixture");
    path
}

/// The bytes of `path` at `pos..pos + len`.
fn file_bytes(path: &Path, pos: u64, len: usize) -> Vec<u8> {
    let content = std::fs::read(path).expect("read back");
    content[pos as usize..][..len].to_vec()
}

// ----- ENOSPC -----

/// 96 positioned writes of 64 KiB at once onto a disk with 3 MiB free: each
/// succeeds or fails with `ENOSPC`, and every one that succeeded is in the
/// file, intact, before and after `sync_all`. On the full disk a `Batch` fails
/// request by request: new ranges with `ENOSPC`, while a read and an overwrite
/// in place (no new space needed) succeed. With space again, a write works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_positioned_and_batch_writes_keep_every_acknowledged_byte() {
    // The AIO path under test: no page-cache fast path (a stalled read must
    // stall glibc\'s worker, not this thread).
    aio_only();
    const NAME: &str = "enospc_positioned_and_batch_writes_keep_every_acknowledged_byte";
    const PIECE: usize = 64 * KIB;
    const PIECES: u64 = 96;
    let _serial = serial();
    let Some(fs) = Tmpfs::mount("4m", NAME) else {
        return;
    };
    bounded(NAME, 60, async {
        let filler = fs.join("filler");
        std::fs::write(&filler, vec![0xAA; MIB]).expect("write the filler");
        let path = fs.join("data");
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .await
                .expect("create"),
        );
        let bg = Background::start().await;

        let tasks: Vec<_> = (0..PIECES)
            .map(|k| {
                let file = Arc::clone(&file);
                let pos = k * PIECE as u64;
                tokio::spawn(async move { file.write_all_at(pattern_bytes(pos, PIECE), pos).await })
            })
            .collect();
        // The content each acknowledged piece must have.
        let mut acked: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut full = 0;
        for (k, task) in tasks.into_iter().enumerate() {
            let (res, buf) = task.await.expect("write task");
            let pos = k as u64 * PIECE as u64;
            match res {
                Ok(()) => acked.push((pos, buf)),
                Err(e) => {
                    assert_errno(&e, libc::ENOSPC, &format!("write_all_at {pos}"));
                    assert_eq!(e.kind(), ErrorKind::StorageFull);
                    assert_eq!(
                        buf,
                        pattern_bytes(pos, PIECE),
                        "the buffer comes back whole"
                    );
                    full += 1;
                }
            }
        }
        eprintln!(
            "{} pieces acknowledged, {full} refused with ENOSPC",
            acked.len()
        );
        assert!(full > 0, "6 MiB fit on a 4 MiB disk");
        assert!(acked.len() >= 2, "only {} pieces fit", acked.len());

        file.sync_all().await.expect("sync_all on the full disk");
        let check_acked = |acked: &[(u64, Vec<u8>)]| {
            let content = std::fs::read(&path).expect("read back");
            for (pos, want) in acked {
                let got = content.get(*pos as usize..*pos as usize + want.len());
                assert!(
                    got == Some(&want[..]),
                    "acknowledged piece at {pos} is not intact"
                );
            }
        };
        check_acked(&acked);
        let reads = acked
            .iter()
            .map(|(pos, want)| {
                let file = Arc::clone(&file);
                let (pos, want) = (*pos, want.clone());
                Box::pin(async move {
                    let (res, buf) = file.read_exact_at(vec![0; PIECE], pos).await;
                    res.map_err(|e| format!("read_exact_at {pos}: {e}"))?;
                    if buf != want {
                        return Err(format!("read_exact_at {pos}: wrong data"));
                    }
                    Ok(())
                }) as Check
            })
            .collect();
        run_all(reads).await;

        // A batch on the full disk.
        let fresh = 32 * MIB as u64;
        let (p0, _) = acked[0].clone();
        let (p1, _) = acked[1].clone();
        let mut batch = Batch::new();
        batch
            .write_at(&file, pattern_bytes(fresh, PIECE), fresh)
            .read_at(&file, Vec::with_capacity(PIECE), p0)
            .write_at(&file, pattern_bytes(NEW + p1, PIECE), p1)
            .write_at(&file, pattern_bytes(fresh + 1, 1), fresh + MIB as u64);
        let mut results = batch.submit().await.into_iter();
        let (res, _) = results.next().expect("result 0");
        expect_errno(res, libc::ENOSPC, "batch write at a new range");
        let (res, buf) = results.next().expect("result 1");
        assert_eq!(res.expect("batch read"), PIECE);
        assert_eq!(buf, acked[0].1, "batch read of an acknowledged piece");
        let (res, _) = results.next().expect("result 2");
        assert_eq!(res.expect("batch overwrite in place"), PIECE);
        acked[1].1 = pattern_bytes(NEW + p1, PIECE);
        let (res, _) = results.next().expect("result 3");
        expect_errno(res, libc::ENOSPC, "batch write of 1 byte at a new page");
        check_acked(&acked);

        // Space again: a write after the fault works.
        std::fs::remove_file(&filler).expect("remove the filler");
        let (res, _) = file.write_all_at(pattern_bytes(fresh, PIECE), fresh).await;
        res.expect("write_all_at once space is free");
        acked.push((fresh, pattern_bytes(fresh, PIECE)));
        file.sync_all().await.expect("sync_all");
        check_acked(&acked);
        let rounds = bg.finish().await;
        eprintln!("background: {rounds} rounds");
        drop(file);
        idle().await;
    })
    .await;
    drop(fs);
}

/// `AsyncWrite` onto a disk that fills up, with `sync_all` every 256 KiB: the
/// error is `ENOSPC`; while the data does not fit, neither `sync_all` nor
/// `flush` reports success; every byte a successful `sync_all` acknowledged is
/// in the file; once space is freed, `sync_all` writes every accepted byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_stream_sync_all_acknowledges_only_what_is_in_the_file() {
    // The AIO path under test: no page-cache fast path (a stalled read must
    // stall glibc\'s worker, not this thread).
    aio_only();
    const NAME: &str = "enospc_stream_sync_all_acknowledges_only_what_is_in_the_file";
    let _serial = serial();
    let Some(fs) = Tmpfs::mount("2m", NAME) else {
        return;
    };
    bounded(NAME, 60, async {
        let filler = fs.join("filler");
        std::fs::write(&filler, vec![0xAA; MIB]).expect("write the filler");
        let path = fs.join("data");
        let bg = Background::start().await;
        let mut file = File::create(&path).await.expect("create");
        file.set_max_buf_size(64 * KIB);
        let data = pattern_bytes(0, 4 * MIB);
        // Bytes `write` accepted; bytes a successful `sync_all` acknowledged.
        let mut accepted = 0;
        let mut synced = 0;
        let mut error = None;
        'outer: for (i, part) in data.chunks(32 * KIB).enumerate() {
            let mut done = 0;
            while done < part.len() {
                match file.write(&part[done..]).await {
                    Ok(0) => panic!("write accepted 0 bytes"),
                    Ok(n) => done += n,
                    Err(e) => {
                        accepted += done;
                        error = Some(("write", e));
                        break 'outer;
                    }
                }
            }
            accepted += done;
            if i % 8 == 7 {
                match file.sync_all().await {
                    Ok(()) => synced = accepted,
                    Err(e) => {
                        error = Some(("sync_all", e));
                        break;
                    }
                }
            }
        }
        let (what, e) = error.expect("4 MiB fit on a 2 MiB tmpfs holding 1 MiB");
        eprintln!("disk full: {what} failed ({e}); {accepted} bytes accepted, {synced} synced");
        assert_errno(&e, libc::ENOSPC, what);
        assert!(synced > 0, "no sync_all succeeded before the disk was full");

        for attempt in 0..2 {
            expect_errno(
                file.sync_all().await,
                libc::ENOSPC,
                &format!("sync_all #{attempt} while the data does not fit"),
            );
            expect_errno(
                file.flush().await,
                libc::ENOSPC,
                &format!("flush #{attempt} while the data does not fit"),
            );
        }
        let content = std::fs::read(&path).expect("read back");
        assert!(
            content.len() >= synced && content[..synced] == data[..synced],
            "the {synced} bytes sync_all acknowledged are not intact ({} in the file)",
            content.len()
        );
        assert!(content.len() <= accepted, "more in the file than accepted");

        std::fs::remove_file(&filler).expect("remove the filler");
        file.sync_all().await.expect("sync_all once space is free");
        let content = std::fs::read(&path).expect("read back");
        assert!(
            content == data[..accepted],
            "after space was freed: {} bytes in the file, {accepted} accepted",
            content.len()
        );
        file.write_all(b"after")
            .await
            .expect("write after the fault");
        file.sync_all().await.expect("sync_all after the fault");
        assert_eq!(
            file_bytes(&path, accepted as u64, 5),
            b"after",
            "a write after the fault"
        );
        bg.finish().await;
        drop(file);
        idle().await;
    })
    .await;
    drop(fs);
}

// ----- EBADF -----

/// Reads on a write-only descriptor, 64 of them at once and interleaved with 64
/// writes on the same descriptor (glibc runs them in one queue): each read
/// fails with `EBADF` and gives its buffer back, each write lands. The same in
/// a `Batch` and through `AsyncRead`. An `O_PATH` descriptor can neither read,
/// write nor sync: `EBADF` for each, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebadf_reads_on_write_only_and_o_path_descriptors_fail_alone() {
    // The AIO path under test: no page-cache fast path (a stalled read must
    // stall glibc\'s worker, not this thread).
    aio_only();
    const NAME: &str = "ebadf_reads_on_write_only_and_o_path_descriptors_fail_alone";
    const BLOCK: usize = 4096;
    let _serial = serial();
    bounded(NAME, 60, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fixture(dir.path(), "data", 64 * 2 * BLOCK + BLOCK);
        let bg = Background::start().await;
        let wo = Arc::new(
            File::options()
                .write(true)
                .open(&path)
                .await
                .expect("open write-only"),
        );
        let checks = (0..128u64)
            .map(|k| {
                let wo = Arc::clone(&wo);
                let pos = k * BLOCK as u64;
                Box::pin(async move {
                    match k % 4 {
                        0 => {
                            let (res, buf) = wo.read_at(Vec::with_capacity(BLOCK), pos).await;
                            if !buf.is_empty() || buf.capacity() < BLOCK {
                                return Err(format!("read_at {pos}: buffer not back as it was"));
                            }
                            check_errno(res, libc::EBADF, &format!("read_at {pos}"))
                        }
                        2 => {
                            let (res, _) = wo.read_exact_at(vec![0; BLOCK], pos).await;
                            check_errno(res, libc::EBADF, &format!("read_exact_at {pos}"))
                        }
                        _ => {
                            let (res, _) =
                                wo.write_all_at(pattern_bytes(NEW + pos, BLOCK), pos).await;
                            res.map_err(|e| format!("write_all_at {pos}: {e}"))
                        }
                    }
                }) as Check
            })
            .collect();
        run_all(checks).await;

        let end = 128 * BLOCK as u64;
        let mut batch = Batch::new();
        batch.read_at(&wo, Vec::with_capacity(BLOCK), 0).write_at(
            &wo,
            pattern_bytes(NEW + end, BLOCK),
            end,
        );
        let mut results = batch.submit().await.into_iter();
        let (res, _) = results.next().expect("result 0");
        expect_errno(res, libc::EBADF, "batch read on a write-only descriptor");
        let (res, _) = results.next().expect("result 1");
        assert_eq!(res.expect("batch write beside it"), BLOCK);

        let mut stream = File::options()
            .write(true)
            .open(&path)
            .await
            .expect("open write-only");
        let mut buf = [0u8; 100];
        expect_errno(stream.read(&mut buf).await, libc::EBADF, "AsyncRead");
        expect_errno(stream.read(&mut buf).await, libc::EBADF, "AsyncRead again");

        let o_path = File::from_std(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(&path)
                .expect("open O_PATH"),
        );
        let (res, _) = o_path.read_at(Vec::with_capacity(BLOCK), 0).await;
        expect_errno(res, libc::EBADF, "read_at on O_PATH");
        let (res, _) = o_path.write_at(b"never".to_vec(), 0).await;
        expect_errno(res, libc::EBADF, "write_at on O_PATH");
        let (res, _) = o_path.write_all_at(b"never".to_vec(), BLOCK as u64).await;
        expect_errno(res, libc::EBADF, "write_all_at on O_PATH");
        let mut batch = Batch::new();
        batch
            .read_at(&o_path, Vec::with_capacity(BLOCK), 0)
            .write_at(&o_path, b"never".to_vec(), 0)
            .write_at(&wo, b"beside".to_vec(), 2);
        let mut results = batch.submit().await.into_iter().map(|(res, _)| res);
        expect_errno(next(&mut results), libc::EBADF, "batch read on O_PATH");
        expect_errno(next(&mut results), libc::EBADF, "batch write on O_PATH");
        assert_eq!(next(&mut results).expect("batch write beside them"), 6);
        expect_errno(o_path.sync_all().await, libc::EBADF, "sync_all on O_PATH");

        // After the faults: the same descriptors and a fresh one work.
        let (res, _) = wo.write_all_at(b"after".to_vec(), 3).await;
        res.expect("write_all_at after the faults");
        wo.sync_all().await.expect("sync_all after the faults");
        let reader = File::open(&path).await.expect("open");
        let (res, got) = reader.read_exact_at(vec![0; 129 * BLOCK], 0).await;
        res.expect("read the file back");
        let mut want = pattern_bytes(0, 129 * BLOCK);
        for k in 0..128u64 {
            if k % 2 == 1 {
                let pos = (k * BLOCK as u64) as usize;
                want[pos..pos + BLOCK].copy_from_slice(&pattern_bytes(NEW + pos as u64, BLOCK));
            }
        }
        want[end as usize..end as usize + BLOCK].copy_from_slice(&pattern_bytes(NEW + end, BLOCK));
        want[2..8].copy_from_slice(b"beside");
        want[3..8].copy_from_slice(b"after");
        assert!(
            got == want,
            "the file is not what the acknowledged writes made it"
        );
        assert_eq!(
            std::fs::metadata(&path).expect("metadata").len(),
            129 * BLOCK as u64
        );
        bg.finish().await;
        drop((wo, stream, o_path, reader));
        idle().await;
    })
    .await;
}

/// The next result of a batch's results.
#[track_caller]
fn next(results: &mut impl Iterator<Item = io::Result<usize>>) -> io::Result<usize> {
    results.next().expect("a result per request")
}

/// Writes on a read-only descriptor, at once and interleaved with reads on the
/// same descriptor: each write fails with `EBADF` and gives its buffer back,
/// each read returns the right bytes. In a `Batch` the same. Through
/// `AsyncWrite` the bytes are accepted but `flush`, `shutdown` and `sync_all`
/// report `EBADF`, again and again, never success. The file never changes;
/// `sync_all` on a clean read-only file and a write through another descriptor
/// work afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_to_a_read_only_descriptor_is_ebadf_and_changes_nothing() {
    // The AIO path under test: no page-cache fast path (a stalled read must
    // stall glibc\'s worker, not this thread).
    aio_only();
    const NAME: &str = "write_to_a_read_only_descriptor_is_ebadf_and_changes_nothing";
    const BLOCK: usize = 4096;
    const LEN: usize = 96 * BLOCK;
    let _serial = serial();
    bounded(NAME, 60, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fixture(dir.path(), "data", LEN);
        let bg = Background::start().await;
        let ro = Arc::new(File::open(&path).await.expect("open read-only"));
        let checks = (0..96u64)
            .map(|k| {
                let ro = Arc::clone(&ro);
                let pos = k * BLOCK as u64;
                Box::pin(async move {
                    match k % 3 {
                        0 => {
                            let data = pattern_bytes(NEW + pos, BLOCK);
                            let (res, buf) = ro.write_at(data.clone(), pos).await;
                            if buf != data {
                                return Err(format!("write_at {pos}: buffer not back as it was"));
                            }
                            check_errno(res, libc::EBADF, &format!("write_at {pos}"))
                        }
                        1 => {
                            let (res, _) =
                                ro.write_all_at(pattern_bytes(NEW + pos, BLOCK), pos).await;
                            check_errno(res, libc::EBADF, &format!("write_all_at {pos}"))
                        }
                        _ => {
                            let (res, buf) = ro.read_at(Vec::with_capacity(BLOCK), pos).await;
                            match res {
                                Ok(BLOCK) if buf == pattern_bytes(pos, BLOCK) => Ok(()),
                                Ok(BLOCK) => Err(format!("read_at {pos}: wrong data")),
                                other => Err(format!("read_at {pos}: {other:?}")),
                            }
                        }
                    }
                }) as Check
            })
            .collect();
        run_all(checks).await;

        let mut batch = Batch::new();
        batch.write_at(&ro, pattern_bytes(NEW, BLOCK), 0).read_at(
            &ro,
            Vec::with_capacity(BLOCK),
            BLOCK as u64,
        );
        let mut results = batch.submit().await.into_iter();
        let (res, _) = results.next().expect("result 0");
        expect_errno(res, libc::EBADF, "batch write on a read-only descriptor");
        let (res, buf) = results.next().expect("result 1");
        assert_eq!(res.expect("batch read beside it"), BLOCK);
        assert_eq!(buf, pattern_bytes(BLOCK as u64, BLOCK));

        let mut stream = File::open(&path).await.expect("open read-only");
        match stream.write_all(b"never lands").await {
            Ok(()) => {}
            Err(e) => assert_errno(&e, libc::EBADF, "AsyncWrite"),
        }
        for attempt in 0..2 {
            expect_errno(
                stream.flush().await,
                libc::EBADF,
                &format!("flush #{attempt}"),
            );
            expect_errno(
                stream.sync_all().await,
                libc::EBADF,
                &format!("sync_all #{attempt}"),
            );
            expect_errno(
                stream.shutdown().await,
                libc::EBADF,
                &format!("shutdown #{attempt}"),
            );
        }

        // After the faults.
        ro.sync_all()
            .await
            .expect("sync_all on a clean read-only file");
        let (res, buf) = ro.read_exact_at(vec![0; LEN], 0).await;
        res.expect("read_exact_at after the faults");
        assert!(buf == pattern_bytes(0, LEN), "the read-only file changed");
        let writer = open_rw(&path).await;
        let (res, _) = writer.write_all_at(b"after".to_vec(), 7).await;
        res.expect("write_all_at through a writable descriptor");
        writer.sync_all().await.expect("sync_all");
        let mut want = pattern_bytes(0, LEN);
        want[7..12].copy_from_slice(b"after");
        assert!(std::fs::read(&path).expect("read back") == want);
        bg.finish().await;
        // The stream's failed write goes out (and fails) in the background.
        drop((ro, stream, writer));
        idle().await;
        assert!(std::fs::read(&path).expect("read back") == want);
    })
    .await;
}

// ----- truncation -----

/// Whether `buf`, read at `pos` of `image` (the file before it was truncated
/// to `new_len`), is right: before `new_len` exactly the image; past it the
/// image or zeros (a read racing the truncation may see the tail of the last
/// page being cleared), never bytes from anywhere else.
fn truncated_ok(image: &[u8], buf: &[u8], pos: u64, new_len: u64) -> bool {
    let want = &image[pos as usize..pos as usize + buf.len()];
    buf == want
        || buf
            .iter()
            .zip(want)
            .enumerate()
            .all(|(i, (&b, &w))| b == w || (pos + i as u64 >= new_len && b == 0))
}

/// A file truncated from 8 MiB to 2 MiB + 1000 while 20,000 positioned
/// reads, 500 `read_exact_at`s, a `Batch` of 1,000 reads and an `AsyncRead`
/// reader (to the end) are made and not yet run: they wait on their
/// descriptors behind a read stalled on a `userfaultfd` page, and run once the
/// truncation is done. No error but `UnexpectedEof` from a `read_exact_at`
/// that reaches past the new end; every count and byte is what the file held;
/// the reader gets at least the new length. Meanwhile the background load on
/// another file runs. Afterwards every kind of read sees exactly the new end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_truncated_while_being_read_gives_short_reads_never_wrong_bytes() {
    // The AIO path under test: no page-cache fast path (a stalled read must
    // stall glibc\'s worker, not this thread).
    aio_only();
    const NAME: &str = "file_truncated_while_being_read_gives_short_reads_never_wrong_bytes";
    const LEN: u64 = 8 * MIB as u64;
    const NEW_LEN: u64 = 2 * MIB as u64 + 1000;
    const BLOCK: usize = 4096;
    let _serial = serial();
    bounded(NAME, 60, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fixture(dir.path(), "data", LEN as usize);
        let image = Arc::new(pattern_bytes(0, LEN as usize));
        let bg = Background::start().await;
        let file = Arc::new(File::open(&path).await.expect("open"));
        // Every positioned read on the file's own descriptor (behind the stall).
        file.set_fd_pool(1);
        let mut reader = File::open(&path).await.expect("open the reader");

        let stall = Stall::new(2);
        let mut stalled = Vec::new();
        if let Some(stall) = &stall {
            for (i, f) in [&*file, &reader].into_iter().enumerate() {
                let mut read = Box::pin(f.read_at(stall.buf(i), 0));
                assert!(
                    futures::poll!(&mut read).is_pending(),
                    "the stalling read finished"
                );
                stalled.push(read);
            }
            // Both glibc workers are stuck in the kernel's copy to the pages.
            stall.wait_stalled(2);
        }
        if stall.is_none() {
            eprintln!(
                "{NAME}: no userfaultfd here; the reads race the truncation without being held"
            );
        }

        let short = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut rng = Rng::new(6);
        let mut checks: Vec<Check> = Vec::new();
        for _ in 0..20_000 {
            let pos = rng.below(LEN - BLOCK as u64 + 1);
            let (file, short, image) = (Arc::clone(&file), Arc::clone(&short), Arc::clone(&image));
            checks.push(Box::pin(async move {
                let (res, buf) = file.read_at(Vec::with_capacity(BLOCK), pos).await;
                let n = res.map_err(|e| format!("read_at {pos}: {e}"))?;
                if n != buf.len() || n > BLOCK || (pos + (n as u64) < NEW_LEN && n < BLOCK) {
                    return Err(format!("read_at {pos}: count {n}, buffer {}", buf.len()));
                }
                if n < BLOCK {
                    short.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if !truncated_ok(&image, &buf, pos, NEW_LEN) {
                    return Err(format!("read_at {pos}: wrong bytes"));
                }
                Ok(())
            }));
        }
        for _ in 0..500 {
            let len = 16 * KIB;
            let pos = rng.below(LEN - len as u64 + 1);
            let (file, image) = (Arc::clone(&file), Arc::clone(&image));
            checks.push(Box::pin(async move {
                let (res, buf) = file.read_exact_at(vec![0; len], pos).await;
                match res {
                    Ok(()) if truncated_ok(&image, &buf, pos, NEW_LEN) => Ok(()),
                    Ok(()) => Err(format!("read_exact_at {pos}: wrong bytes")),
                    Err(e)
                        if e.kind() == ErrorKind::UnexpectedEof && pos + len as u64 > NEW_LEN =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(format!("read_exact_at {pos}: {e}")),
                }
            }));
        }
        let mut batch = Batch::new();
        let mut positions = Vec::new();
        for _ in 0..1000 {
            let pos = rng.below(LEN - BLOCK as u64 + 1);
            batch.read_at(&file, Vec::with_capacity(BLOCK), pos);
            positions.push(pos);
        }
        let batch_image = Arc::clone(&image);
        checks.push(Box::pin(async move {
            for ((res, buf), pos) in batch.submit().await.into_iter().zip(positions) {
                let n = res.map_err(|e| format!("batch read {pos}: {e}"))?;
                if n != buf.len() || (pos + (n as u64) < NEW_LEN && n < BLOCK) {
                    return Err(format!("batch read {pos}: count {n}"));
                }
                if !truncated_ok(&batch_image, &buf, pos, NEW_LEN) {
                    return Err(format!("batch read {pos}: wrong bytes"));
                }
            }
            Ok(())
        }));
        let reader_image = Arc::clone(&image);
        checks.push(Box::pin(async move {
            let mut out = Vec::new();
            reader
                .read_to_end(&mut out)
                .await
                .map_err(|e| format!("AsyncRead to the end: {e}"))?;
            let n = out.len() as u64;
            if !(NEW_LEN..=LEN).contains(&n) {
                return Err(format!("AsyncRead got {n} bytes"));
            }
            if !truncated_ok(&reader_image, &out, 0, NEW_LEN) {
                return Err("AsyncRead: wrong bytes".to_string());
            }
            Ok(())
        }));

        // Every request is made (submitted, or queued under the in-flight
        // limit) by its first poll.
        let mut failures = Vec::new();
        let mut pending = FuturesUnordered::new();
        for mut check in checks {
            match futures::poll!(&mut check) {
                std::task::Poll::Ready(Err(e)) => failures.push(e),
                std::task::Poll::Ready(Ok(())) => {}
                std::task::Poll::Pending => pending.push(check),
            }
        }
        let at_truncation = aiofs::stats();
        let truncator = open_rw(&path).await;
        truncator.set_len(NEW_LEN).await.expect("set_len");
        if let Some(stall) = &stall {
            stall.release();
        }
        for read in stalled {
            let (res, buf) = read.await;
            let n = res.expect("the stalled read");
            assert!(
                n == buf.bytes().len() && truncated_ok(&image, buf.bytes(), 0, NEW_LEN),
                "the stalled read: {n} bytes, wrong"
            );
        }
        while let Some(res) = pending.next().await {
            if let Err(e) = res {
                failures.push(e);
            }
        }
        let short = short.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "{} in flight and {} queued at the truncation; {short} of 20000 read_at results short",
            at_truncation.in_flight, at_truncation.queued
        );
        assert!(
            failures.is_empty(),
            "{} failures: {:#?}",
            failures.len(),
            &failures[..failures.len().min(10)]
        );
        if stall.is_some() {
            assert!(
                at_truncation.in_flight + at_truncation.queued >= 20_000,
                "the reads were not held behind the stall: {at_truncation:?}"
            );
            assert!(short > 0, "no read_at saw the truncation");
        }

        // Afterwards, the new end, exactly.
        assert_eq!(file.metadata().await.expect("metadata").len(), NEW_LEN);
        let (res, buf) = file.read_at(Vec::with_capacity(BLOCK), NEW_LEN - 100).await;
        assert_eq!(res.expect("read_at across the end"), 100);
        assert_eq!(buf, pattern_bytes(NEW_LEN - 100, 100));
        let (res, _) = file.read_at(Vec::with_capacity(BLOCK), NEW_LEN).await;
        assert_eq!(res.expect("read_at at the end"), 0);
        let (res, _) = file.read_at(Vec::with_capacity(BLOCK), LEN - 100).await;
        assert_eq!(res.expect("read_at at the old end"), 0);
        let (res, _) = file.read_exact_at(vec![0; BLOCK], NEW_LEN - 100).await;
        assert_eq!(
            res.expect_err("read_exact_at across the end").kind(),
            ErrorKind::UnexpectedEof
        );
        let mut batch = Batch::new();
        batch
            .read_at(&file, Vec::with_capacity(BLOCK), NEW_LEN - 100)
            .read_at(&file, Vec::with_capacity(BLOCK), NEW_LEN + 100);
        let mut results = batch.submit().await.into_iter().map(|(res, _)| res);
        assert_eq!(next(&mut results).expect("batch read across the end"), 100);
        assert_eq!(next(&mut results).expect("batch read past the end"), 0);
        let mut out = Vec::new();
        File::open(&path)
            .await
            .expect("open")
            .read_to_end(&mut out)
            .await
            .expect("AsyncRead after the truncation");
        assert!(
            out[..] == image[..NEW_LEN as usize],
            "AsyncRead after the truncation: {} bytes",
            out.len()
        );
        bg.finish().await;
        drop((file, truncator));
        idle().await;
    })
    .await;
}

// ----- O_DIRECT -----

/// Offsets, lengths and buffer addresses that any `O_DIRECT` alignment accepts.
const ALIGN: usize = 4096;

/// Opens `path` read-write with `O_DIRECT`, or `None` (saying why) if the file
/// system refuses it.
async fn open_direct(path: &Path) -> Option<File> {
    let res = OpenOptions::new()
        .read(true)
        .write(true)
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

fn aligned(data: &[u8]) -> AlignedBuf {
    let mut buf = AlignedBuf::new(ALIGN, data.len().max(1));
    buf.extend_from_slice(data);
    buf
}

/// `res` is a refusal for misalignment: `InvalidInput`, saying what to align.
fn check_misaligned<T: std::fmt::Debug>(res: io::Result<T>, what: &str) -> Result<(), String> {
    match res {
        Err(e) if e.kind() == ErrorKind::InvalidInput && e.to_string().contains("align") => Ok(()),
        other => Err(format!(
            "{what}: want InvalidInput about alignment, got {other:?}"
        )),
    }
}

/// Misaligned requests on an `O_DIRECT` file, made at once among 96 aligned
/// reads and writes on the same file: each misaligned one fails alone with
/// `InvalidInput`, every aligned one completes with verified data. In a
/// `Batch` the same. Through `AsyncWrite` the misaligned tail is never
/// reported written. The file holds exactly the acknowledged writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o_direct_misaligned_requests_fail_alone_amid_aligned_ones() {
    // The AIO path under test: no page-cache fast path (a stalled read must
    // stall glibc\'s worker, not this thread).
    aio_only();
    const NAME: &str = "o_direct_misaligned_requests_fail_alone_amid_aligned_ones";
    const LEN: usize = 256 * ALIGN;
    const WRITES_AT: u64 = 128 * ALIGN as u64;
    let _serial = serial();
    bounded(NAME, 60, async {
        // Not /tmp, which may be a tmpfs (no O_DIRECT there).
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let path = fixture(dir.path(), "data", LEN);
        let Some(file) = open_direct(&path).await else {
            return;
        };
        let file = Arc::new(file);
        let bg = Background::start().await;
        let mut checks: Vec<Check> = Vec::new();
        for k in 0..96u64 {
            let aligned_file = Arc::clone(&file);
            checks.push(Box::pin(async move {
                let file = aligned_file;
                if k % 3 == 2 {
                    let pos = WRITES_AT + k * ALIGN as u64;
                    let (res, _) = file
                        .write_at(aligned(&pattern_bytes(NEW + pos, ALIGN)), pos)
                        .await;
                    match res {
                        Ok(ALIGN) => Ok(()),
                        other => Err(format!("aligned write_at {pos}: {other:?}")),
                    }
                } else {
                    let pos = k * ALIGN as u64;
                    let (res, buf) = file.read_at(AlignedBuf::new(ALIGN, ALIGN), pos).await;
                    match res {
                        Ok(ALIGN) if buf[..] == pattern_bytes(pos, ALIGN)[..] => Ok(()),
                        other => Err(format!("aligned read_at {pos}: {other:?}")),
                    }
                }
            }));
            // And a misaligned request of some kind beside each.
            let file = Arc::clone(&file);
            checks.push(Box::pin(async move {
                let pos = k * ALIGN as u64;
                match k % 6 {
                    0 => check_misaligned(
                        file.read_at(AlignedBuf::new(ALIGN, ALIGN), pos + 100)
                            .await
                            .0,
                        "read_at at an odd offset",
                    ),
                    1 => check_misaligned(
                        file.read_at(AlignedBuf::new(ALIGN, 100), pos).await.0,
                        "read_at of an odd length",
                    ),
                    2 => check_misaligned(
                        file.read_exact_at(AlignedBuf::new(ALIGN, ALIGN), pos + 1)
                            .await
                            .0,
                        "read_exact_at at an odd offset",
                    ),
                    3 => check_misaligned(
                        file.write_at(aligned(&[0xEE; 100]), pos).await.0,
                        "write_at of an odd length",
                    ),
                    4 => check_misaligned(
                        file.write_at(aligned(&[0xEE; ALIGN]), pos + 512 + 1)
                            .await
                            .0,
                        "write_at at an odd offset",
                    ),
                    _ => check_misaligned(
                        file.write_all_at(aligned(&[0xEE; 100]), pos).await.0,
                        "write_all_at of an odd length",
                    ),
                }
            }));
        }
        run_all(checks).await;

        let mut batch = Batch::new();
        batch
            .read_at(&file, AlignedBuf::new(ALIGN, ALIGN), 0)
            .write_at(&file, aligned(&[0xEE; 100]), 0)
            .write_at(
                &file,
                aligned(&pattern_bytes(NEW + WRITES_AT, ALIGN)),
                WRITES_AT,
            )
            .read_at(&file, AlignedBuf::new(ALIGN, ALIGN), 7);
        let results = batch.submit().await;
        assert!(
            results[0].1[..] == pattern_bytes(0, ALIGN)[..],
            "aligned batch read"
        );
        let mut results = results.into_iter().map(|(res, _)| res);
        assert_eq!(next(&mut results).expect("aligned batch read"), ALIGN);
        check_misaligned(next(&mut results), "batch write of an odd length").unwrap();
        assert_eq!(next(&mut results).expect("aligned batch write"), ALIGN);
        check_misaligned(next(&mut results), "batch read at an odd offset").unwrap();

        // AsyncWrite of an odd length: accepted into the buffer at most, never
        // reported written.
        let mut stream = open_direct(&path).await.expect("O_DIRECT worked above");
        if let Err(e) = stream.write_all(&[0xEE; 100]).await {
            check_misaligned(Err::<(), _>(e), "AsyncWrite").unwrap();
        }
        for attempt in 0..2 {
            check_misaligned(stream.flush().await, &format!("flush #{attempt}")).unwrap();
        }
        drop(stream);

        // After the faults: aligned requests still work.
        let (res, buf) = file.read_exact_at(AlignedBuf::new(ALIGN, LEN), 0).await;
        res.expect("aligned read of the whole file");
        let mut want = pattern_bytes(0, LEN);
        for k in (0..96u64).filter(|k| k % 3 == 2).chain([0]) {
            let pos = (WRITES_AT + k * ALIGN as u64) as usize;
            want[pos..pos + ALIGN].copy_from_slice(&pattern_bytes(NEW + pos as u64, ALIGN));
        }
        assert!(
            buf[..] == want[..],
            "the file is not what the acknowledged writes made it"
        );
        bg.finish().await;
        drop(file);
        idle().await;
        assert!(std::fs::read(&path).expect("read back") == want);
    })
    .await;
}
