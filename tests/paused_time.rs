//! Paused time: under `#[tokio::test(start_paused = true)]`, a timeout around a
//! request never fires while the request is in flight, and the paused clock
//! moves again once nothing is in flight.
//!
//! Tokio advances a paused clock to the next timer whenever the runtime has
//! nothing to run, unless a `spawn_blocking` task of the runtime exists. Every
//! test here checks that the clock did not move at all during its I/O (each
//! request wrapped in a 5 s `timeout`), then that a one-hour `sleep` completes
//! at once afterwards (the clock is released). Reads go through AIO
//! (`aio_only`): a read served from the page cache completes in its first poll
//! and would prove nothing.
//!
//! A watchdog thread aborts the binary if a test hangs for 60 s of real time (a
//! clock that is never released would hang the final `sleep`).

// The tests run one at a time (`serial`): they compare process-wide counters.
#![allow(clippy::await_holding_lock)]

mod support;

use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aiofs::{Batch, File};
use support::{aio_only, pattern_bytes, serial};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::time::{Instant, timeout};

const LIMIT: Duration = Duration::from_secs(5);

/// Aborts the process if not dropped within 60 s of real time.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(name: &'static str) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !flag.load(Ordering::Acquire) {
                if start.elapsed() > Duration::from_secs(60) {
                    eprintln!("{name}: hung for 60 s (a paused clock never released?)");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `op` under a 5 s timeout on the paused clock: it must finish first.
async fn within<T>(what: &str, op: impl Future<Output = T>) -> T {
    match timeout(LIMIT, op).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: the paused clock jumped 5 s while it was in flight"),
    }
}

/// The paused clock did not move since `start`; then it moves again.
async fn clock_held_then_released(start: Instant) {
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the paused clock moved during I/O"
    );
    let before = aiofs::stats();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(start.elapsed() >= Duration::from_secs(3600));
    assert_eq!(before.in_flight, 0, "{before:?}");
}

fn data_file(dir: &Path, len: usize) -> std::path::PathBuf {
    let path = dir.join("data");
    std::fs::write(&path, pattern_bytes(0, len)).unwrap();
    path
}

#[tokio::test(start_paused = true)]
async fn positioned_requests_never_time_out_while_in_flight() {
    aio_only();
    let _serial = serial();
    let _w = Watchdog::new("positioned");
    let dir = tempfile::tempdir().unwrap();
    let path = data_file(dir.path(), 1 << 20);
    let file = File::options()
        .read(true)
        .write(true)
        .open(&path)
        .await
        .unwrap();
    let holds = aiofs::stats().clock_holds;
    let start = Instant::now();
    for i in 0..200u64 {
        let pos = (i * 4096 * 7) % (1 << 20);
        let (res, buf) = within("read_at", file.read_at(Vec::with_capacity(4096), pos)).await;
        assert_eq!(res.unwrap(), 4096);
        assert_eq!(buf, pattern_bytes(pos, 4096));
    }
    let (res, buf) = within(
        "read_exact_at",
        file.read_exact_at(Vec::with_capacity(100_000), 12_345),
    )
    .await;
    res.unwrap();
    assert_eq!(buf, pattern_bytes(12_345, 100_000));
    let (res, _) = within("write_at", file.write_at(vec![1u8; 4096], 0)).await;
    assert_eq!(res.unwrap(), 4096);
    let (res, _) = within("write_all_at", file.write_all_at(vec![2u8; 65536], 4096)).await;
    res.unwrap();
    let (res, bufs) = within(
        "readv_at",
        file.readv_at(vec![Vec::with_capacity(10), Vec::with_capacity(20)], 0),
    )
    .await;
    assert_eq!(res.unwrap(), 30);
    assert_eq!(bufs[0], [1u8; 10]);
    let (res, _) = within(
        "writev_at",
        file.writev_at(vec![vec![3u8; 5], vec![4u8; 5]], 100),
    )
    .await;
    assert_eq!(res.unwrap(), 10);
    within("sync_data", file.sync_data()).await.unwrap();
    within("sync_all", file.sync_all()).await.unwrap();

    let mut batch = Batch::new();
    for k in 0..16u64 {
        batch.read_at(&file, Vec::with_capacity(4096), 200_000 + k * 4096);
    }
    let results = within("Batch::submit", batch.submit()).await;
    for (k, (res, buf)) in results.into_iter().enumerate() {
        let pos = 200_000 + k as u64 * 4096;
        assert_eq!(res.unwrap(), 4096);
        assert_eq!(buf, pattern_bytes(pos, 4096));
    }
    assert!(
        aiofs::stats().clock_holds > holds,
        "no clock hold was taken: {:?}",
        aiofs::stats()
    );
    clock_held_then_released(start).await;
}

