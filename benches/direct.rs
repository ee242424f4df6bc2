//! O_DIRECT random reads: aiofs's descriptor pool side by side with its
//! baselines, in one run, as ratios.
//!
//! ```text
//! cargo bench --bench direct                 # full run: 1 GiB file, 3 runs per cell, medians
//! cargo bench --bench direct -- --quick      # smoke run: 128 MiB file, 1 run per cell (< 20 s)
//! cargo bench --bench direct -- --json       # one JSON object per row on stdout
//! cargo bench --bench direct -- --secs 5     # seconds per timed run
//! cargo bench --bench direct -- --qd 32      # only this queue depth (1 or 32)
//! cargo bench --bench direct -- --block-signal   # every thread blocks the completion
//!                                            # signal: completions via the signalfd
//! AIOFS_BENCH_DIR=/mnt/disk cargo bench --bench direct   # where the data file goes
//! ```
//!
//! Workload: random 4 KiB reads at 4 KiB-aligned offsets of a file opened with
//! `O_DIRECT` (so every read goes to the device, never to the page cache), at
//! queue depth 1 and 32: QD tasks on a multi_thread runtime share one file, each
//! reading into its own `AlignedBuf::new(4096, 4096)` until the run's time is up.
//!
//! - `aiofs fd_pool=N`: `File::read_at` on one shared `Arc<aiofs::File>` after
//!   `set_fd_pool(N)`, for N = 1 (one descriptor: glibc runs one request per
//!   descriptor at a time), 4 and 8; `aiofs default` leaves the pool as an
//!   `O_DIRECT` file gets it (16). Rows for several N document the policy.
//! - `spawn_blocking+pread`: `tokio::task::spawn_blocking` + `FileExt::read_at`
//!   on an `Arc<std::fs::File>` opened `O_DIRECT`.
//! - `tokio-uring read_at` (Linux): `tokio_uring::fs::File::read_at` on an
//!   `Rc<File>` shared by QD tasks on tokio-uring's own (current_thread)
//!   runtime, the way that crate is used.
//! - `std pread 1 thread` (QD1 only): a synchronous `pread` loop, the device's
//!   latency with nothing in between.
//!
//! Each run lasts a fixed time (the IOPS of the disk is not known in advance);
//! a short untimed warm-up at the same depth comes first. Each figure is the
//! median of its runs (3, or 1 with `--quick`), taken independently per column;
//! the runs of a queue depth are interleaved across backends so that drift on a
//! noisy machine spreads over all of them. CPU is `getrusage(RUSAGE_SELF)`, user
//! plus system, of every thread of the process (Tokio workers, the blocking pool,
//! glibc's AIO threads, aiofs's notifier, io_uring's workers) per read; work the
//! kernel does in interrupts or in kernel threads (block completions, kworkers)
//! is not counted. `csw/op` is the process's context switches (voluntary and
//! not, `ru_nvcsw + ru_nivcsw`) per read: each cross-thread hand-off shows there.
//! The ratio columns are this row ÷ `aiofs fd_pool=1` and this row ÷
//! `spawn_blocking+pread` at the same queue depth (throughput > 1 = this row is
//! faster; CPU < 1 = this row spends less per read). `pool%` is the share of an
//! aiofs row's reads that went to a pool descriptor (`stats().pool_requests`).
//! `other%` is the CPU time the rest of the machine used during the run (other
//! programs, kernel threads, hypervisor steal, from `/proc/stat`) over all
//! CPUs: a warning is printed when a run saw more than 10%, since these 2-CPU
//! machines are easily disturbed. The last lines give the figures the design
//! asks for: aiofs with its default pool ÷ its single-descriptor figure and ÷
//! `spawn_blocking+pread`, with the bars at QD32 (≥ 3× and ≥ 0.9×); they are
//! printed, not enforced (the exit status is for errors and wrong data only).
//!
//! The data file holds a pattern that is a function of the offset: every read
//! must return a full block, and the first and the last read of every task, in
//! every warm-up and timed run of every backend, are checked against it.
//!
//! The file is created (with `O_DIRECT` writes, then `fsync` and
//! `POSIX_FADV_DONTNEED`) in `AIOFS_BENCH_DIR`, else in Cargo's target tmpdir,
//! else in the system temp dir: the first of them on a file system that is not
//! memory-backed (tmpfs and ramfs are refused: they accept `O_DIRECT` on recent
//! kernels but have no device behind them) and that accepts `O_DIRECT`.

