//! `EFBIG`: writes past `RLIMIT_FSIZE`, with `SIGXFSZ` ignored (its default
//! action would kill the process), through positioned writes, a `Batch`,
//! `AsyncWrite` + `flush` / `sync_all`, and `O_APPEND`.
//!
//! Each write past the limit fails with `EFBIG` (`ErrorKind::FileTooLarge`),
//! alone: a write that crosses the limit reports the short count that fits,
//! the requests beside it (below the limit, and a background load on another
//! file) complete with verified data, a request after the fault works, and
//! every acknowledged byte is read back intact.
//!
//! The limit is 1 TiB, reached with sparse files: the test harness's own
//! output never comes near it. Process-wide state (a resource limit and a
//! signal disposition): its own binary, `harness = false`, so that `main` sets
//! both before any thread exists. The notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::io::{self, ErrorKind, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use aiofs::{Batch, File};
use support::{Background, bounded, idle, open_rw, pattern_bytes};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

const KIB: usize = 1024;
/// `RLIMIT_FSIZE`: the largest file this process may make.
const LIMIT: u64 = 1 << 40;
/// Data of a second generation of writes comes from here in the pattern.
const NEW: u64 = 1 << 50;

#[track_caller]
fn assert_efbig(e: &io::Error, what: &str) {
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EFBIG),
        "{what}: want EFBIG, got {e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::FileTooLarge, "{what}");
}

#[track_caller]
fn expect_efbig<T: std::fmt::Debug>(res: io::Result<T>, what: &str) {
    match res {
        Ok(v) => panic!("{what}: succeeded ({v:?}) past the file size limit"),
        Err(e) => assert_efbig(&e, what),
    }
}

/// `len` bytes of `path` at `pos`, read with `std`.
fn std_read(path: &Path, pos: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).expect("open");
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, pos).expect("std read");
    buf
}

type Test = fn(&tokio::runtime::Runtime);

const TESTS: &[(&str, Test)] = &[
    (
        "efbig_positioned_and_batch_writes_fail_alone_past_the_limit",
        efbig_positioned_and_batch_writes_fail_alone_past_the_limit,
    ),
    (
        "efbig_stream_flush_and_sync_all_report_it_and_keep_what_they_acknowledged",
        efbig_stream_flush_and_sync_all_report_it_and_keep_what_they_acknowledged,
    ),
    (
        "efbig_append_at_the_limit_fails_and_appends_nothing",
        efbig_append_at_the_limit_fails_and_appends_nothing,
    ),
];

// `harness = false`: the limit and the signal disposition are set before any
// other thread exists (every thread shares them anyway).
fn main() {
    // SAFETY: plain libc calls on valid, local arguments, before any thread.
    unsafe {
        assert_ne!(
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN),
            libc::SIG_ERR,
            "ignore SIGXFSZ"
        );
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = LIMIT;
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim),
            0,
            "setrlimit(RLIMIT_FSIZE): {}",
            io::Error::last_os_error()
        );
    }
    // Like the libtest harness: names not starting with `-` filter the tests.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut passed = 0;
    for (name, test) in TESTS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        test(&rt);
        println!("test {name} ... ok");
        passed += 1;
    }
    println!("\ntest result: ok. {passed} passed; 0 failed");
}