#[tokio::test(start_paused = true)]
async fn many_concurrent_requests_and_a_sleeper() {
    aio_only();
    let _serial = serial();
    let _w = Watchdog::new("concurrent");
    let dir = tempfile::tempdir().unwrap();
    let path = data_file(dir.path(), 4 << 20);
    let file = Arc::new(File::open(&path).await.unwrap());
    let start = Instant::now();
    // A task asleep for 10 s of paused time: it must not wake while reads run.
    let sleeper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Instant::now()
    });
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let file = Arc::clone(&file);
        tasks.push(tokio::spawn(async move {
            for i in 0..20u64 {
                let pos = ((t * 20 + i) * 4096 * 13) % (4 << 20);
                let (res, buf) =
                    within("read_at", file.read_at(Vec::with_capacity(4096), pos)).await;
                assert_eq!(res.unwrap(), 4096);
                assert_eq!(buf, pattern_bytes(pos, 4096));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(!sleeper.is_finished(), "the sleeper woke during the reads");
    assert_eq!(start.elapsed(), Duration::ZERO);
    let woke = sleeper.await.unwrap();
    assert!(woke - start >= Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn the_stream_never_times_out_while_in_flight() {
    aio_only();
    let _serial = serial();
    let _w = Watchdog::new("stream");
    let dir = tempfile::tempdir().unwrap();
    let path = data_file(dir.path(), 8 << 20);
    let start = Instant::now();

    let mut file = within("open", File::open(&path)).await.unwrap();
    let mut all = Vec::new();
    within("read_to_end", file.read_to_end(&mut all))
        .await
        .unwrap();
    assert_eq!(all, pattern_bytes(0, 8 << 20));
    within("seek", file.seek(SeekFrom::Start(1000)))
        .await
        .unwrap();
    let mut small = [0u8; 100];
    within("read_exact", file.read_exact(&mut small))
        .await
        .unwrap();
    assert_eq!(small[..], pattern_bytes(1000, 100)[..]);

    let out = dir.path().join("out");
    let mut w = within("create", File::create(&out)).await.unwrap();
    for i in 0..64u64 {
        within("write_all", w.write_all(&pattern_bytes(i * 65536, 65536)))
            .await
            .unwrap();
    }
    within("flush", w.flush()).await.unwrap();
    within("sync_all", w.sync_all()).await.unwrap();
    drop(w);
    assert_eq!(std::fs::read(&out).unwrap(), pattern_bytes(0, 64 * 65536));
    clock_held_then_released(start).await;
}

#[tokio::test(start_paused = true)]
async fn the_fs_functions_never_time_out_while_in_flight() {
    aio_only();
    let _serial = serial();
    let _w = Watchdog::new("functions");
    let dir = tempfile::tempdir().unwrap();
    let path = data_file(dir.path(), 3 << 20);
    let start = Instant::now();
    let got = within("read", aiofs::read(&path)).await.unwrap();
    assert_eq!(got, pattern_bytes(0, 3 << 20));
    let out = dir.path().join("copy");
    let n = within("copy", aiofs::copy(&path, &out)).await.unwrap();
    assert_eq!(n, 3 << 20);
    let text = dir.path().join("text");
    within("write", aiofs::write(&text, "paused time\n".repeat(10_000)))
        .await
        .unwrap();
    let s = within("read_to_string", aiofs::read_to_string(&text))
        .await
        .unwrap();
    assert_eq!(s, "paused time\n".repeat(10_000));
    let meta = within("metadata", aiofs::metadata(&out)).await.unwrap();
    assert_eq!(meta.len(), 3 << 20);
    clock_held_then_released(start).await;
}

/// When time is not paused, nothing is held: no blocking task per request.
#[tokio::test]
async fn no_clock_hold_when_time_is_not_paused() {
    aio_only();
    let _serial = serial();
    let _w = Watchdog::new("not paused");
    let dir = tempfile::tempdir().unwrap();
    let path = data_file(dir.path(), 1 << 20);
    let file = File::open(&path).await.unwrap();
    let before = aiofs::stats();
    for i in 0..500u64 {
        let pos = (i * 4096) % (1 << 20);
        let (res, _) = file.read_at(Vec::with_capacity(4096), pos).await;
        assert_eq!(res.unwrap(), 4096);
    }
    let after = aiofs::stats();
    assert!(after.submitted - before.submitted >= 500, "{after:?}");
    // The tests of this binary run one at a time (`serial`).
    assert_eq!(after.clock_holds, before.clock_holds, "{after:?}");
}

/// A current_thread runtime built without the time driver (nor IO): the
/// paused-clock check must not need it. Under the signal notifier, which needs
/// IO, the documented error comes back instead.
#[test]
fn a_runtime_without_the_time_driver_works() {
    aio_only();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = data_file(dir.path(), 65536);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let file = File::open(&path).await.unwrap();
        if std::env::var("AIOFS_NOTIFIER").is_ok_and(|v| v.trim().eq_ignore_ascii_case("signal")) {
            let (res, _) = file.read_at(Vec::with_capacity(4096), 0).await;
            let err = res.unwrap_err();
            assert!(err.to_string().contains("enable_io"), "{err}");
            return;
        }
        for i in 0..16u64 {
            let (res, buf) = file.read_at(Vec::with_capacity(4096), i * 4096).await;
            assert_eq!(res.unwrap(), 4096);
            assert_eq!(buf, pattern_bytes(i * 4096, 4096));
        }
    });
}