mod common;

use common::{
    fill_pattern, fmt_rate, fmt_ratio, joined, json_list, json_num, json_str, median, ratio,
    verify_pattern as verify,
};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiofs::buf::AlignedBuf;
use tokio::runtime::Runtime;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const BLOCK: usize = 4 * KIB;
/// Buffer alignment: a page, which covers any logical block size.
const ALIGN: usize = 4096;
const QUEUE_DEPTHS: [usize; 2] = [1, 32];
/// The pool sizes measured besides the default.
const POOLS: [usize; 3] = [1, 4, 8];
/// The bars of the acceptance summary (at QD32, aiofs with its default pool).
const BAR_OVER_SINGLE_FD: f64 = 3.0;
const BAR_OVER_SPAWN_BLOCKING: f64 = 0.9;
const BAR_QD: usize = 32;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Clone, Copy)]
struct Params {
    mode: &'static str,
    runs: usize,
    file_size: usize,
    run_secs: f64,
    warm_secs: f64,
}

const FULL: Params = Params {
    mode: "full",
    runs: 3,
    file_size: 1024 * MIB,
    run_secs: 2.0,
    warm_secs: 0.25,
};

const QUICK: Params = Params {
    mode: "quick",
    runs: 1,
    file_size: 128 * MIB,
    run_secs: 0.5,
    warm_secs: 0.1,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// `Some(n)`: `set_fd_pool(n)`; `None`: the default pool.
    Aiofs(Option<usize>),
    SpawnBlocking,
    #[cfg(target_os = "linux")]
    TokioUring,
    StdPread,
}

impl Backend {
    fn name(self, default_pool: usize) -> String {
        match self {
            Backend::Aiofs(Some(n)) => format!("aiofs fd_pool={n}"),
            Backend::Aiofs(None) => format!("aiofs default ({default_pool})"),
            Backend::SpawnBlocking => "spawn_blocking+pread".to_string(),
            #[cfg(target_os = "linux")]
            Backend::TokioUring => "tokio-uring read_at".to_string(),
            Backend::StdPread => "std pread 1 thread".to_string(),
        }
    }

    fn at(qd: usize) -> Vec<Backend> {
        let mut v: Vec<Backend> = POOLS.iter().map(|&n| Backend::Aiofs(Some(n))).collect();
        v.push(Backend::Aiofs(None));
        v.push(Backend::SpawnBlocking);
        #[cfg(target_os = "linux")]
        v.push(Backend::TokioUring);
        if qd == 1 {
            v.push(Backend::StdPread);
        }
        v
    }
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ops: u64,
    secs: f64,
    cpu_us: f64,
    /// Context switches (voluntary and not) of all the process's threads.
    csw: f64,
    /// CPU time spent outside this process during the run (other programs,
    /// kernel threads, time stolen by the hypervisor; not interrupts), as a
    /// share of all CPUs; `None` without `/proc/stat`.
    other: Option<f64>,
    /// aiofs only: `stats().pool_requests` gained during the run.
    pool_requests: Option<u64>,
}

