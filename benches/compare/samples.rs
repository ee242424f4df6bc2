//! The sample side of `benches/compare`: one cell, one backend, one run,
//! in the process that calls [`sample`] (a sample process, or a thread of the
//! bench's own with `--in-process`).

use super::common::{
    Meter, RandomOffsets, fill_pattern, joined, verify_file_sampled, verify_pattern,
};
use super::{AioCounters, BLOCK, Backend, CHUNK, SEQ_DEPTH, Sample, Spec, WORKERS, Workload};
use std::fs;
use std::future::Future;
use std::io::{self, Read as _, SeekFrom, Write as _};
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aiofs::buf::AlignedBuf;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::runtime::Runtime;

/// `O_DIRECT` buffer alignment: a page covers any logical block size.
const ALIGN: usize = 4096;

/// Takes one sample in this process.
pub(super) fn sample(spec: &Spec) -> io::Result<Sample> {
    match spec.workload {
        Workload::Cached | Workload::Latency | Workload::Direct => random_sample(spec),
        Workload::SeqCopy | Workload::SeqReadAt => seq_sample(spec),
        Workload::WriteStream | Workload::WriteAt => write_sample(spec),
    }
}

// ---------------------------------------------------------------- measuring

/// The multi_thread runtime the Tokio backends run on.
fn runtime() -> io::Result<Runtime> {
    let block = super::blocks_signal();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .on_thread_start(move || {
            if block {
                // Inherited from the main thread already; harmless again.
                let _ = aiofs::block_completion_signal();
            }
        })
        .enable_all()
        .build()
}

/// Runs `fut` as a task on the runtime's workers and waits for it.
fn on_worker<T: Send + 'static>(
    rt: &Runtime,
    fut: impl Future<Output = io::Result<T>> + Send + 'static,
) -> io::Result<T> {
    joined(rt.block_on(rt.spawn(fut)))?
}

/// Starts the aiofs driver and glibc's AIO threads (and Tokio's blocking
/// pool): a small file written and removed in `dir`, untimed.
fn start_aiofs(rt: &Runtime, dir: &Path) -> io::Result<()> {
    let path = dir.join(format!("start-{}", std::process::id()));
    on_worker(rt, async move {
        aiofs::write(&path, vec![0u8; BLOCK]).await?;
        aiofs::remove_file(&path).await
    })
}

/// Starts Tokio's blocking pool (one thread), untimed.
fn start_blocking(rt: &Runtime) -> io::Result<()> {
    on_worker(rt, async {
        joined(tokio::task::spawn_blocking(|| ()).await)
    })
}

/// The process's CPU, the machine's, and aiofs's counters over a timed run.
struct Measure {
    meter: Meter,
    stats0: Option<aiofs::Stats>,
}

impl Measure {
    fn start(aiofs: bool) -> Measure {
        let stats0 = aiofs.then(aiofs::stats);
        Measure {
            meter: Meter::start(),
            stats0,
        }
    }

    /// The sample, with the percentiles of `lat` (ns) if not empty.
    fn stop(self, ops: u64, bytes: u64, mut lat: Vec<u32>) -> Sample {
        let m = self.meter.stop();
        let aio = self
            .stats0
            .map(|s0| AioCounters::between(&s0, &aiofs::stats()));
        lat.sort_unstable();
        let pct = |q: usize| (!lat.is_empty()).then(|| lat[lat.len() * q / 100] as f64 / 1e3);
        Sample {
            ops,
            bytes,
            secs: m.secs,
            cpu_us: m.usage.cpu_us,
            csw: m.usage.csw,
            other: m.other,
            p50_us: pct(50),
            p99_us: pct(99),
            aio,
        }
    }
}

// ---------------------------------------------------------------- random reads

/// One pass of random reads.
#[derive(Debug, Clone, Copy)]
struct Pass {
    qd: usize,
    blocks: u64,
    /// Seeds the offsets: different per backend, run and pass.
    seed: u64,
    secs: f64,
    /// Time every read (the latency workload).
    record: bool,
}

impl Pass {
    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs_f64(self.secs)
    }
    fn latency_capacity(&self) -> usize {
        if self.record {
            (self.secs * 2e6) as usize
        } else {
            0
        }
    }
}

/// Reads done, and their latencies (ns) when recorded.
type Counted = (u64, Vec<u32>);

