//! What every sample shares: its result ([`Sample`], the line a sample
//! process prints), the runtime a row runs on, the measuring of a timed run
//! (CPU, context switches, the machine's noise, latencies, aiofs's counters),
//! the tasks of a queue depth, and the dispatch to the workload's module.

use super::util::{Meter, joined, warm};
use super::{Backend, Spec, Workload, files, random, seq, wal};
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Takes one sample in this process.
pub(super) fn take(spec: &Spec) -> io::Result<Sample> {
    match spec.cell.workload {
        Workload::Cached | Workload::Latency | Workload::Direct | Workload::Cold => {
            random::sample(spec)
        }
        Workload::SeqCopy | Workload::SeqReadAt | Workload::WriteStream | Workload::WriteAt => {
            seq::sample(spec)
        }
        Workload::Small | Workload::Whole => files::sample(spec),
        Workload::Wal => wal::sample(spec),
    }
}

pub(super) fn unsupported(spec: &Spec) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "{} is not measured with {}",
            spec.cell.workload.key(),
            spec.what()
        ),
    )
}

// ---------------------------------------------------------------- runtimes

/// The multi_thread runtime the Tokio rows run on: [`super::WORKERS`]
/// workers; every thread blocks the completion signal when the aiofs row
/// says so; tokio's io_uring driver for `tokio::fs io_uring`.
pub(super) fn runtime(spec: &Spec) -> io::Result<Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(super::WORKERS).enable_all();
    if spec.backend.aiofs_row().is_some_and(|r| r.block_signal) {
        b.on_thread_start(|| {
            // Inherited from the main thread already; harmless again.
            let _ = aiofs::block_completion_signal();
        });
    }
    if spec.backend == Backend::TokioFsUring {
        enable_io_uring(&mut b)?;
    }
    b.build()
}

#[cfg(all(tokio_unstable, feature = "bench-tokio-io-uring", target_os = "linux"))]
fn enable_io_uring(b: &mut tokio::runtime::Builder) -> io::Result<()> {
    b.enable_io_uring();
    Ok(())
}

#[cfg(not(all(tokio_unstable, feature = "bench-tokio-io-uring", target_os = "linux")))]
fn enable_io_uring(_: &mut tokio::runtime::Builder) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "this build has no io_uring driver in tokio (the harness builds one with RUSTFLAGS=\"--cfg tokio_unstable\" --features bench-tokio-io-uring)",
    ))
}

/// The io_uring instances this process holds (`anon_inode:[io_uring]`
/// descriptors): tokio falls back to its blocking pool, silently, where the
/// kernel refuses io_uring.
fn io_uring_instances() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| {
        dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().contains("io_uring"))
            .count()
    })
}

/// Runs `fut` as a task on the runtime's workers and waits for it.
pub(super) fn on_worker<T: Send + 'static>(
    rt: &Runtime,
    fut: impl Future<Output = io::Result<T>> + Send + 'static,
) -> io::Result<T> {
    joined(rt.block_on(rt.spawn(fut)))?
}

/// Starts the row's threads with one small untimed request in `dir`: the
/// aiofs driver and glibc's AIO threads, or Tokio's blocking pool.
pub(super) fn start_threads(rt: &Runtime, spec: &Spec) -> io::Result<()> {
    let dir = spec.scratch.clone();
    let path = dir.join(format!("start-{}-{}", std::process::id(), spec.seed));
    if spec.backend.is_aiofs() {
        on_worker(rt, async move {
            aiofs::write(&path, vec![0u8; super::BLOCK]).await?;
            aiofs::remove_file(&path).await
        })
    } else {
        on_worker(rt, async move { tokio::fs::metadata(dir).await }).map(drop)
    }
}

// ---------------------------------------------------------------- tasks and passes

/// Latencies of one task's ops (ns), when recorded.
#[derive(Debug, Default)]
pub(super) struct Lat(Option<Vec<u32>>);

impl Lat {
    pub(super) fn new(record: bool) -> Lat {
        Lat(record.then(|| Vec::with_capacity(1024)))
    }

    /// The start of an op, when recorded.
    pub(super) fn start(&self) -> Option<Instant> {
        self.0.as_ref().map(|_| Instant::now())
    }

    pub(super) fn stop(&mut self, t0: Option<Instant>, t1: Instant) {
        if let (Some(v), Some(t0)) = (&mut self.0, t0) {
            v.push(u32::try_from((t1 - t0).as_nanos()).unwrap_or(u32::MAX));
        }
    }

    /// p50 and p99, µs.
    fn percentiles(self) -> (Option<f64>, Option<f64>) {
        let Some(mut v) = self.0.filter(|v| !v.is_empty()) else {
            return (None, None);
        };
        v.sort_unstable();
        let pct = |q: usize| Some(v[(v.len() * q / 100).min(v.len() - 1)] as f64 / 1e3);
        (pct(50), pct(99))
    }
}