impl Sample {
    fn iops(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn cpu_us_per_op(&self) -> f64 {
        self.cpu_us / self.ops as f64
    }
    fn csw_per_op(&self) -> f64 {
        self.csw / self.ops as f64
    }
    fn other(&self) -> Option<f64> {
        self.other
    }
    fn pool_share(&self) -> Option<f64> {
        self.pool_requests.map(|p| p as f64 / self.ops as f64)
    }
}

/// One line of the table: a backend at a queue depth, with its runs.
#[derive(Debug)]
struct Row {
    backend: Backend,
    name: String,
    qd: usize,
    samples: Vec<Sample>,
}

impl Row {
    fn iops(&self) -> f64 {
        median(self.samples.iter().map(Sample::iops))
    }
    fn mb_per_s(&self) -> f64 {
        self.iops() * BLOCK as f64 / 1e6
    }
    fn cpu_us_per_op(&self) -> f64 {
        median(self.samples.iter().map(Sample::cpu_us_per_op))
    }
    fn csw_per_op(&self) -> f64 {
        median(self.samples.iter().map(Sample::csw_per_op))
    }
    fn pool_share(&self) -> Option<f64> {
        let shares: Vec<f64> = self.samples.iter().filter_map(Sample::pool_share).collect();
        (!shares.is_empty()).then(|| median(shares.into_iter()))
    }
    fn other(&self) -> Option<f64> {
        let shares: Vec<f64> = self.samples.iter().filter_map(Sample::other).collect();
        (!shares.is_empty()).then(|| median(shares.into_iter()))
    }
}

// ---------------------------------------------------------------- the data

/// Checks one read: a full block, and the pattern when `check_data`.
fn check_read(n: usize, buf: &[u8], pos: u64, check_data: bool, what: &str) -> io::Result<()> {
    if n != BLOCK || buf.len() != BLOCK {
        return Err(io::Error::other(format!(
            "{what}: short read at {pos}: {n} bytes (buffer length {})",
            buf.len()
        )));
    }
    if check_data {
        verify(buf, pos, what)?;
    }
    Ok(())
}

/// `statfs` magic numbers of file systems with no device behind them.
const MEMORY_FS: [(i64, &str); 2] = [(0x0102_1994, "tmpfs"), (0x8584_58f6, "ramfs")];

fn fs_type(dir: &Path) -> io::Result<i64> {
    use std::os::unix::ffi::OsStrExt as _;
    let mut path = dir.as_os_str().as_bytes().to_vec();
    path.push(0);
    // SAFETY: `statfs` is plain old data; all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is valid for writes during the call.
    let rc = unsafe { libc::statfs(path.as_ptr().cast(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // `f_type`'s type differs between targets
    Ok(st.f_type as i64)
}

/// Opens `path` for reading with `O_DIRECT` (std).
fn open_direct_std(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// Writes the data file with `O_DIRECT` (so it does not fill the page cache),
/// syncs it and drops whatever of it is cached.
fn make_file(path: &Path, size: usize) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let mut chunk = AlignedBuf::new(ALIGN, MIB);
    chunk.resize(MIB, 0);
    for off in (0..size).step_by(MIB) {
        fill_pattern(&mut chunk, off as u64);
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    // SAFETY: a plain syscall on a descriptor we own.
    let rc = unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
            0,
            libc::POSIX_FADV_DONTNEED,
        )
    };
    if rc != 0 {
        eprintln!(
            "direct: posix_fadvise(DONTNEED): {}",
            io::Error::from_raw_os_error(rc)
        );
    }
    Ok(())
}

/// The first candidate directory on a real disk that takes `O_DIRECT`: a new
/// temporary directory in it and the data file's path, created.
fn place_file(size: usize) -> Result<(tempfile::TempDir, PathBuf)> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("AIOFS_BENCH_DIR") {
        candidates.push(dir.into());
    }
    candidates.push(PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    candidates.push(std::env::temp_dir());
    let mut refused = Vec::new();
    for dir in candidates {
        if let Err(e) = fs::create_dir_all(&dir) {
            refused.push(format!("{}: {e}", dir.display()));
            continue;
        }
        match fs_type(&dir) {
            Ok(t) => {
                if let Some((_, name)) = MEMORY_FS.iter().find(|(m, _)| *m == t) {
                    refused.push(format!("{}: {name} (no device)", dir.display()));
                    continue;
                }
            }
            Err(e) => {
                refused.push(format!("{}: statfs: {e}", dir.display()));
                continue;
            }
        }
        let tmp = tempfile::Builder::new()
            .prefix("aiofs-direct-")
            .tempdir_in(&dir)?;
        let path = tmp.path().join("data");
        match make_file(&path, size) {
            Ok(()) => return Ok((tmp, path)),
            Err(e) => refused.push(format!("{}: O_DIRECT write: {e}", dir.display())),
        }
    }
    Err(format!(
        "no directory for an O_DIRECT file on a real disk (set AIOFS_BENCH_DIR): {}",
        refused.join("; ")
    )
    .into())
}

/// A task's stream of random block-aligned offsets (xorshift64*).
struct Offsets {
    state: u64,
    blocks: u64,
}

impl Offsets {
    fn new(seed: u64, task: usize, file_size: usize) -> Offsets {
        let seed = 0x2545_f491_4f6c_dd1d_u64
            ^ (task as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        Offsets {
            state: seed | 1,
            blocks: (file_size / BLOCK) as u64,
        }
    }
}

impl Iterator for Offsets {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Some((r >> 11) % self.blocks * BLOCK as u64)
    }
}

// ---------------------------------------------------------------- measuring

/// CPU time (user + system, µs) and context switches of the whole process.
fn usage() -> (f64, f64) {
    // SAFETY: `rusage` is plain old data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage` for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        (ru.ru_nvcsw + ru.ru_nivcsw) as f64,
    )
}

/// CPU time of the whole machine (µs) spent running tasks or stolen by the
/// hypervisor, from `/proc/stat`. Interrupts are left out: at these rates
/// they are mostly the completions of this process's own reads.
fn machine_busy_us() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .map(|t| t.parse::<f64>().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    // (guest time is already in user).
    let busy = ticks.first()? + ticks.get(1)? + ticks.get(2)? + ticks.get(7).unwrap_or(&0.0);
    // SAFETY: `sysconf` has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| busy * 1e6 / hz as f64)
}

/// Wall and CPU time from its start.
struct Meter {
    t0: Instant,
    usage0: (f64, f64),
    busy0: Option<f64>,
    pool0: u64,
}

impl Meter {
    fn start() -> Meter {
        Meter {
            pool0: aiofs::stats().pool_requests,
            busy0: machine_busy_us(),
            usage0: usage(),
            t0: Instant::now(),
        }
    }

    fn stop(self, ops: u64, aiofs: bool) -> Sample {
        let secs = self.t0.elapsed().as_secs_f64();
        let (cpu, csw) = usage();
        let busy = machine_busy_us();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let other = self
            .busy0
            .zip(busy)
            .map(|(b0, b1)| ((b1 - b0 - (cpu - self.usage0.0)) / (secs * 1e6 * cpus)).max(0.0));
        let pool_requests = aiofs.then(|| aiofs::stats().pool_requests - self.pool0);
        Sample {
            ops,
            secs,
            cpu_us: cpu - self.usage0.0,
            csw: csw - self.usage0.1,
            other,
            pool_requests,
        }
    }
}

/// What one pass of one cell needs to know.
#[derive(Debug, Clone, Copy)]
struct Pass {
    qd: usize,
    file_size: usize,
    /// Seeds the offsets: different per backend, run and pass.
    seed: u64,
    secs: f64,
}

/// One task's loop: reads at its offsets until the deadline, checking every
/// length and the data of the first and the last read; returns the count.
/// `read` does one read into the buffer and hands it back.
macro_rules! task_loop {
    ($pass:expr, $task:expr, $deadline:expr, $what:expr, $buf:ident, $pos:ident, $read:expr) => {{
        let mut offsets = Offsets::new($pass.seed, $task, $pass.file_size);
        let mut count = 0u64;
        let last = loop {
            let $pos = offsets.next().expect("endless");
            let (res, b) = $read;
            $buf = b;
            check_read(res?, &$buf, $pos, count == 0, $what)?;
            count += 1;
            if Instant::now() >= $deadline {
                break $pos;
            }
        };
        verify(&$buf, last, $what)?;
        io::Result::Ok(count)
    }};
}

/// One pass of aiofs: QD tasks on `rt`, one shared file.
async fn aiofs_pass(file: &Arc<aiofs::File>, p: Pass) -> io::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs_f64(p.secs);
    let tasks: Vec<_> = (0..p.qd)
        .map(|t| {
            let file = Arc::clone(file);
            tokio::spawn(async move {
                let mut buf = AlignedBuf::new(ALIGN, BLOCK);
                task_loop!(
                    p,
                    t,
                    deadline,
                    "aiofs read_at",
                    buf,
                    pos,
                    file.read_at(buf, pos).await
                )
            })
        })
        .collect();
    let mut ops = 0;
    for task in tasks {
        ops += joined(task.await)??;
    }
    Ok(ops)
}

/// One pass of spawn_blocking + pread.
async fn spawn_blocking_pass(file: &Arc<fs::File>, p: Pass) -> io::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs_f64(p.secs);
    let tasks: Vec<_> = (0..p.qd)
        .map(|t| {
            let file = Arc::clone(file);
            tokio::spawn(async move {
                let mut buf = AlignedBuf::new(ALIGN, BLOCK);
                buf.resize(BLOCK, 0);
                task_loop!(p, t, deadline, "spawn_blocking+pread", buf, pos, {
                    let f = Arc::clone(&file);
                    joined(
                        tokio::task::spawn_blocking(move || {
                            let res = f.read_at(&mut buf, pos);
                            (res, buf)
                        })
                        .await,
                    )?
                })
            })
        })
        .collect();
    let mut ops = 0;
    for task in tasks {
        ops += joined(task.await)??;
    }
    Ok(ops)
}