/// Checks one read: a full block, and the pattern when `check_data`.
fn check_read(n: usize, buf: &[u8], pos: u64, check_data: bool, what: &str) -> io::Result<()> {
    if n != BLOCK || buf.len() < BLOCK {
        return Err(io::Error::other(format!(
            "{what}: short read at {pos}: {n} bytes (buffer length {})",
            buf.len()
        )));
    }
    if check_data {
        verify_pattern(&buf[..BLOCK], pos, what)?;
    }
    Ok(())
}

/// One task's loop: reads at its offsets until the deadline, checking every
/// length and the data of the first and the last read; the count (and the
/// latencies). `$read` does one read into `$buf` at `$pos` and hands back
/// `(io::Result<usize>, buffer)`.
macro_rules! task_loop {
    ($pass:expr, $deadline:expr, $task:expr, $what:expr, $buf:ident, $pos:ident, $read:expr) => {{
        let p: Pass = $pass;
        let mut offsets = RandomOffsets::new(p.seed, $task, p.blocks, BLOCK as u64);
        let mut lat: Vec<u32> = Vec::with_capacity(p.latency_capacity());
        let mut count = 0u64;
        let last = loop {
            let $pos = offsets.next().expect("endless");
            let t0 = p.record.then(Instant::now);
            let (res, b) = $read;
            let t1 = Instant::now();
            $buf = b;
            if let Some(t0) = t0 {
                lat.push(u32::try_from((t1 - t0).as_nanos()).unwrap_or(u32::MAX));
            }
            check_read(res?, &$buf, $pos, count == 0, $what)?;
            count += 1;
            if t1 >= $deadline {
                break $pos;
            }
        };
        verify_pattern(&$buf[..BLOCK], last, $what)?;
        io::Result::Ok((count, lat))
    }};
}

async fn gather(tasks: Vec<tokio::task::JoinHandle<io::Result<Counted>>>) -> io::Result<Counted> {
    let mut total: Counted = (0, Vec::new());
    for task in tasks {
        let (n, lat) = joined(task.await)??;
        total.0 += n;
        total.1.extend(lat);
    }
    Ok(total)
}

/// Buffers: empty with room for a block (a read sets the length), or a block
/// of zeros (for `pread`); aligned for `O_DIRECT`.
fn empty_vec() -> Vec<u8> {
    Vec::with_capacity(BLOCK)
}
fn empty_aligned() -> AlignedBuf {
    AlignedBuf::new(ALIGN, BLOCK)
}
fn zeroed_vec() -> Vec<u8> {
    vec![0u8; BLOCK]
}
fn zeroed_aligned() -> AlignedBuf {
    let mut b = AlignedBuf::new(ALIGN, BLOCK);
    b.resize(BLOCK, 0);
    b
}

/// aiofs: QD tasks, `read_at` on one shared file.
async fn aiofs_random<B>(
    file: &Arc<aiofs::File>,
    p: Pass,
    what: &'static str,
    mk: fn() -> B,
) -> io::Result<Counted>
where
    B: aiofs::buf::IoBufMut + Deref<Target = [u8]> + Send + 'static,
{
    let deadline = p.deadline();
    let tasks = (0..p.qd)
        .map(|t| {
            let file = Arc::clone(file);
            tokio::spawn(async move {
                let mut buf = mk();
                task_loop!(p, deadline, t, what, buf, pos, file.read_at(buf, pos).await)
            })
        })
        .collect();
    gather(tasks).await
}