/// What a pass (or one of its tasks) did.
#[derive(Debug, Default)]
pub(super) struct Done {
    pub(super) ops: u64,
    pub(super) bytes: u64,
    pub(super) lat: Lat,
}

impl Done {
    fn add(&mut self, o: Done) {
        self.ops += o.ops;
        self.bytes += o.bytes;
        match (&mut self.lat.0, o.lat.0) {
            (Some(v), Some(o)) => v.extend(o),
            (None, o) => self.lat.0 = o,
            _ => {}
        }
    }
}

/// Spawns `qd` tasks (`spawn(t)` starts task `t`) and adds up what they did.
pub(super) async fn tasks(
    qd: usize,
    spawn: impl FnMut(usize) -> JoinHandle<io::Result<Done>>,
) -> io::Result<Done> {
    let handles: Vec<_> = (0..qd).map(spawn).collect();
    let mut total = Done::default();
    for h in handles {
        total.add(joined(h.await)??);
    }
    Ok(total)
}

/// A pass's phase: an untimed warm-up (threads, driver, descriptor pool)
/// or the timed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Warm,
    Timed,
}

impl Phase {
    /// When this phase of `spec` ends (a pass that runs for a time).
    pub(super) fn deadline(self, spec: &Spec) -> Instant {
        let secs = match self {
            Phase::Warm => spec.warm_secs,
            Phase::Timed => spec.secs,
        };
        Instant::now() + Duration::from_secs_f64(secs)
    }
}

/// The warm-up pass, `prepare` (evict or warm the input), then the timed
/// pass, measured.
pub(super) async fn two_passes(
    spec: &Spec,
    prepare: impl FnOnce() -> io::Result<()>,
    mut pass: impl AsyncFnMut(Phase) -> io::Result<Done>,
) -> io::Result<Sample> {
    pass(Phase::Warm).await?;
    prepare()?;
    let m = Measure::start(spec);
    let done = pass(Phase::Timed).await?;
    m.stop(done)
}

/// The two passes of a workload run by tasks: `open` gives each task its
/// resource (opened untimed; one per task), `pass` describes a phase, `task`
/// runs one task of it. The tasks run on the row's runtime, or, for std, the
/// one task on this thread.
pub(super) fn run_tasks<T: Clone, P: Clone, Fut>(
    spec: &Spec,
    open: impl AsyncFnOnce() -> io::Result<Vec<T>>,
    prepare: impl FnOnce() -> io::Result<()>,
    pass: impl Fn(Phase) -> P,
    task: impl Fn(P, usize, T) -> Fut,
) -> io::Result<Sample>
where
    Fut: Future<Output = io::Result<Done>> + Send + 'static,
{
    if spec.backend == Backend::Std {
        let r = futures::executor::block_on(open())?;
        return futures::executor::block_on(two_passes(spec, prepare, async |ph| {
            task(pass(ph), 0, r[0].clone()).await
        }));
    }
    let rt = runtime(spec)?;
    let r = rt.block_on(open())?;
    rt.block_on(two_passes(spec, prepare, async |ph| {
        let p = pass(ph);
        tasks(r.len(), |t| tokio::spawn(task(p.clone(), t, r[t].clone()))).await
    }))
}

/// Starts the row's runtime and threads, opens (`open`, untimed), warms the
/// input, then measures `body` (the bytes it moves) as one task on a worker.
pub(super) fn measured<T, Fut>(
    spec: &Spec,
    open: impl Future<Output = io::Result<T>>,
    body: impl FnOnce(T) -> Fut,
) -> io::Result<Sample>
where
    Fut: Future<Output = io::Result<u64>> + Send + 'static,
{
    let rt = runtime(spec)?;
    start_threads(&rt, spec)?;
    let file = rt.block_on(open)?;
    let fut = body(file);
    measured_std(spec, || on_worker(&rt, fut))
}

/// Warms the input, then measures `body` (the bytes it moves, which must be
/// the cell's size) on this thread; an op is a MiB.
pub(super) fn measured_std(
    spec: &Spec,
    body: impl FnOnce() -> io::Result<u64>,
) -> io::Result<Sample> {
    if !spec.input.as_os_str().is_empty() {
        warm(&spec.input)?;
    }
    let m = Measure::start(spec);
    let n = body()?;
    if n != spec.size {
        return Err(io::Error::other(format!(
            "{}: moved {n} bytes, want {}",
            spec.what(),
            spec.size
        )));
    }
    m.stop(Done {
        ops: n.div_ceil(super::CHUNK as u64),
        bytes: n,
        lat: Lat::default(),
    })
}

// ---------------------------------------------------------------- measuring

/// The counters of `aiofs::stats()` a sample records, per op in the report.
pub const AIO_FIELDS: [&str; 7] = [
    "submitted",
    "signals",
    "signalfd_signals",
    "nowait_reads",
    "nowait_misses",
    "pool_requests",
    "scans",
];