/// One pass of a synchronous `pread` loop on this thread (QD1).
fn std_pass(file: &fs::File, p: Pass) -> io::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs_f64(p.secs);
    let mut buf = AlignedBuf::new(ALIGN, BLOCK);
    buf.resize(BLOCK, 0);
    task_loop!(p, 0, deadline, "std pread", buf, pos, {
        let res = file.read_at(&mut buf, pos);
        (res, buf)
    })
}

#[cfg(target_os = "linux")]
mod uring {
    //! The tokio-uring backend, with an aligned buffer it accepts.

    use super::*;
    use std::rc::Rc;

    /// `AlignedBuf` for tokio-uring's buffer traits.
    pub(super) struct UringBuf(pub(super) AlignedBuf);

    impl std::ops::Deref for UringBuf {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            &self.0
        }
    }

    // SAFETY: the allocation never moves (the struct only holds its pointer);
    // `len <= capacity` bytes are initialised.
    unsafe impl tokio_uring::buf::IoBuf for UringBuf {
        fn stable_ptr(&self) -> *const u8 {
            self.0.as_ptr()
        }
        fn bytes_init(&self) -> usize {
            self.0.len()
        }
        fn bytes_total(&self) -> usize {
            self.0.capacity()
        }
    }

    // SAFETY: as for `IoBuf`; the pointer is valid for writes of `capacity`
    // bytes, and `set_init` only records what the kernel initialised.
    unsafe impl tokio_uring::buf::IoBufMut for UringBuf {
        fn stable_mut_ptr(&mut self) -> *mut u8 {
            aiofs::buf::IoBufMut::stable_mut_ptr(&mut self.0)
        }
        unsafe fn set_init(&mut self, pos: usize) {
            if pos > self.0.len() {
                // SAFETY: the caller (tokio-uring) guarantees the first `pos`
                // bytes were initialised by the kernel; `pos <= capacity`.
                unsafe { aiofs::buf::IoBufMut::set_init(&mut self.0, pos) }
            }
        }
    }

    /// One warm-up and one timed pass on a fresh tokio-uring runtime.
    pub(super) fn sample(path: &Path, warm: Pass, timed: Pass) -> Result<Sample> {
        let std = open_direct_std(path)?;
        tokio_uring::start(async move {
            let file = Rc::new(tokio_uring::fs::File::from_std(std));
            pass(&file, warm).await?;
            let m = Meter::start();
            let ops = pass(&file, timed).await?;
            let sample = m.stop(ops, false);
            if let Ok(file) = Rc::try_unwrap(file) {
                file.close().await?;
            }
            Ok(sample)
        })
    }

    async fn pass(file: &Rc<tokio_uring::fs::File>, p: Pass) -> io::Result<u64> {
        let deadline = Instant::now() + Duration::from_secs_f64(p.secs);
        let tasks: Vec<_> = (0..p.qd)
            .map(|t| {
                let file = Rc::clone(file);
                tokio_uring::spawn(async move {
                    let mut buf = UringBuf(AlignedBuf::new(ALIGN, BLOCK));
                    task_loop!(p, t, deadline, "tokio-uring read_at", buf, pos, {
                        buf.0.clear();
                        file.read_at(buf, pos).await
                    })
                })
            })
            .collect();
        let mut ops = 0;
        for task in tasks {
            ops += joined(task.await)??;
        }
        Ok(ops)
    }
}