/// spawn_blocking: QD tasks, each read a `pread` on the blocking pool.
async fn spawn_blocking_random<B>(
    file: &Arc<fs::File>,
    p: Pass,
    what: &'static str,
    mk: fn() -> B,
) -> io::Result<Counted>
where
    B: DerefMut<Target = [u8]> + Send + 'static,
{
    let deadline = p.deadline();
    let tasks = (0..p.qd)
        .map(|t| {
            let file = Arc::clone(file);
            tokio::spawn(async move {
                let mut buf = mk();
                task_loop!(p, deadline, t, what, buf, pos, {
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
    gather(tasks).await
}

/// tokio::fs: a `File` per task (it has one cursor), `seek` + `read_exact`;
/// the files are handed back for the next pass.
async fn tokio_fs_random(
    files: Vec<tokio::fs::File>,
    p: Pass,
    what: &'static str,
) -> io::Result<(Counted, Vec<tokio::fs::File>)> {
    let deadline = p.deadline();
    let tasks: Vec<_> = files
        .into_iter()
        .enumerate()
        .map(|(t, mut file)| {
            tokio::spawn(async move {
                let mut buf = zeroed_vec();
                let counted = task_loop!(p, deadline, t, what, buf, pos, {
                    let res = seek_read(&mut file, &mut buf, pos).await;
                    (res, buf)
                })?;
                io::Result::Ok((counted, file))
            })
        })
        .collect();
    let mut total: Counted = (0, Vec::new());
    let mut back = Vec::with_capacity(tasks.len());
    for task in tasks {
        let ((n, lat), file) = joined(task.await)??;
        total.0 += n;
        total.1.extend(lat);
        back.push(file);
    }
    Ok((total, back))
}

async fn seek_read(file: &mut tokio::fs::File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    file.seek(SeekFrom::Start(pos)).await?;
    file.read_exact(buf).await?;
    Ok(buf.len())
}

/// std: a `pread` loop on this thread (the queue depth is 1 whatever the cell's).
fn std_random<B: DerefMut<Target = [u8]>>(
    file: &fs::File,
    p: Pass,
    what: &'static str,
    mk: fn() -> B,
) -> io::Result<Counted> {
    let deadline = p.deadline();
    let mut buf = mk();
    task_loop!(p, deadline, 0, what, buf, pos, {
        let res = file.read_at(&mut buf, pos);
        (res, buf)
    })
}

fn open_std_read(path: &Path, direct: bool) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(if direct { libc::O_DIRECT } else { 0 })
        .open(path)
}

/// An untimed warm-up pass at the same depth (threads, driver, descriptor
/// pool), then the timed pass.
fn warm_then_time(
    aiofs: bool,
    warm: Pass,
    timed: Pass,
    mut pass: impl FnMut(Pass) -> io::Result<Counted>,
) -> io::Result<Sample> {
    pass(warm)?;
    let m = Measure::start(aiofs);
    let (ops, lat) = pass(timed)?;
    Ok(m.stop(ops, ops * BLOCK as u64, lat))
}

fn random_sample(spec: &Spec) -> io::Result<Sample> {
    let direct = spec.workload == Workload::Direct;
    let what = spec.backend.name(spec.workload);
    let warm = Pass {
        qd: spec.qd,
        blocks: (spec.size / BLOCK) as u64,
        seed: spec.seed ^ 0xdead_beef,
        secs: spec.warm_secs,
        record: false,
    };
    let timed = Pass {
        seed: spec.seed,
        secs: spec.secs,
        record: spec.workload == Workload::Latency,
        ..warm
    };
    let path = &spec.path;
    match spec.backend {
        Backend::AiofsPipe
        | Backend::AiofsSignal
        | Backend::AiofsNowaitOff
        | Backend::AiofsBlocked => {
            let rt = runtime()?;
            let mut opts = aiofs::OpenOptions::new();
            opts.read(true);
            if direct {
                opts.custom_flags(libc::O_DIRECT);
            }
            let file = Arc::new(rt.block_on(opts.open(path))?);
            if direct {
                warm_then_time(true, warm, timed, |p| {
                    rt.block_on(aiofs_random(&file, p, what, empty_aligned))
                })
            } else {
                warm_then_time(true, warm, timed, |p| {
                    rt.block_on(aiofs_random(&file, p, what, empty_vec))
                })
            }
        }
        Backend::SpawnBlocking => {
            let rt = runtime()?;
            let file = Arc::new(open_std_read(path, direct)?);
            if direct {
                warm_then_time(false, warm, timed, |p| {
                    rt.block_on(spawn_blocking_random(&file, p, what, zeroed_aligned))
                })
            } else {
                warm_then_time(false, warm, timed, |p| {
                    rt.block_on(spawn_blocking_random(&file, p, what, zeroed_vec))
                })
            }
        }
        Backend::TokioFs if !direct => {
            let rt = runtime()?;
            let mut files = rt.block_on(async {
                let mut files = Vec::with_capacity(spec.qd);
                for _ in 0..spec.qd {
                    files.push(tokio::fs::File::open(path).await?);
                }
                io::Result::Ok(files)
            })?;
            warm_then_time(false, warm, timed, |p| {
                let (counted, back) =
                    rt.block_on(tokio_fs_random(std::mem::take(&mut files), p, what))?;
                files = back;
                Ok(counted)
            })
        }
        Backend::TokioUring => uring::random(path, direct, warm, timed, what),
        Backend::Std => {
            let file = open_std_read(path, direct)?;
            if direct {
                warm_then_time(false, warm, timed, |p| {
                    std_random(&file, p, what, zeroed_aligned)
                })
            } else {
                warm_then_time(false, warm, timed, |p| {
                    std_random(&file, p, what, zeroed_vec)
                })
            }
        }
        Backend::TokioFs => Err(io::Error::other(
            "tokio::fs cannot read O_DIRECT: its buffer is not aligned",
        )),
    }
}

// ---------------------------------------------------------------- sequential reads

/// The 17 offsets of a file whose data a sequential read checks (both ends,
/// odd offsets too), and which of them were seen.
struct Checkpoints {
    points: Vec<u64>,
    seen: Vec<bool>,
}

impl Checkpoints {
    fn new(size: u64) -> Checkpoints {
        let last = size.saturating_sub(1);
        let mut points: Vec<u64> = (0..=16u64)
            .map(|k| (last * k / 16 + k % 2).min(last))
            .collect();
        points.dedup();
        let seen = vec![false; points.len()];
        Checkpoints { points, seen }
    }

    /// Checks up to 4 KiB of `buf` (the file's bytes at `pos`) from every
    /// checkpoint it holds.
    fn see(&mut self, pos: u64, buf: &[u8], what: &str) -> io::Result<()> {
        let end = pos + buf.len() as u64;
        let first = self.points.partition_point(|&p| p < pos);
        for i in first..self.points.len() {
            let point = self.points[i];
            if point >= end {
                break;
            }
            let from = (point - pos) as usize;
            let to = (from + BLOCK).min(buf.len());
            verify_pattern(&buf[from..to], point, what)?;
            self.seen[i] = true;
        }
        Ok(())
    }

    fn finish(&self, what: &str) -> io::Result<()> {
        match self.seen.iter().position(|s| !s) {
            None => Ok(()),
            Some(i) => Err(io::Error::other(format!(
                "{what}: the bytes at offset {} were never read",
                self.points[i]
            ))),
        }
    }
}

/// `tokio::io::sink()` that also checks the bytes at the [`Checkpoints`]
/// (a few compares per write otherwise).
struct CheckSink {
    pos: u64,
    checks: Checkpoints,
    what: &'static str,
}

impl AsyncWrite for CheckSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.checks.see(me.pos, buf, me.what)?;
        me.pos += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn expect_len(what: &str, got: u64, want: usize) -> io::Result<()> {
    if got == want as u64 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what}: moved {got} bytes, want {want}"
        )))
    }
}