fn aio_values() -> [u64; 7] {
    let s = aiofs::stats();
    [
        s.submitted,
        s.signals,
        s.signalfd_signals,
        s.nowait_reads,
        s.nowait_misses,
        s.pool_requests,
        s.scans,
    ]
}

/// The device of the data directory (`st_dev` of the scratch directory).
fn data_device(spec: &Spec) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(&spec.scratch).ok().map(|m| m.dev())
}

/// The process's CPU, the machine's, and aiofs's counters over a timed run.
pub(super) struct Measure {
    meter: Meter,
    aio0: Option<[u64; 7]>,
    uring: bool,
}

impl Measure {
    pub(super) fn start(spec: &Spec) -> Measure {
        Measure {
            aio0: spec.backend.is_aiofs().then(aio_values),
            uring: spec.backend == Backend::TokioFsUring,
            meter: Meter::start(data_device(spec)),
        }
    }

    /// The sample of what the timed run did.
    ///
    /// # Errors
    ///
    /// For `tokio::fs io_uring`: no io_uring instance in the process (tokio
    /// fell back to its blocking pool).
    pub(super) fn stop(self, done: Done) -> io::Result<Sample> {
        let m = self.meter.stop();
        if self.uring && io_uring_instances() == 0 {
            return Err(io::Error::other(
                "tokio::fs did not use io_uring (no io_uring instance: the kernel refused it?)",
            ));
        }
        let aio = self.aio0.map(|a0| {
            let mut a = aio_values();
            a.iter_mut().zip(a0).for_each(|(a, a0)| *a -= a0);
            a
        });
        let (p50_us, p99_us) = done.lat.percentiles();
        Ok(Sample {
            ops: done.ops,
            bytes: done.bytes,
            secs: m.secs,
            cpu_us: m.cpu_us,
            csw: m.csw,
            other: m.other,
            other_io: m.other_io,
            p50_us,
            p99_us,
            aio,
        })
    }
}

/// One timed run of one cell.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Ops: 4 KiB reads, files, appends, or MiB moved.
    pub ops: u64,
    pub bytes: u64,
    pub secs: f64,
    /// `getrusage(RUSAGE_SELF)` user + system of the process, µs.
    pub cpu_us: f64,
    /// Context switches of the process, voluntary and not.
    pub csw: f64,
    /// Share of all CPUs busy outside the process (`/proc/stat`).
    pub other: Option<f64>,
    /// Disk I/O of others on the data's device, MB/s (`/proc/diskstats`).
    pub other_io: Option<f64>,
    /// Percentiles of the ops' latencies, µs, where they were timed.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// aiofs rows: [`AIO_FIELDS`] over the run.
    pub aio: Option<[u64; 7]>,
}

impl Sample {
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    pub fn cpu_us_per_op(&self) -> f64 {
        self.cpu_us / self.ops as f64
    }
    /// aiofs rows: the counter `field` (of [`AIO_FIELDS`]) per op.
    pub fn aio_per_op(&self, field: &str) -> Option<f64> {
        let i = AIO_FIELDS.iter().position(|f| *f == field)?;
        self.aio.map(|a| a[i] as f64 / self.ops as f64)
    }

    pub(super) fn encode(&self) -> String {
        let opt = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| x.to_string());
        let aio = self
            .aio
            .map_or_else(|| "-".to_string(), |a| a.map(|x| x.to_string()).join(","));
        format!(
            "ops={} bytes={} secs={} cpu_us={} csw={} other={} other_io={} p50_us={} p99_us={} aio={aio}",
            self.ops,
            self.bytes,
            self.secs,
            self.cpu_us,
            self.csw,
            opt(self.other),
            opt(self.other_io),
            opt(self.p50_us),
            opt(self.p99_us),
        )
    }

    pub(super) fn decode(line: &str) -> Option<Sample> {
        let mut s = Sample::default();
        let opt = |v: &str| {
            (v != "-")
                .then(|| v.parse().ok())
                .map_or(Some(None), |x| x.map(Some))
        };
        for field in line.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            match k {
                "ops" => s.ops = v.parse().ok()?,
                "bytes" => s.bytes = v.parse().ok()?,
                "secs" => s.secs = v.parse().ok()?,
                "cpu_us" => s.cpu_us = v.parse().ok()?,
                "csw" => s.csw = v.parse().ok()?,
                "other" => s.other = opt(v)?,
                "other_io" => s.other_io = opt(v)?,
                "p50_us" => s.p50_us = opt(v)?,
                "p99_us" => s.p99_us = opt(v)?,
                "aio" if v == "-" => s.aio = None,
                "aio" => {
                    let n: Vec<u64> = v
                        .split(',')
                        .map(|x| x.parse().ok())
                        .collect::<Option<_>>()?;
                    s.aio = Some(n.try_into().ok()?);
                }
                _ => return None,
            }
        }
        (s.ops > 0 && s.secs > 0.0).then_some(s)
    }
}
