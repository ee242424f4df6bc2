//! Load: far more requests at once than the driver lets into the OS.
//!
//! 100,000 positioned 4 KiB requests are made at once — a third of them writes,
//! each to its own block of a scratch region, the rest reads at random offsets
//! of a read-only region — either as 100,000 spawned tasks on a multi-thread
//! runtime or as one joined future on a current-thread runtime. The driver's
//! in-flight limit (a quarter of `RLIMIT_SIGPENDING`, at most 1024) is far
//! exceeded; the rest wait in its FIFO queue.
//!
//! So that all of them really are waiting at once (the OS would otherwise
//! finish the first ones while the last are being made), the file's
//! descriptor is held first by a read stalled on a `userfaultfd` page
//! (`support::Stall`; needs root or `vm.unprivileged_userfaultfd=1`, and is
//! not available under valgrind): nothing on it can finish until the test
//! has checked that exactly `limit` requests are in flight and the rest
//! queued. Without `userfaultfd` the requests race the OS and those counts
//! are not asserted.
//!
//! Every read must return the right bytes, every write must land, no error
//! (`EAGAIN` / `WouldBlock` above all) may reach the caller, the driver's
//! gauges must come back to 0, and the memory growth is reported and bounded:
//! at the peak (the buffers themselves are 4 KiB per request), and after
//! everything was dropped and the heap trimmed (nothing kept per request).
//!
//! `AIOFS_TEST_SMALL=1` makes it 5,000 requests (for valgrind). The notifier
//! comes from `AIOFS_NOTIFIER`, so CI runs this binary under both.

// `serial()` is held across awaits on purpose: it keeps the tests of this binary
// one at a time (both watch process-wide counters and memory).
#![allow(clippy::await_holding_lock)]

mod support;

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use aiofs::File;
use aiofs::ops::ReadAt;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use support::{Rng, Stall, StallBuf, aio_only, bounded, open_rw, pattern_bytes, serial, settle};

const BLOCK: usize = 4096;
const MIB: u64 = 1 << 20;

fn small() -> bool {
    std::env::var("AIOFS_TEST_SMALL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Requests made at once.
fn requests() -> usize {
    if small() { 5_000 } else { 100_000 }
}

/// The read-only region the reads pick their offsets in.
fn read_region() -> u64 {
    if small() { 2 * MIB } else { 32 * MIB }
}

/// The driver's default in-flight limit: a quarter of `RLIMIT_SIGPENDING`,
/// between 1 and 1024.
fn default_limit() -> u64 {
    // SAFETY: `rlimit` is plain old data; all-zero bytes are a valid value.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `lim` is a valid, writable `rlimit` for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return 1024;
    }
    (lim.rlim_cur / 4).clamp(1, 1024)
}

/// The resident set size, from `/proc/self/statm` (its second field, in pages).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm's resident field");
    // SAFETY: `sysconf` has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as u64
}

/// Gives the free heap memory back to the OS, so that RSS shows what is still
/// allocated (glibc keeps freed 4 KiB blocks otherwise).
fn trim_heap() {
    // SAFETY: `malloc_trim` has no preconditions; it only releases free memory.
    unsafe { libc::malloc_trim(0) };
}