/// `tokio::io::copy` of a whole file into a [`CheckSink`]: the bytes copied.
async fn copy_checked<R>(mut file: R, size: usize, what: &'static str) -> io::Result<u64>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut sink = CheckSink {
        pos: 0,
        checks: Checkpoints::new(size as u64),
        what,
    };
    let n = tokio::io::copy(&mut file, &mut sink).await?;
    sink.checks.finish(what)?;
    Ok(n)
}

/// Positioned reads of a whole file, 1 MiB each, one per buffer in flight;
/// `submit(buf, pos)` starts one. The bytes read.
async fn read_window<B, F, Fut>(
    size: usize,
    mut bufs: Vec<B>,
    mut submit: F,
    what: &str,
) -> io::Result<u64>
where
    B: Deref<Target = [u8]>,
    F: FnMut(B, u64) -> Fut,
    Fut: Future<Output = io::Result<(usize, B, u64)>>,
{
    let mut checks = Checkpoints::new(size as u64);
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0u64;
    let mut done = 0u64;
    loop {
        while next < size as u64
            && let Some(buf) = bufs.pop()
        {
            in_flight.push(submit(buf, next));
            next += CHUNK as u64;
        }
        let Some(res) = in_flight.next().await else {
            break;
        };
        let (n, buf, pos) = res?;
        let want = CHUNK.min(size - pos as usize);
        if n != want {
            return Err(io::Error::other(format!(
                "{what}: short read at {pos}: {n} bytes, want {want}"
            )));
        }
        checks.see(pos, &buf[..n], what)?;
        done += n as u64;
        bufs.push(buf);
    }
    checks.finish(what)?;
    Ok(done)
}