/// Runs one cell once: open (untimed), a warm-up pass at the same depth
/// (threads, driver, descriptor pool), then the timed pass.
fn sample(
    rt: &Runtime,
    backend: Backend,
    path: &Path,
    p: &Params,
    qd: usize,
    seed: u64,
) -> Result<Sample> {
    let warm = Pass {
        qd,
        file_size: p.file_size,
        seed: seed ^ 0xdead_beef,
        secs: p.warm_secs,
    };
    let timed = Pass {
        seed,
        secs: p.run_secs,
        ..warm
    };
    match backend {
        Backend::Aiofs(pool) => {
            let file = rt.block_on(
                aiofs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(path),
            )?;
            if let Some(n) = pool {
                file.set_fd_pool(n);
            }
            let file = Arc::new(file);
            rt.block_on(aiofs_pass(&file, warm))?;
            let m = Meter::start();
            let ops = rt.block_on(aiofs_pass(&file, timed))?;
            Ok(m.stop(ops, true))
        }
        Backend::SpawnBlocking => {
            let file = Arc::new(open_direct_std(path)?);
            rt.block_on(spawn_blocking_pass(&file, warm))?;
            let m = Meter::start();
            let ops = rt.block_on(spawn_blocking_pass(&file, timed))?;
            Ok(m.stop(ops, false))
        }
        #[cfg(target_os = "linux")]
        Backend::TokioUring => uring::sample(path, warm, timed),
        Backend::StdPread => {
            let file = open_direct_std(path)?;
            std_pass(&file, warm)?;
            let m = Meter::start();
            let ops = std_pass(&file, timed)?;
            Ok(m.stop(ops, false))
        }
    }
}