/// Valgrind runs this process: its allocator and shadow memory decide the RSS,
/// so the memory bounds are reported but not checked.
fn under_valgrind() -> bool {
    std::env::var("LD_PRELOAD").is_ok_and(|v| v.contains("vgpreload"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Read(u64),
    Write(u64),
}

/// What to run, and the file it runs on.
struct Plan {
    ops: Vec<Op>,
    reads: usize,
    writes: usize,
    /// The file's content at the end: the read region, then one block per
    /// write. Every check compares against it.
    image: Arc<Vec<u8>>,
}

/// `pattern(0..len)` (the same bytes as `pattern_bytes`, much faster in a
/// debug build), made once: both tests' files have this content at the end.
fn image(len: usize) -> Arc<Vec<u8>> {
    static IMAGE: std::sync::OnceLock<Arc<Vec<u8>>> = std::sync::OnceLock::new();
    let image = IMAGE.get_or_init(|| {
        const STEP: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut out = vec![0u8; len];
        let mut x = 0u64;
        let mut i = 0;
        while i < len {
            out[i] = (x >> 56) as u8;
            x = x.wrapping_add(STEP);
            i += 1;
        }
        assert_eq!(out[..1000], pattern_bytes(0, 1000)[..]);
        Arc::new(out)
    });
    assert_eq!(image.len(), len);
    Arc::clone(image)
}

/// `n` requests: a third writes, to the blocks after the read region in a
/// shuffled order (each block once), the rest reads of 4 KiB at any offset of
/// the read region, in a shuffled order too. No read overlaps a write.
fn plan(n: usize, seed: u64) -> Plan {
    let mut rng = Rng::new(seed);
    let writes = n / 3;
    let mut is_write: Vec<bool> = (0..n).map(|i| i < writes).collect();
    shuffle(&mut is_write, &mut rng);
    let region = read_region();
    let mut blocks: Vec<u64> = (0..writes as u64).collect();
    shuffle(&mut blocks, &mut rng);
    let ops = is_write
        .iter()
        .map(|&w| {
            if w {
                let block = blocks.pop().expect("one block per write");
                Op::Write(region + block * BLOCK as u64)
            } else {
                Op::Read(rng.below(region - BLOCK as u64 + 1))
            }
        })
        .collect();
    Plan {
        ops,
        reads: n - writes,
        writes,
        image: image(region as usize + writes * BLOCK),
    }
}

fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// The file: the pattern in the read region, zeros in the write region.
fn make_file(dir: &Path, plan: &Plan) -> std::path::PathBuf {
    let path = dir.join("load");
    let region = read_region() as usize;
    std::fs::write(&path, &plan.image[..region]).expect("write the read region");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(plan.image.len() as u64).expect("set_len");
    path
}

/// One request, with its buffer already allocated; `Err` says what went wrong.
fn request(
    file: &Arc<File>,
    image: &Arc<Vec<u8>>,
    op: Op,
) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
    let file = Arc::clone(file);
    let image = Arc::clone(image);
    let buf = match op {
        Op::Read(_) => Vec::with_capacity(BLOCK),
        Op::Write(pos) => image[pos as usize..][..BLOCK].to_vec(),
    };
    async move {
        let (what, res, buf, pos) = match op {
            Op::Read(pos) => {
                let (res, buf) = file.read_at(buf, pos).await;
                ("read_at", res, buf, pos)
            }
            Op::Write(pos) => {
                let (res, buf) = file.write_at(buf, pos).await;
                ("write_at", res, buf, pos)
            }
        };
        match res {
            Ok(BLOCK) => {}
            Ok(n) => return Err(format!("{what} at {pos}: {n} bytes, not {BLOCK}")),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::EAGAIN) =>
            {
                return Err(format!("{what} at {pos}: EAGAIN reached the caller: {e}"));
            }
            Err(e) => return Err(format!("{what} at {pos}: {e} ({:?})", e.kind())),
        }
        if matches!(op, Op::Read(_)) && buf[..] != image[pos as usize..][..BLOCK] {
            return Err(format!("read_at at {pos}: wrong data"));
        }
        Ok(())
    }
}

/// Every read region byte unchanged, every write block written.
fn check_file(path: &Path, plan: &Plan) {
    let content = std::fs::read(path).expect("read the file back");
    assert_eq!(content.len(), plan.image.len(), "the file's length changed");
    if content[..] != plan.image[..] {
        let i = (0..content.len())
            .find(|&i| content[i] != plan.image[i])
            .expect("a difference");
        let region = read_region() as usize;
        let place = if i < region {
            "the read region (never written)".to_string()
        } else {
            format!("write block {}", (i - region) / BLOCK)
        };
        panic!(
            "byte {i} ({place}) is {:#04x}, expected {:#04x}",
            content[i], plan.image[i]
        );
    }
}

/// What a run saw, for the report and the assertions.
struct Watch {
    limit: u64,
    max_in_flight: u64,
    max_queued: u64,
    peak_rss: u64,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            limit: default_limit(),
            max_in_flight: 0,
            max_queued: 0,
            peak_rss: rss(),
        }
    }

    /// Samples the gauges; the in-flight limit must hold at every sample.
    fn sample(&mut self) {
        let s = aiofs::stats();
        assert!(
            s.in_flight <= self.limit,
            "{} requests in flight, over the limit of {}: {s:?}",
            s.in_flight,
            self.limit
        );
        self.max_in_flight = self.max_in_flight.max(s.in_flight);
        self.max_queued = self.max_queued.max(s.queued);
        self.peak_rss = self.peak_rss.max(rss());
    }
}