/// A synchronous read loop with a 1 MiB buffer: the bytes read.
fn std_read_loop(file: &mut fs::File, buf: &mut [u8], size: usize, what: &str) -> io::Result<u64> {
    let mut checks = Checkpoints::new(size as u64);
    let mut pos = 0u64;
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                checks.see(pos, &buf[..n], what)?;
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    checks.finish(what)?;
    Ok(pos)
}

fn seq_sample(spec: &Spec) -> io::Result<Sample> {
    let what = spec.backend.name(spec.workload);
    let size = spec.size;
    let path = spec.path.clone();
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mibs = |n: u64| n / CHUNK as u64;
    let (s, n) = match (spec.workload, spec.backend) {
        (Workload::SeqCopy, b) if b.is_aiofs() => {
            let rt = runtime()?;
            start_aiofs(&rt, &dir)?;
            let file = rt.block_on(aiofs::File::open(&path))?;
            let m = Measure::start(true);
            let n = on_worker(&rt, copy_checked(file, size, what))?;
            (m.stop(mibs(n), n, Vec::new()), n)
        }
        (Workload::SeqCopy, Backend::TokioFs) => {
            let rt = runtime()?;
            start_blocking(&rt)?;
            let file = rt.block_on(tokio::fs::File::open(&path))?;
            let m = Measure::start(false);
            let n = on_worker(&rt, copy_checked(file, size, what))?;
            (m.stop(mibs(n), n, Vec::new()), n)
        }
        (Workload::SeqReadAt, b) if b.is_aiofs() => {
            let rt = runtime()?;
            start_aiofs(&rt, &dir)?;
            let file = Arc::new(rt.block_on(aiofs::File::open(&path))?);
            let bufs: Vec<Vec<u8>> = (0..SEQ_DEPTH).map(|_| Vec::with_capacity(CHUNK)).collect();
            let m = Measure::start(true);
            let n = on_worker(&rt, async move {
                read_window(
                    size,
                    bufs,
                    |buf, pos| {
                        let read = file.read_at(buf, pos);
                        async move {
                            let (res, buf) = read.await;
                            res.map(|n| (n, buf, pos))
                        }
                    },
                    what,
                )
                .await
            })?;
            (m.stop(mibs(n), n, Vec::new()), n)
        }
        (Workload::SeqReadAt, Backend::TokioFs) => {
            let rt = runtime()?;
            start_blocking(&rt)?;
            let mut file = rt.block_on(tokio::fs::File::open(&path))?;
            let m = Measure::start(false);
            let n = on_worker(&rt, async move {
                let mut buf = vec![0u8; CHUNK];
                let mut checks = Checkpoints::new(size as u64);
                let mut pos = 0u64;
                loop {
                    let n = file.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    checks.see(pos, &buf[..n], what)?;
                    pos += n as u64;
                }
                checks.finish(what)?;
                Ok(pos)
            })?;
            (m.stop(mibs(n), n, Vec::new()), n)
        }
        (Workload::SeqReadAt, Backend::SpawnBlocking) => {
            let rt = runtime()?;
            start_blocking(&rt)?;
            let file = Arc::new(fs::File::open(&path)?);
            let bufs: Vec<Vec<u8>> = (0..SEQ_DEPTH).map(|_| vec![0u8; CHUNK]).collect();
            let m = Measure::start(false);
            let n = on_worker(&rt, async move {
                read_window(
                    size,
                    bufs,
                    |mut buf, pos| {
                        let f = Arc::clone(&file);
                        let read = tokio::task::spawn_blocking(move || {
                            let res = f.read_at(&mut buf, pos);
                            (res, buf)
                        });
                        async move {
                            let (res, buf) = joined(read.await)?;
                            res.map(|n| (n, buf, pos))
                        }
                    },
                    what,
                )
                .await
            })?;
            (m.stop(mibs(n), n, Vec::new()), n)
        }
        (Workload::SeqReadAt, Backend::TokioUring) => uring::seq_read_at(&path, size, what)?,
        (_, Backend::Std) => {
            let mut file = fs::File::open(&path)?;
            let mut buf = vec![1u8; CHUNK];
            let m = Measure::start(false);
            let n = std_read_loop(&mut file, &mut buf, size, what)?;
            (m.stop(mibs(n), n, Vec::new()), n)
        }
        (w, b) => {
            return Err(io::Error::other(format!(
                "{} is not measured with {}",
                w.key(),
                b.key()
            )));
        }
    };
    expect_len(what, n, size)?;
    Ok(s)
}

