//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod workload;

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Sends every read of this test binary through AIO, without the page-cache
/// fast path (`Config::nowait(false)`; the notifier still comes from the
/// environment): for the tests of the AIO path itself, whose reads must be in
/// flight (cancellation, runtimes going away, full signal queues).
pub fn aio_only() {
    aiofs::Config::new()
        .nowait(false)
        .install()
        .expect("install Config::new().nowait(false)");
}

/// Serialises the tests of one binary that look at process-wide state
/// (`aiofs::stats()`, descriptors). A test that panicked while holding it does
/// not poison the others.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many descriptors the process has open (the entries of `/proc/self/fd`,
/// the directory's own descriptor included).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// How many open descriptors name a file under `dir`.
///
/// Unlike [`open_fds`], other tests (building or dropping their runtimes) cannot
/// change it.
pub fn open_fds_under(dir: &Path) -> usize {
    let dir = dir.canonicalize().expect("canonicalize");
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .count()
}

/// Waits until no request is in flight or queued, for at most 10 s.
///
/// # Panics
///
/// After 10 s, with the driver's counters.
pub async fn settle() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = aiofs::stats();
        if stats.in_flight == 0 && stats.queued == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "aiofs did not settle within 10 s: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Awaits `fut` for at most `secs` seconds.
///
/// # Panics
///
/// If it takes longer, naming `what`, with the driver's counters as they were
/// while `fut` was still waiting (dropping it would orphan its request).
pub async fn bounded<F: Future>(what: &str, secs: u64, fut: F) -> F::Output {
    let fut = std::pin::pin!(fut);
    tokio::select! {
        out = fut => out,
        () = tokio::time::sleep(Duration::from_secs(secs)) => {
            panic!("{what} did not finish within {secs} s: {:?}", aiofs::stats())
        }
    }
}

/// Names the test a child process of a test binary runs alone.
const CHILD: &str = "AIOFS_TEST_CHILD";

/// Runs the test `name` alone in a child process of this test binary.
///
/// Returns `true` in that child: the caller runs the test's body. Returns
/// `false` in the parent once the child passed.
///
/// For tests that must not share the process with others (no runtime may
/// exist), or that could leave it in a state others would see (requests
/// stranded in flight).
///
/// # Panics
///
/// In the parent, with the child's output, if the child failed or did not run
/// the test.
pub fn in_child(name: &str) -> bool {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        return true;
    }
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD, name)
        .output()
        .expect("run the child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed in its child process ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "the child process did not run {name}:\n{stdout}\n{stderr}"
    );
    false
}

/// A deterministic xorshift64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // The state must not be zero.
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The byte expected at file position `i`: not periodic in any power of two, so
/// data read from the wrong place shows.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// `pattern(pos..pos + len)`.
pub fn pattern_bytes(pos: u64, len: usize) -> Vec<u8> {
    (pos..pos + len as u64).map(pattern).collect()
}

/// The end of a test: nothing left in flight or orphaned.
pub async fn idle() {
    settle().await;
    let stats = aiofs::stats();
    assert_eq!(stats.in_flight, 0, "{stats:?}");
    assert_eq!(stats.orphaned, 0, "{stats:?}");
}

/// Opens `path` for reading and writing.
pub async fn open_rw(path: &std::path::Path) -> aiofs::File {
    aiofs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .await
        .expect("open read-write")
}