fn assert_no_failures(failures: &[String], n: usize) {
    assert!(
        failures.is_empty(),
        "{} of {n} requests failed; the first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}

/// Starts the driver and the runtime's own machinery before the baseline.
async fn warm_up(file: &File) {
    let (res, buf) = file.read_at(Vec::with_capacity(BLOCK), 0).await;
    assert_eq!(res.expect("warm-up read"), BLOCK);
    assert_eq!(buf, pattern_bytes(0, BLOCK));
    settle().await;
}

/// Checks the end of a run and prints its report.
async fn finish(
    name: &str,
    plan: &Plan,
    before: aiofs::Stats,
    rss_before: u64,
    watch: Watch,
    started: Instant,
    held: bool,
) {
    let elapsed = started.elapsed();
    settle().await;
    let s = aiofs::stats();
    assert_eq!(s.in_flight, 0, "{s:?}");
    assert_eq!(s.queued, 0, "{s:?}");
    assert_eq!(s.orphaned, 0, "{s:?}");
    let n = plan.ops.len() as u64;
    assert_eq!(
        s.completed - before.completed,
        n + held as u64,
        "one completion per request: {s:?}"
    );
    trim_heap();
    let rss_after = rss();
    let waited = s.waited - before.waited;
    let peak_growth = watch.peak_rss.saturating_sub(rss_before);
    let after_growth = rss_after.saturating_sub(rss_before);
    println!(
        "{name}: {n} requests ({} reads, {} writes) in {elapsed:.2?}; in-flight limit {}, \
         max in flight {}, max queued {} (sampled), {waited} waited, {} EAGAIN retried; \
         RSS before {:.1} MiB, peak {:.1} MiB (+{:.1}), after {:.1} MiB (+{:.1}); \
         buffers {:.1} MiB",
        plan.reads,
        plan.writes,
        watch.limit,
        watch.max_in_flight,
        watch.max_queued,
        s.eagain_retries - before.eagain_retries,
        mib(rss_before),
        mib(watch.peak_rss),
        mib(peak_growth),
        mib(rss_after),
        mib(after_growth),
        mib(n * BLOCK as u64),
    );
    if held {
        // Every request was made while none could finish (checked by the
        // caller): all but `limit - 1` (beside the held read) waited.
        let want = (n + 1).saturating_sub(watch.limit);
        assert!(
            waited >= want,
            "{waited} requests waited for a place, not {want}"
        );
    }
    if under_valgrind() {
        println!("{name}: under valgrind, the memory bounds are not checked");
        return;
    }
    // Every request holds its 4 KiB buffer from its creation to its end, so
    // the peak holds them all (390 MiB for 100,000); the rest is the task, the
    // driver's slot and control block, per request (about 0.9 KiB measured):
    // allow 192 MiB, 2 KiB per request at 100,000. A copy of the buffers would
    // pass it.
    let buffers = n * BLOCK as u64;
    assert!(
        peak_growth < buffers + 192 * MIB,
        "RSS grew by {:.1} MiB at the peak, {:.1} MiB more than the buffers",
        mib(peak_growth),
        mib(peak_growth.saturating_sub(buffers))
    );
    // Everything dropped and the heap trimmed: what is left is the driver's
    // table (a slot per request at the peak, kept for reuse) and the runtime.
    assert!(
        after_growth < 64 * MIB,
        "RSS is {:.1} MiB above the start after everything was dropped: memory kept per request",
        mib(after_growth)
    );
}

/// The file's descriptor held by a read stalled on a `userfaultfd` page (see
/// `support::Stall`): every request made meanwhile waits, the first
/// `limit - 1` in glibc's queue for the descriptor, the rest in the driver's.
struct Hold {
    stall: Stall,
    read: Pin<Box<ReadAt<StallBuf>>>,
}

impl Hold {
    /// `None` (the requests then race the OS) without `userfaultfd`.
    async fn new(file: &File) -> Option<Hold> {
        let stall = Stall::new(1)?;
        let mut read = Box::pin(file.read_at(stall.buf(0), 0));
        assert!(
            futures::poll!(&mut read).is_pending(),
            "the stalled read finished"
        );
        stall.wait_stalled(1);
        Some(Hold { stall, read })
    }

    /// Checks that all `n` requests wait (with the held read: `n + 1`), at
    /// most `limit` in flight, the rest queued.
    fn check_waiting(&self, n: u64, limit: u64) {
        let s = aiofs::stats();
        let all = n + 1;
        assert_eq!(s.in_flight, all.min(limit), "{s:?}");
        assert_eq!(s.queued, all.saturating_sub(limit), "{s:?}");
    }

    /// Lets the held read go on, and everything behind it.
    async fn release(self, image: &[u8]) {
        self.stall.release();
        let (res, buf) = self.read.await;
        assert_eq!(res.expect("the held read"), BLOCK);
        assert!(buf.bytes() == &image[..BLOCK], "the held read: wrong data");
    }
}

/// Waits (polling, at most 60 s) until `n` more requests than `before` have
/// been made (in flight or queued).
async fn made(n: u64, before: aiofs::Stats) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = aiofs::stats();
        if s.in_flight + s.queued >= n + before.in_flight + before.queued {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the tasks did not make their {n} requests within 60 s: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// 100,000 requests as spawned tasks, held at a gate until all are spawned,
/// then let go at once; all made while the file's descriptor is held, so that
/// at most the limit is in flight and the rest queue in the driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_100k_spawned_requests_complete_with_verified_data() {
    // The AIO path under test: no page-cache fast path (a stalled read must
    // stall glibc\'s worker, not this thread).
    aio_only();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = plan(requests(), 1);
    let path = make_file(dir.path(), &plan);
    let file = Arc::new(open_rw(&path).await);
    warm_up(&file).await;

    bounded("the spawned load", 120, async {
        let n = plan.ops.len() as u64;
        let before = aiofs::stats();
        trim_heap();
        let rss_before = rss();
        let mut watch = Watch::new();
        let started = Instant::now();
        let hold = Hold::new(&file).await;
        let (open, gate) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = plan
            .ops
            .iter()
            .map(|&op| {
                let req = request(&file, &plan.image, op);
                let mut gate = gate.clone();
                tokio::spawn(async move {
                    gate.wait_for(|&open| open).await.expect("the gate");
                    req.await
                })
            })
            .collect();
        drop(gate);
        open.send(true).expect("open the gate");
        if let Some(hold) = &hold {
            made(n + 1, before).await;
            hold.check_waiting(n, watch.limit);
        }
        watch.sample();
        let held = hold.is_some();
        if let Some(hold) = hold {
            hold.release(&plan.image).await;
        }
        let mut failures = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            if let Err(e) = task.await.expect("request task panicked") {
                failures.push(e);
            }
            if i.is_multiple_of(1000) {
                watch.sample();
            }
        }
        assert_no_failures(&failures, plan.ops.len());
        finish("spawned", &plan, before, rss_before, watch, started, held).await;
    })
    .await;
    drop(file);
    check_file(&path, &plan);
}

/// 100,000 requests in one future on a current-thread runtime: its first poll
/// makes every one of them, while the file's descriptor is held, so that at
/// most the limit is in flight and the rest queue in the driver.
#[tokio::test(flavor = "current_thread")]
async fn load_100k_joined_requests_complete_with_verified_data() {
    // The AIO path under test: no page-cache fast path (a stalled read must
    // stall glibc\'s worker, not this thread).
    aio_only();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = plan(requests(), 2);
    let path = make_file(dir.path(), &plan);
    let file = Arc::new(open_rw(&path).await);
    warm_up(&file).await;

    bounded("the joined load", 120, async {
        let n = plan.ops.len() as u64;
        let before = aiofs::stats();
        trim_heap();
        let rss_before = rss();
        let mut watch = Watch::new();
        let started = Instant::now();
        let hold = Hold::new(&file).await;
        let mut all: FuturesUnordered<_> = plan
            .ops
            .iter()
            .map(|&op| request(&file, &plan.image, op))
            .collect();
        let mut failures = Vec::new();
        let mut done = 0usize;
        // The first poll makes every request (FuturesUnordered polls each once
        // before it returns Pending, or the first result).
        match futures::poll!(all.next()) {
            Poll::Pending => {}
            Poll::Ready(Some(res)) => {
                assert!(
                    hold.is_none(),
                    "a request finished while the descriptor was held"
                );
                failures.extend(res.err());
                done += 1;
            }
            Poll::Ready(None) => unreachable!("no request"),
        }
        let s = aiofs::stats();
        assert!(
            s.queued + s.in_flight + (s.completed - before.completed) >= n + hold.is_some() as u64,
            "not every request was made by the first poll: {s:?}"
        );
        if let Some(hold) = &hold {
            hold.check_waiting(n, watch.limit);
        }
        watch.sample();
        let held = hold.is_some();
        if let Some(hold) = hold {
            hold.release(&plan.image).await;
        }
        while let Some(res) = all.next().await {
            failures.extend(res.err());
            if done.is_multiple_of(1000) {
                watch.sample();
            }
            done += 1;
        }
        assert_eq!(done, plan.ops.len());
        assert_no_failures(&failures, plan.ops.len());
        finish("joined", &plan, before, rss_before, watch, started, held).await;
    })
    .await;
    drop(file);
    check_file(&path, &plan);
}