// ---------------------------------------------------------------- writes

/// The pattern from offset 0, at least `len` bytes, made once per process.
fn pattern_data(len: usize) -> &'static [u8] {
    static DATA: Mutex<&'static [u8]> = Mutex::new(&[]);
    let mut data = DATA.lock().unwrap_or_else(PoisonError::into_inner);
    if data.len() < len {
        let mut v = vec![0u8; len.next_multiple_of(8)].into_boxed_slice();
        fill_pattern(&mut v, 0);
        *data = Box::leak(v);
    }
    &data[..len]
}

/// Positioned writes of `data` from offset 0, 1 MiB each, `depth` in flight;
/// `submit(chunk, pos)` starts one.
async fn write_window<F, Fut>(data: &'static [u8], depth: usize, mut submit: F) -> io::Result<()>
where
    F: FnMut(&'static [u8], u64) -> Fut,
    Fut: Future<Output = io::Result<()>>,
{
    let mut in_flight = FuturesUnordered::new();
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        if in_flight.len() >= depth
            && let Some(res) = in_flight.next().await
        {
            res?;
        }
        in_flight.push(submit(chunk, (i * CHUNK) as u64));
    }
    while let Some(res) = in_flight.next().await {
        res?;
    }
    Ok(())
}

fn write_sample(spec: &Spec) -> io::Result<Sample> {
    let what = spec.backend.name(spec.workload);
    let size = spec.size;
    let data = pattern_data(size);
    let ops = size.div_ceil(CHUNK) as u64;
    let dir = &spec.path;
    let path = dir.join(format!(
        "write-{}-{}-{}",
        spec.backend.key(),
        std::process::id(),
        spec.seed
    ));
    let s = match (spec.workload, spec.backend) {
        (w, b) if b.is_aiofs() => {
            let rt = runtime()?;
            start_aiofs(&rt, dir)?;
            let mut file = rt.block_on(aiofs::File::create_new(&path))?;
            let m = Measure::start(true);
            if w == Workload::WriteStream {
                on_worker(&rt, async move {
                    for chunk in data.chunks(CHUNK) {
                        file.write_all(chunk).await?;
                    }
                    file.flush().await?;
                    file.sync_all().await
                })?;
            } else {
                on_worker(&rt, async move {
                    write_window(data, SEQ_DEPTH, |chunk, pos| {
                        let write = file.write_all_at(chunk, pos);
                        async move { write.await.0 }
                    })
                    .await?;
                    file.sync_all().await
                })?;
            }
            m.stop(ops, size as u64, Vec::new())
        }
        (Workload::WriteStream, Backend::TokioFs) => {
            let rt = runtime()?;
            start_blocking(&rt)?;
            let mut file = rt.block_on(tokio::fs::File::create_new(&path))?;
            let m = Measure::start(false);
            on_worker(&rt, async move {
                for chunk in data.chunks(CHUNK) {
                    file.write_all(chunk).await?;
                }
                file.flush().await?;
                file.sync_all().await
            })?;
            m.stop(ops, size as u64, Vec::new())
        }
        (Workload::WriteAt, Backend::SpawnBlocking) => {
            let rt = runtime()?;
            start_blocking(&rt)?;
            let file = Arc::new(fs::File::create_new(&path)?);
            let m = Measure::start(false);
            on_worker(&rt, async move {
                write_window(data, SEQ_DEPTH, |chunk, pos| {
                    let f = Arc::clone(&file);
                    let write = tokio::task::spawn_blocking(move || f.write_all_at(chunk, pos));
                    async move { joined(write.await)? }
                })
                .await?;
                joined(tokio::task::spawn_blocking(move || file.sync_all()).await)?
            })?;
            m.stop(ops, size as u64, Vec::new())
        }
        (Workload::WriteAt, Backend::TokioUring) => uring::write_at(&path, data)?,
        (_, Backend::Std) => {
            let mut file = fs::File::create_new(&path)?;
            let m = Measure::start(false);
            for chunk in data.chunks(CHUNK) {
                file.write_all(chunk)?;
            }
            file.sync_all()?;
            m.stop(ops, size as u64, Vec::new())
        }
        (w, b) => {
            return Err(io::Error::other(format!(
                "{} is not measured with {}",
                w.key(),
                b.key()
            )));
        }
    };
    verify_file_sampled(&path, size, what)?;
    fs::remove_file(&path)?;
    Ok(s)
}

// ---------------------------------------------------------------- tokio-uring

#[cfg(target_os = "linux")]
mod uring {
    //! tokio-uring on its own (current_thread) runtime, the way that crate is
    //! used: tasks share an `Rc<File>`.

    use super::super::common::UringBuf;
    use super::*;
    use std::rc::Rc;

    fn empty_uring_aligned() -> UringBuf {
        UringBuf(empty_aligned())
    }

    async fn pass<B>(
        file: &Rc<tokio_uring::fs::File>,
        p: Pass,
        what: &'static str,
        mk: fn() -> B,
    ) -> io::Result<Counted>
    where
        B: tokio_uring::buf::IoBufMut + Deref<Target = [u8]>,
    {
        let deadline = p.deadline();
        let tasks = (0..p.qd)
            .map(|t| {
                let file = Rc::clone(file);
                tokio_uring::spawn(async move {
                    let mut buf = mk();
                    task_loop!(p, deadline, t, what, buf, pos, file.read_at(buf, pos).await)
                })
            })
            .collect();
        gather(tasks).await
    }

    async fn warm_then_time<B>(
        std: fs::File,
        warm: Pass,
        timed: Pass,
        what: &'static str,
        mk: fn() -> B,
    ) -> io::Result<Sample>
    where
        B: tokio_uring::buf::IoBufMut + Deref<Target = [u8]>,
    {
        let file = Rc::new(tokio_uring::fs::File::from_std(std));
        pass(&file, warm, what, mk).await?;
        let m = Measure::start(false);
        let (ops, lat) = pass(&file, timed, what, mk).await?;
        let s = m.stop(ops, ops * BLOCK as u64, lat);
        if let Ok(file) = Rc::try_unwrap(file) {
            file.close().await?;
        }
        Ok(s)
    }

    pub(super) fn random(
        path: &Path,
        direct: bool,
        warm: Pass,
        timed: Pass,
        what: &'static str,
    ) -> io::Result<Sample> {
        let std = open_std_read(path, direct)?;
        tokio_uring::start(async move {
            if direct {
                warm_then_time(std, warm, timed, what, empty_uring_aligned).await
            } else {
                warm_then_time(std, warm, timed, what, empty_vec).await
            }
        })
    }

    pub(super) fn seq_read_at(
        path: &Path,
        size: usize,
        what: &'static str,
    ) -> io::Result<(Sample, u64)> {
        let std = fs::File::open(path)?;
        tokio_uring::start(async move {
            let file = tokio_uring::fs::File::from_std(std);
            let bufs: Vec<Vec<u8>> = (0..SEQ_DEPTH).map(|_| Vec::with_capacity(CHUNK)).collect();
            let m = Measure::start(false);
            let n = read_window(
                size,
                bufs,
                |buf, pos| {
                    let read = file.read_at(buf, pos);
                    async move {
                        let (res, buf) = read.await;
                        res.map(|n| (n, buf, pos))
                    }
                },
                what,
            )
            .await?;
            let s = m.stop(n / CHUNK as u64, n, Vec::new());
            file.close().await?;
            Ok((s, n))
        })
    }

    pub(super) fn write_at(path: &Path, data: &'static [u8]) -> io::Result<Sample> {
        let std = fs::File::create_new(path)?;
        tokio_uring::start(async move {
            let file = tokio_uring::fs::File::from_std(std);
            let m = Measure::start(false);
            write_window(data, SEQ_DEPTH, |chunk, pos| {
                let write = file.write_all_at(chunk, pos);
                async move { write.await.0 }
            })
            .await?;
            file.sync_all().await?;
            let s = m.stop(
                data.len().div_ceil(CHUNK) as u64,
                data.len() as u64,
                Vec::new(),
            );
            file.close().await?;
            Ok(s)
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod uring {
    //! tokio-uring exists on Linux only; its rows are not listed elsewhere.

    use super::*;

    fn unsupported() -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, "tokio-uring needs Linux")
    }
    pub(super) fn random(_: &Path, _: bool, _: Pass, _: Pass, _: &str) -> io::Result<Sample> {
        Err(unsupported())
    }
    pub(super) fn seq_read_at(_: &Path, _: usize, _: &str) -> io::Result<(Sample, u64)> {
        Err(unsupported())
    }
    pub(super) fn write_at(_: &Path, _: &'static [u8]) -> io::Result<Sample> {
        Err(unsupported())
    }
}