// ---------------------------------------------------------------- output

fn find(rows: &[Row], qd: usize, backend: Backend) -> Option<&Row> {
    rows.iter().find(|r| r.qd == qd && r.backend == backend)
}

/// This row ÷ the single-fd aiofs row (IOPS), ÷ spawn_blocking (IOPS, CPU/op).
fn ratios(rows: &[Row], row: &Row) -> (Option<f64>, Option<f64>, Option<f64>) {
    let single = find(rows, row.qd, Backend::Aiofs(Some(1)));
    let sb = find(rows, row.qd, Backend::SpawnBlocking);
    (
        single.and_then(|s| ratio(row.iops(), s.iops())),
        sb.and_then(|s| ratio(row.iops(), s.iops())),
        sb.and_then(|s| ratio(row.cpu_us_per_op(), s.cpu_us_per_op())),
    )
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{:.0}%", x * 100.0))
}

fn print_json(rows: &[Row], p: &Params, notifier: &str) {
    for row in rows {
        let (r_single, r_sb, r_sb_cpu) = ratios(rows, row);
        println!(
            "{{\"bench\":\"direct\",\"backend\":{},\"qd\":{},\"mode\":{},\"notifier\":{},\"runs\":{},\"run_secs\":{},\"file_mib\":{},\"iops\":{},\"mb_per_s\":{},\"cpu_us_per_op\":{},\"csw_per_op\":{},\"over_aiofs_single_fd_iops\":{},\"over_spawn_blocking_iops\":{},\"over_spawn_blocking_cpu_us_per_op\":{},\"pool_request_share\":{},\"other_cpu_share\":{},\"samples_iops\":{},\"samples_cpu_us_per_op\":{},\"samples_ops\":{},\"samples_other_cpu_share\":{}}}",
            json_str(&row.name),
            row.qd,
            json_str(p.mode),
            json_str(notifier),
            row.samples.len(),
            p.run_secs,
            p.file_size / MIB,
            json_num(Some(row.iops())),
            json_num(Some(row.mb_per_s())),
            json_num(Some(row.cpu_us_per_op())),
            json_num(Some(row.csw_per_op())),
            json_num(r_single),
            json_num(r_sb),
            json_num(r_sb_cpu),
            json_num(row.pool_share()),
            json_num(row.other()),
            json_list(row.samples.iter().map(Sample::iops)),
            json_list(row.samples.iter().map(Sample::cpu_us_per_op)),
            json_list(row.samples.iter().map(|s| s.ops as f64)),
            json_list(row.samples.iter().map(|s| s.other().unwrap_or(f64::NAN))),
        );
    }
}