/// At once, on one descriptor: a write that crosses the limit (a short count:
/// what fits), writes at and past it (`EFBIG`), and 64 writes below it; then a
/// `write_all_at` that crosses it (`EFBIG`, after writing what fits) and a
/// `Batch` mixing writes past the limit (`EFBIG`, alone) with writes and reads
/// below it. `sync_all` succeeds, and every acknowledged byte is there.
fn efbig_positioned_and_batch_writes_fail_alone_past_the_limit(rt: &tokio::runtime::Runtime) {
    rt.block_on(bounded("efbig positioned and batch", 60, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        std::fs::write(&path, b"").expect("create");
        let file = Arc::new(open_rw(&path).await);
        let bg = Background::start().await;
        const BLOCK: usize = 4 * KIB;
        let below = LIMIT - 1024 * KIB as u64;

        let crossing = LIMIT - BLOCK as u64;
        let mut tasks = Vec::new();
        let spawn_write = |data: Vec<u8>, pos: u64| {
            let file = Arc::clone(&file);
            tokio::spawn(async move { file.write_at(data, pos).await })
        };
        tasks.push(spawn_write(pattern_bytes(crossing, 2 * BLOCK), crossing));
        tasks.push(spawn_write(pattern_bytes(LIMIT, BLOCK), LIMIT));
        tasks.push(spawn_write(pattern_bytes(LIMIT + 1, 1), LIMIT + (1 << 20)));
        for k in 0..64u64 {
            let pos = below + k * 2 * BLOCK as u64;
            tasks.push(spawn_write(pattern_bytes(pos, BLOCK), pos));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("write task").0);
        }
        let mut results = results.into_iter();
        let n = results
            .next()
            .expect("result")
            .expect("write_at across the limit: the part that fits");
        assert_eq!(n, BLOCK, "write_at across the limit writes up to it");
        expect_efbig(results.next().expect("result"), "write_at at the limit");
        expect_efbig(results.next().expect("result"), "write_at past the limit");
        for (k, res) in results.enumerate() {
            assert_eq!(res.expect("write_at below the limit"), BLOCK, "write {k}");
        }
        assert_eq!(std::fs::metadata(&path).expect("metadata").len(), LIMIT);

        // write_all_at across the limit: EFBIG once what fits is written.
        let (res, buf) = file
            .write_all_at(pattern_bytes(NEW, 2 * BLOCK), crossing + BLOCK as u64 / 2)
            .await;
        expect_efbig(res, "write_all_at across the limit");
        assert_eq!(buf.len(), 2 * BLOCK, "the buffer comes back whole");

        let mut batch = Batch::new();
        batch
            .write_at(&file, pattern_bytes(LIMIT, BLOCK), LIMIT)
            .write_at(&file, pattern_bytes(NEW + below, BLOCK), below)
            .read_at(&file, Vec::with_capacity(BLOCK), below + 2 * BLOCK as u64)
            .write_at(&file, pattern_bytes(LIMIT + 7, 1), LIMIT + 7);
        let results = batch.submit().await;
        assert_eq!(
            results[2].1,
            pattern_bytes(below + 2 * BLOCK as u64, BLOCK),
            "batch read below the limit"
        );
        let mut results = results.into_iter().map(|(res, _)| res);
        expect_efbig(results.next().expect("result"), "batch write at the limit");
        assert_eq!(
            results.next().expect("result").expect("batch write below"),
            BLOCK
        );
        assert_eq!(
            results.next().expect("result").expect("batch read below"),
            BLOCK
        );
        expect_efbig(
            results.next().expect("result"),
            "batch write past the limit",
        );

        file.sync_all().await.expect("sync_all");
        // Every acknowledged byte: the first half of what the crossing
        // write_at wrote (the second half was overwritten, in part, by the
        // failed write_all_at), the 64 writes below (the first one
        // overwritten by the batch).
        let (res, got) = file.read_exact_at(vec![0; BLOCK / 2], crossing).await;
        res.expect("read the crossing write back");
        assert_eq!(got, pattern_bytes(crossing, BLOCK / 2));
        assert_eq!(std_read(&path, crossing, BLOCK / 2), got);
        for k in 0..64u64 {
            let pos = below + k * 2 * BLOCK as u64;
            let want = if k == 0 {
                pattern_bytes(NEW + below, BLOCK)
            } else {
                pattern_bytes(pos, BLOCK)
            };
            let (res, got) = file.read_exact_at(vec![0; BLOCK], pos).await;
            res.expect("read back below the limit");
            assert!(got == want, "write {k} at {pos} is not intact");
            assert!(
                std_read(&path, pos, BLOCK) == want,
                "std: write {k} at {pos}"
            );
        }
        assert_eq!(std::fs::metadata(&path).expect("metadata").len(), LIMIT);
        bg.finish().await;
        drop(file);
        idle().await;
    }));
}

