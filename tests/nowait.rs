//! The page-cache fast path (`preadv2(RWF_NOWAIT)`): cached reads complete in
//! their first poll without AIO, misses (whole or partial) fall back to AIO
//! with the same result, large reads and `O_DIRECT` never try it, a filesystem
//! that refuses the flag is not asked again, and a loop of fast reads still
//! yields to the other tasks (Tokio's budget); `aiofs::read` of a cold small
//! file finishes in one blocking task, without AIO.

// The tests run one at a time (`serial`): they compare process-wide counters.
#![allow(clippy::await_holding_lock)]

mod support;

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aiofs::File;
use support::{pattern_bytes, serial, settle};

const LEN: usize = 1 << 20;

/// A file of `LEN` pattern bytes on a disk filesystem (not tmpfs), written,
/// synced, and dropped from the page cache.
fn uncached_file(dir: &Path) -> PathBuf {
    let path = dir.join("data");
    let f = std::fs::File::create(&path).unwrap();
    f.write_all_at(&pattern_bytes(0, LEN), 0).unwrap();
    f.sync_all().unwrap();
    evict(&f, 0, LEN);
    path
}

/// Drops `len` bytes at `pos` of a clean file from the page cache.
fn evict(f: &std::fs::File, pos: usize, len: usize) {
    // SAFETY: plain advice on an open descriptor.
    let ret = unsafe {
        libc::posix_fadvise(
            f.as_raw_fd(),
            pos as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        )
    };
    assert_eq!(ret, 0, "posix_fadvise");
}

/// A directory on a disk filesystem: Cargo's target tmpdir.
fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn delta(before: &aiofs::Stats) -> (u64, u64, u64) {
    let now = aiofs::stats();
    (
        now.nowait_reads - before.nowait_reads,
        now.nowait_misses - before.nowait_misses,
        now.submitted - before.submitted,
    )
}

#[tokio::test]
async fn a_cached_read_is_served_without_aio_and_a_miss_takes_aio() {
    let _serial = serial();
    let dir = disk_dir();
    let path = uncached_file(dir.path());
    let file = File::open(&path).await.unwrap();

    // Not cached: a miss, read with one AIO request. (Or a hit: the
    // `RWF_NOWAIT` read starts the read-ahead itself, and a fast VM disk that
    // its host caches can finish it before the read looks: seen in CI.)
    let before = aiofs::stats();
    let (res, buf) = file.read_at(Vec::with_capacity(4096), 8192).await;
    assert_eq!(res.unwrap(), 4096);
    assert_eq!(buf, pattern_bytes(8192, 4096));
    let first = delta(&before);
    assert!(
        first == (0, 1, 1) || first == (1, 0, 0),
        "a miss and one AIO request, or a hit: {first:?} {:?}",
        aiofs::stats()
    );

    // Now cached (the AIO read brought it in): served in the first poll.
    let before = aiofs::stats();
    let mut fut = std::pin::pin!(file.read_at(Vec::with_capacity(4096), 8192));
    let (res, buf) = match futures::poll!(fut.as_mut()) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("a cached read was not ready at its first poll"),
    };
    assert_eq!(res.unwrap(), 4096);
    assert_eq!(buf, pattern_bytes(8192, 4096));
    assert_eq!(delta(&before), (1, 0, 0), "a hit: {:?}", aiofs::stats());
}

#[tokio::test]
async fn a_partly_cached_read_gives_the_full_count() {
    let _serial = serial();
    let dir = disk_dir();
    let path = uncached_file(dir.path());
    // Bring the first 64 KiB of the range into the cache, not the rest: write
    // them again (a write caches its pages and starts no read-ahead, which a
    // read would, and whose pages in flight `POSIX_FADV_DONTNEED` skips).
    let std_file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std_file
        .write_all_at(&pattern_bytes(262_144, 65536), 262_144)
        .unwrap();
    let file = File::open(&path).await.unwrap();

    let before = aiofs::stats();
    let (res, buf) = file.read_at(Vec::with_capacity(100_000), 262_144).await;
    assert_eq!(
        res.unwrap(),
        100_000,
        "std's pread would give the full count"
    );
    assert_eq!(buf, pattern_bytes(262_144, 100_000));
    let (fast, missed, submitted) = delta(&before);
    // The cached 64 KiB were served on this thread. The rest took AIO, unless
    // the read-ahead that the miss itself started had already brought it in
    // when the fast path looked again.
    assert_eq!(fast, 1, "{:?}", aiofs::stats());
    assert_eq!(missed, submitted, "{:?}", aiofs::stats());
    assert!(missed <= 1, "{:?}", aiofs::stats());
}

#[tokio::test]
async fn reads_at_and_past_the_end_match_std() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small");
    std::fs::write(&path, pattern_bytes(0, 1000)).unwrap();
    let std_file = std::fs::File::open(&path).unwrap();
    let file = File::open(&path).await.unwrap();
    for (pos, cap) in [
        (0u64, 1000usize),
        (900, 4096),
        (1000, 10),
        (5000, 10),
        (0, 0),
    ] {
        let mut want = vec![0u8; cap];
        let n = std_file.read_at(&mut want, pos).unwrap();
        want.truncate(n);
        let (res, buf) = file.read_at(Vec::with_capacity(cap), pos).await;
        assert_eq!(res.unwrap(), n, "read_at({pos}, {cap})");
        assert_eq!(buf, want, "read_at({pos}, {cap})");
    }
    let (res, _) = file.read_exact_at(Vec::with_capacity(200), 900).await;
    assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_read_larger_than_nowait_max_takes_aio() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::write(&path, pattern_bytes(0, 1 << 20)).unwrap();
    let file = File::open(&path).await.unwrap();
    let before = aiofs::stats();
    // The default nowait_max is 128 KiB.
    let (res, buf) = file.read_at(Vec::with_capacity(512 << 10), 0).await;
    assert_eq!(res.unwrap(), 512 << 10);
    assert_eq!(buf, pattern_bytes(0, 512 << 10));
    assert_eq!(delta(&before), (0, 0, 1), "{:?}", aiofs::stats());
    let before = aiofs::stats();
    let (res, _) = file.read_at(Vec::with_capacity(128 << 10), 0).await;
    assert_eq!(res.unwrap(), 128 << 10);
    assert_eq!(delta(&before), (1, 0, 0), "{:?}", aiofs::stats());
}