fn print_table(rows: &[Row], p: &Params, notifier: &str, path: &Path) {
    println!(
        "aiofs direct bench: {} mode, median of {} run(s) of {:.1} s per cell, notifier {notifier}, {} CPUs",
        p.mode,
        p.runs,
        p.run_secs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "random {} KiB O_DIRECT reads of a {} MiB file at {}",
        BLOCK / KIB,
        p.file_size / MIB,
        path.display()
    );
    println!(
        "CPU, csw = getrusage(RUSAGE_SELF) user+sys time, context switches of the whole process / read; ÷fd1 = this ÷ aiofs fd_pool=1, ÷sb = this ÷ spawn_blocking+pread (same QD); pool% = reads sent to a pool descriptor; other% = CPU busy outside this process (other programs, kernel threads, steal; not interrupts) / all CPUs"
    );
    let mut last_qd = None;
    for row in rows {
        if last_qd != Some(row.qd) {
            println!();
            println!(
                "{:>4}  {:<22} {:>8} {:>7} {:>9} {:>6} | {:>7} {:>7} {:>8} | {:>5} {:>6} | runs: IOPS/CPU µs/other%",
                "QD",
                "backend",
                "IOPS",
                "MB/s",
                "CPU µs/op",
                "csw/op",
                "÷fd1",
                "÷sb",
                "÷sb CPU",
                "pool%",
                "other%",
            );
            last_qd = Some(row.qd);
        }
        let (r_single, r_sb, r_sb_cpu) = ratios(rows, row);
        let runs: Vec<String> = row
            .samples
            .iter()
            .map(|s| {
                format!(
                    "{}/{:.1}/{}",
                    fmt_rate(s.iops()),
                    s.cpu_us_per_op(),
                    pct(s.other())
                )
            })
            .collect();
        println!(
            "{:>4}  {:<22} {:>8} {:>7.1} {:>9.1} {:>6.2} | {:>7} {:>7} {:>8} | {:>5} {:>6} | {}",
            row.qd,
            row.name,
            fmt_rate(row.iops()),
            row.mb_per_s(),
            row.cpu_us_per_op(),
            row.csw_per_op(),
            fmt_ratio(r_single),
            fmt_ratio(r_sb),
            fmt_ratio(r_sb_cpu),
            pct(row.pool_share()),
            pct(row.other()),
            runs.join(" "),
        );
    }
    let others: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.samples.iter().filter_map(Sample::other))
        .collect();
    let worst = others.iter().copied().fold(0.0, f64::max);
    if worst > 0.10 {
        println!();
        println!(
            "WARNING: up to {:.0}% of the CPUs were busy outside this process during a timed run: the figures are disturbed",
            worst * 100.0
        );
    }
    println!();
    for qd in QUEUE_DEPTHS {
        let Some(pool) = find(rows, qd, Backend::Aiofs(None)) else {
            continue;
        };
        let (r_single, r_sb, _) = ratios(rows, pool);
        let verdict = |r: Option<f64>, bar: f64| match r {
            _ if qd != BAR_QD => String::new(),
            Some(r) if r >= bar => format!(" (bar ≥ {bar:.2}x: met)"),
            _ => format!(" (bar ≥ {bar:.2}x: MISSED)"),
        };
        println!(
            "QD{qd}: {} ÷ aiofs fd_pool=1 = {}{}; ÷ spawn_blocking+pread = {}{}",
            pool.name,
            fmt_ratio(r_single),
            verdict(r_single, BAR_OVER_SINGLE_FD),
            fmt_ratio(r_sb),
            verdict(r_sb, BAR_OVER_SPAWN_BLOCKING),
        );
    }
}