/// `AsyncWrite` from 200 KiB below the limit, `sync_all` every 64 KiB: the
/// error is `EFBIG`; after it, `flush`, `sync_all` and `shutdown` keep
/// reporting it (the data cannot be written); every byte a successful
/// `sync_all` acknowledged is in the file.
fn efbig_stream_flush_and_sync_all_report_it_and_keep_what_they_acknowledged(
    rt: &tokio::runtime::Runtime,
) {
    rt.block_on(bounded("efbig stream", 60, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        let bg = Background::start().await;
        let start = LIMIT - 200 * KIB as u64;
        let mut file = File::create(&path).await.expect("create");
        file.set_max_buf_size(64 * KIB);
        file.seek(SeekFrom::Start(start)).await.expect("seek");
        let data = pattern_bytes(start, 1024 * KIB);
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
            if i % 2 == 1 {
                match file.sync_all().await {
                    Ok(()) => synced = accepted,
                    Err(e) => {
                        error = Some(("sync_all", e));
                        break;
                    }
                }
            }
        }
        let (what, e) = error.expect("1 MiB written from 200 KiB below the limit");
        eprintln!(
            "past the limit: {what} failed ({e}); {accepted} bytes accepted, {synced} synced"
        );
        assert_efbig(&e, what);
        assert!(
            synced >= 128 * KIB,
            "only {synced} bytes synced before the limit"
        );
        assert!(synced <= 200 * KIB);
        for attempt in 0..2 {
            expect_efbig(file.flush().await, &format!("flush #{attempt}"));
            expect_efbig(file.sync_all().await, &format!("sync_all #{attempt}"));
            expect_efbig(file.shutdown().await, &format!("shutdown #{attempt}"));
        }
        let got = std_read(&path, start, synced);
        assert!(
            got == data[..synced],
            "the {synced} synced bytes are not intact"
        );
        let len = std::fs::metadata(&path).expect("metadata").len();
        assert!(len <= LIMIT, "the file is {len} bytes, past the limit");

        // A request after the fault, on another descriptor of the same file.
        let other = open_rw(&path).await;
        let (res, _) = other.write_all_at(b"after".to_vec(), 0).await;
        res.expect("write_all_at below the limit");
        other.sync_all().await.expect("sync_all");
        assert_eq!(std_read(&path, 0, 5), b"after");
        let (res, got) = other.read_exact_at(vec![0; synced], start).await;
        res.expect("read back");
        assert!(got == data[..synced]);
        bg.finish().await;
        // The failed write-behind goes out (and fails) in the background.
        drop((file, other));
        idle().await;
    }));
}

/// A file exactly at the limit: an `O_APPEND` write (positioned or through
/// `AsyncWrite`) fails with `EFBIG` and the file keeps its length.
fn efbig_append_at_the_limit_fails_and_appends_nothing(rt: &tokio::runtime::Runtime) {
    rt.block_on(bounded("efbig append", 60, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        std::fs::write(&path, b"head").expect("create");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(LIMIT)
            .expect("set_len to the limit");
        let bg = Background::start().await;
        let mut file = aiofs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await
            .expect("open for append");
        let (res, buf) = file.write_at(b"appended".to_vec(), 0).await;
        expect_efbig(res, "O_APPEND write_at at the limit");
        assert_eq!(buf, b"appended");
        let (res, _) = file.write_all_at(b"appended".to_vec(), 0).await;
        expect_efbig(res, "O_APPEND write_all_at at the limit");
        file.write_all(b"appended").await.ok();
        expect_efbig(file.flush().await, "O_APPEND flush at the limit");
        expect_efbig(file.flush().await, "O_APPEND flush again");
        assert_eq!(std::fs::metadata(&path).expect("metadata").len(), LIMIT);
        assert_eq!(std_read(&path, 0, 4), b"head");
        // After the fault: a positioned write on another descriptor.
        let other = open_rw(&path).await;
        let (res, _) = other.write_all_at(b"HEAD".to_vec(), 0).await;
        res.expect("write_all_at below the limit");
        assert_eq!(std_read(&path, 0, 4), b"HEAD");
        bg.finish().await;
        drop((file, other));
        idle().await;
        assert_eq!(std::fs::metadata(&path).expect("metadata").len(), LIMIT);
    }));
}