#[tokio::test]
async fn a_filesystem_that_refuses_the_flag_is_not_asked_again() {
    let _serial = serial();
    // tmpfs (/dev/shm) and procfs refuse RWF_NOWAIT with EOPNOTSUPP on Linux 6.x.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        eprintln!("no /dev/shm: using /proc/self/status");
        tempfile::tempdir().unwrap()
    };
    let path = if shm.is_dir() {
        let p = dir.path().join("data");
        std::fs::write(&p, pattern_bytes(0, 65536)).unwrap();
        p
    } else {
        PathBuf::from("/proc/self/status")
    };
    let file = File::open(&path).await.unwrap();
    let before = aiofs::stats();
    let (res, _) = file.read_at(Vec::with_capacity(100), 0).await;
    assert_eq!(res.unwrap(), 100);
    assert_eq!(
        delta(&before),
        (0, 1, 1),
        "refused once: {:?}",
        aiofs::stats()
    );
    let before = aiofs::stats();
    for i in 0..10u64 {
        let (res, buf) = file.read_at(Vec::with_capacity(100), i * 100).await;
        assert_eq!(res.unwrap(), 100);
        if shm.is_dir() {
            assert_eq!(buf, pattern_bytes(i * 100, 100));
        }
    }
    assert_eq!(
        delta(&before),
        (0, 0, 10),
        "asked again after a refusal: {:?}",
        aiofs::stats()
    );
    settle().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_cached_reads_still_yields_to_other_tasks() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, 65536)).unwrap();
    let file = File::open(&path).await.unwrap();
    let (res, _) = file.read_at(Vec::with_capacity(4096), 0).await;
    res.unwrap();

    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let other = tokio::spawn(async move { flag.store(true, Ordering::Release) });
    let before = aiofs::stats();
    let mut saw_other_during_loop = false;
    for i in 0..5000u64 {
        let (res, _) = file
            .read_at(Vec::with_capacity(4096), (i % 16) * 4096)
            .await;
        assert_eq!(res.unwrap(), 4096);
        saw_other_during_loop |= ran.load(Ordering::Acquire);
    }
    let (fast, _, _) = delta(&before);
    assert!(fast >= 4900, "the reads did not take the fast path: {fast}");
    assert!(
        saw_other_during_loop,
        "5000 ready reads never yielded: Tokio's task budget was ignored"
    );
    other.await.unwrap();
}

/// A small file on disk: written, synced, and dropped from the page cache.
fn uncached_small_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).unwrap();
    f.write_all_at(&pattern_bytes(0, len), 0).unwrap();
    f.sync_all().unwrap();
    evict(&f, 0, len);
    path
}

#[tokio::test]
async fn aiofs_read_of_a_cold_small_file_takes_one_blocking_task_not_aio() {
    let _serial = serial();
    let dir = disk_dir();
    // Sizes around the page and the fast path's limit (128 KiB, one byte of
    // which `read` keeps for the end-of-file check).
    for len in [0, 1, 4095, 4096, 20_000, 65_536, 131_070] {
        let path = uncached_small_file(dir.path(), &format!("small{len}"), len);
        // The path is in the dentry cache (just created): opened inline.
        let before = aiofs::stats();
        let got = aiofs::read(&path).await.unwrap();
        assert!(got == pattern_bytes(0, len), "aiofs::read of {len} bytes");
        let (_, missed, submitted) = delta(&before);
        assert_eq!(
            submitted,
            0,
            "{len} bytes: no AIO request: {:?}",
            aiofs::stats()
        );
        // At most one miss. None is possible: the miss starts the kernel's
        // read-ahead, and a fast device (a VM disk the host caches) can
        // finish it before the `RWF_NOWAIT` read looks again.
        assert!(
            missed <= 1,
            "{len} bytes: {missed} misses: {:?}",
            aiofs::stats()
        );
    }
}

#[tokio::test]
async fn aiofs_read_of_a_partly_cached_small_file_reads_every_byte() {
    let _serial = serial();
    let dir = disk_dir();
    let len = 100_000;
    let path = uncached_small_file(dir.path(), "partly", len);
    // The first 16 KiB cached (written again), the rest not.
    let std_file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std_file.write_all_at(&pattern_bytes(0, 16_384), 0).unwrap();
    let before = aiofs::stats();
    let got = aiofs::read(&path).await.unwrap();
    assert!(got == pattern_bytes(0, len), "aiofs::read: wrong bytes");
    assert_eq!(delta(&before).2, 0, "no AIO request: {:?}", aiofs::stats());
}

#[tokio::test]
async fn aiofs_read_of_a_larger_cold_file_takes_aio() {
    let _serial = serial();
    let dir = disk_dir();
    let len = 512 * 1024;
    let path = uncached_small_file(dir.path(), "larger", len);
    let before = aiofs::stats();
    let got = aiofs::read(&path).await.unwrap();
    assert!(got == pattern_bytes(0, len), "aiofs::read: wrong bytes");
    assert!(delta(&before).2 >= 1, "read with AIO: {:?}", aiofs::stats());
}