fn print_stats(json: bool, elapsed: f64) {
    let s = aiofs::stats();
    if json {
        println!(
            "{{\"stats\":{{\"submitted\":{},\"completed\":{},\"in_flight\":{},\"orphaned\":{},\"signals\":{},\"scans\":{},\"eagain_retries\":{},\"pool_fds\":{},\"pool_requests\":{},\"listio_calls\":{}}},\"elapsed_s\":{elapsed:.1}}}",
            s.submitted,
            s.completed,
            s.in_flight,
            s.orphaned,
            s.signals,
            s.scans,
            s.eagain_retries,
            s.pool_fds,
            s.pool_requests,
            s.listio_calls,
        );
    } else {
        println!();
        println!(
            "aiofs::stats(): pool_fds {}, pool_requests {}, listio_calls {}; submitted {}, completed {}, in_flight {}",
            s.pool_fds, s.pool_requests, s.listio_calls, s.submitted, s.completed, s.in_flight
        );
        println!("{s:?}");
        println!("bench took {elapsed:.1} s");
    }
}

// ---------------------------------------------------------------- main

fn main() -> Result<()> {
    let mut p = FULL;
    let mut json = false;
    let mut secs = None;
    let mut only_qd = Vec::new();
    let mut block_signal = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => p = QUICK,
            "--json" => json = true,
            "--block-signal" => block_signal = true,
            "--secs" => {
                let v = args.next().ok_or("--secs needs a value")?;
                secs = Some(v.parse::<f64>().map_err(|e| format!("--secs {v}: {e}"))?);
            }
            "--qd" => {
                let v = args.next().ok_or("--qd needs a value")?;
                let qd: usize = v.parse().map_err(|e| format!("--qd {v}: {e}"))?;
                if !QUEUE_DEPTHS.contains(&qd) {
                    return Err(format!("--qd {qd}: one of {QUEUE_DEPTHS:?}").into());
                }
                only_qd.push(qd);
            }
            "--bench" => {}
            "-h" | "--help" => {
                println!(
                    "usage: cargo bench --bench direct [-- [--quick] [--json] [--block-signal] [--secs SECONDS] [--qd 1|32]...]"
                );
                return Ok(());
            }
            other => eprintln!("direct: ignoring argument {other:?}"),
        }
    }
    if let Some(s) = secs.filter(|s| s.is_finite() && *s > 0.0) {
        p.run_secs = s;
    }
    let notifier = std::env::var("AIOFS_NOTIFIER").unwrap_or_else(|_| "pipe (default)".into());
    let started = Instant::now();
    if block_signal {
        // Every thread blocks the completion signal: the notifier reads it from
        // its signalfd (see aiofs::block_completion_signal).
        aiofs::block_completion_signal()?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .on_thread_start(move || {
            if block_signal {
                let _ = aiofs::block_completion_signal();
            }
        })
        .enable_all()
        .build()?;

    eprintln!(
        "direct: {} mode; writing {} MiB with O_DIRECT",
        p.mode,
        p.file_size / MIB
    );
    let (_dir, path) = place_file(p.file_size)?;
    eprintln!(
        "direct: {} written in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );

    // The default pool an O_DIRECT file gets, for the row's name.
    let default_pool = rt
        .block_on(
            aiofs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path),
        )?
        .fd_pool();

    let mut rows = Vec::new();
    for (qi, qd) in QUEUE_DEPTHS.into_iter().enumerate() {
        if !only_qd.is_empty() && !only_qd.contains(&qd) {
            continue;
        }
        let backends = Backend::at(qd);
        let first = rows.len();
        for &backend in &backends {
            rows.push(Row {
                backend,
                name: backend.name(default_pool),
                qd,
                samples: Vec::new(),
            });
        }
        for rep in 0..p.runs {
            eprintln!("direct: qd {qd} run {}/{}", rep + 1, p.runs);
            for (i, &backend) in backends.iter().enumerate() {
                let seed = ((qi * 64 + i) * 64 + rep) as u64;
                let s = sample(&rt, backend, &path, &p, qd, seed)?;
                rows[first + i].samples.push(s);
            }
        }
    }

    if json {
        print_json(&rows, &p, &notifier);
    } else {
        print_table(&rows, &p, &notifier, &path);
    }
    drop(rt);
    print_stats(json, started.elapsed().as_secs_f64());
    Ok(())
}
