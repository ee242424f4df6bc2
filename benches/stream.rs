//! Sequential streams and the whole-file functions: aiofs side by side with its
//! baselines, in one run, as ratios.
//!
//! ```text
//! cargo bench --bench stream                 # full run: 5 runs per cell, medians
//! cargo bench --bench stream -- --quick      # CI smoke run: 1 run per cell, smaller files
//! cargo bench --bench stream -- --json       # one JSON object per row on stdout
//! cargo bench --bench stream -- --in-process # every run in the bench's own process
//! AIOFS_NOTIFIER=signal cargo bench --bench stream
//! ```
//!
//! Workloads (sizes full / quick):
//!
//! - **stream read**: `tokio::io::copy(&mut file, &mut tokio::io::sink())` of a
//!   page-cached file (1 GiB / 128 MiB) through `aiofs::File` and
//!   `tokio::fs::File`, against a synchronous `std::fs::File` `read` loop with a
//!   1 MiB buffer (the limit) and with an 8 KiB buffer. The issue's bar: aiofs at
//!   least 10x `tokio::fs` on the 1 GiB file.
//! - **copy**: `aiofs::copy` vs `tokio::fs::copy` vs `std::fs::copy` of a cached
//!   file (256 MiB / 32 MiB); the copy is checked (size, and 4 KiB at 17 places).
//! - **read**: `aiofs::read` vs `tokio::fs::read` (and `std::fs::read`) of a
//!   64 MiB cached file; the content is checked.
//! - **write**: `aiofs::write` vs `tokio::fs::write` (and `std::fs::write`) of
//!   64 MiB (no sync, as the functions do); read back and checked.
//! - **stream write**: `write_all` of 64 KiB slices, `flush`, `sync_all`
//!   (256 MiB / 32 MiB) through `aiofs::File`, `tokio::fs::File` and
//!   `std::fs::File`; read back and checked.
//!
//! Every timed run is a new process of this bench (`--sample-process ...`), as
//! an application that starts, opens a file and copies it: a fresh allocator
//! and fresh threads, whatever the runs before did. This matters: glibc's
//! malloc raises its trim threshold after a large buffer is freed, and in a
//! process that has done so (the bench's own, after its warm-up and checks)
//! the read-ahead buffers that aiofs frees and allocates again keep their
//! pages, while in a fresh process they are given back to the OS and fault in
//! again on the next read. `--in-process` runs everything in the bench's
//! process instead (faster; shows that difference).
//!
//! In the run's process, the async backends run as a task on a multi_thread
//! runtime (the default `#[tokio::main]` flavour, with as many workers as
//! CPUs), after one small untimed request through aiofs and one through
//! `tokio::fs` (the driver, the notifier and the blocking pool started); the
//! `std` rows run on the main thread. Opening and creating files is outside the
//! timed region; the whole-file functions open inside it (they take a path).
//!
//! Every source file is read fully (by the bench's process) right before each
//! timed run that reads it (these machines drop idle page cache after ~30 s).
//! The runs of a workload are interleaved across backends, the order rotating
//! by one every run, so that drift on a noisy machine spreads over all of them.
//! Each figure is the median of the runs (5, or 1 with `--quick`), taken
//! independently per column.
//!
//! CPU is `getrusage(RUSAGE_SELF)` user + system of the whole process (Tokio
//! workers, the blocking pool, glibc's AIO threads, the aiofs notifier) per MiB
//! moved; kernel writeback threads are not counted. `flt/MiB` is the process's
//! minor page faults (`ru_minflt`) per MiB moved: a buffer freshly allocated
//! (or given back to the OS and allocated again) faults once per 4 KiB page.
//! Ratio columns are aiofs ÷ the row: MB/s > 1 means aiofs is faster, CPU < 1
//! means aiofs spends less.
//! Under each table, the aiofs row's driver counters (from `aiofs::stats()`,
//! the difference over the timed runs) per MiB moved. At the end,
//! `aiofs::stats()` of the bench's process and the sum over the run processes.
//! Before the timed runs, the stream-read source is read once through
//! `aiofs::File` into a sink that checks every byte.

mod common;

use common::{
    fill_pattern, fmt_ratio, json_list, json_num, json_str, median, ratio, verify_file_sampled,
    verify_pattern as verify, warm_file, write_pattern_file,
};
use std::fs;
use std::future::Future;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::runtime::Runtime;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// The std read loop's buffers: the limit, and the size `tokio::io::copy` uses.
const STD_BIG_BUF: usize = MIB;
const STD_SMALL_BUF: usize = 8 * KIB;
/// The slices handed to `write_all` in the stream-write workload.
const WRITE_SLICE: usize = 64 * KIB;
/// The issue's acceptance bar: aiofs ÷ tokio::fs on the stream read.
const BAR: f64 = 10.0;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Clone, Copy)]
struct Params {
    mode: &'static str,
    runs: usize,
    stream_size: usize,
    copy_size: usize,
    whole_size: usize,
    write_size: usize,
}

const FULL: Params = Params {
    mode: "full",
    runs: 5,
    stream_size: 1024 * MIB,
    copy_size: 256 * MIB,
    whole_size: 64 * MIB,
    write_size: 256 * MIB,
};

const QUICK: Params = Params {
    mode: "quick",
    runs: 1,
    stream_size: 128 * MIB,
    copy_size: 32 * MIB,
    whole_size: 64 * MIB,
    write_size: 32 * MIB,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    StreamRead,
    Copy,
    Read,
    Write,
    StreamWrite,
}

const WORKLOADS: [Workload; 5] = [
    Workload::StreamRead,
    Workload::Copy,
    Workload::Read,
    Workload::Write,
    Workload::StreamWrite,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Aiofs,
    TokioFs,
    Std,
    /// The stream read's std loop with an 8 KiB buffer.
    StdSmall,
}

impl Backend {
    fn key(self) -> &'static str {
        match self {
            Backend::Aiofs => "aiofs",
            Backend::TokioFs => "tokio",
            Backend::Std => "std",
            Backend::StdSmall => "std8k",
        }
    }

    fn from_key(key: &str) -> Option<Backend> {
        [
            Backend::Aiofs,
            Backend::TokioFs,
            Backend::Std,
            Backend::StdSmall,
        ]
        .into_iter()
        .find(|b| b.key() == key)
    }
}

impl Workload {
    fn key(self) -> &'static str {
        match self {
            Workload::StreamRead => "stream_read",
            Workload::Copy => "copy",
            Workload::Read => "read",
            Workload::Write => "write",
            Workload::StreamWrite => "stream_write",
        }
    }

    fn from_key(key: &str) -> Option<Workload> {
        WORKLOADS.into_iter().find(|w| w.key() == key)
    }

    /// The file a run reads, warmed right before it.
    fn source(self, inp: &Inputs) -> Option<&Path> {
        match self {
            Workload::StreamRead => Some(&inp.stream_src),
            Workload::Copy => Some(&inp.copy_src),
            Workload::Read => Some(&inp.whole_src),
            Workload::Write | Workload::StreamWrite => None,
        }
    }

    /// The bytes a run writes.
    fn writes(self, p: &Params) -> usize {
        match self {
            Workload::Write | Workload::StreamWrite => self.size(p),
            _ => 0,
        }
    }

    fn backends(self) -> &'static [Backend] {
        match self {
            Workload::StreamRead => &[
                Backend::Aiofs,
                Backend::TokioFs,
                Backend::Std,
                Backend::StdSmall,
            ],
            _ => &[Backend::Aiofs, Backend::TokioFs, Backend::Std],
        }
    }

    fn backend_name(self, b: Backend) -> &'static str {
        match (self, b) {
            (Workload::StreamRead | Workload::StreamWrite, Backend::Aiofs) => "aiofs::File",
            (Workload::StreamRead | Workload::StreamWrite, Backend::TokioFs) => "tokio::fs::File",
            (Workload::StreamRead, Backend::Std) => "std read, 1 MiB buf",
            (Workload::StreamRead, Backend::StdSmall) => "std read, 8 KiB buf",
            (Workload::StreamWrite, _) => "std::fs::File",
            (Workload::Copy, Backend::Aiofs) => "aiofs::copy",
            (Workload::Copy, Backend::TokioFs) => "tokio::fs::copy",
            (Workload::Copy, _) => "std::fs::copy",
            (Workload::Read, Backend::Aiofs) => "aiofs::read",
            (Workload::Read, Backend::TokioFs) => "tokio::fs::read",
            (Workload::Read, _) => "std::fs::read",
            (Workload::Write, Backend::Aiofs) => "aiofs::write",
            (Workload::Write, Backend::TokioFs) => "tokio::fs::write",
            (Workload::Write, _) => "std::fs::write",
        }
    }

    fn size(self, p: &Params) -> usize {
        match self {
            Workload::StreamRead => p.stream_size,
            Workload::Copy => p.copy_size,
            Workload::Read | Workload::Write => p.whole_size,
            Workload::StreamWrite => p.write_size,
        }
    }

    fn title(self, p: &Params) -> String {
        let mib = self.size(p) / MIB;
        match self {
            Workload::StreamRead => format!(
                "stream read: tokio::io::copy(file -> sink) of a {mib} MiB page-cached file (std rows: a read loop)"
            ),
            Workload::Copy => format!("copy: a {mib} MiB page-cached file to a new file (no sync)"),
            Workload::Read => format!("read: a whole {mib} MiB page-cached file into a Vec"),
            Workload::Write => format!("write: {mib} MiB to a new file (no sync)"),
            Workload::StreamWrite => format!(
                "stream write: write_all of {} KiB slices, {mib} MiB, then flush + sync_all",
                WRITE_SLICE / KIB
            ),
        }
    }
}

// ---------------------------------------------------------------- samples and rows

/// Driver counters over one timed run.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    submitted: u64,
    completed: u64,
    signals: u64,
    tokens: u64,
    scans: u64,
    eagain_retries: u64,
    waited: u64,
}

impl Counters {
    fn between(a: &aiofs::Stats, b: &aiofs::Stats) -> Counters {
        Counters {
            submitted: b.submitted - a.submitted,
            completed: b.completed - a.completed,
            signals: b.signals - a.signals,
            tokens: b.tokens - a.tokens,
            scans: b.scans - a.scans,
            eagain_retries: b.eagain_retries - a.eagain_retries,
            waited: b.waited - a.waited,
        }
    }

    fn add(&mut self, o: &Counters) {
        self.submitted += o.submitted;
        self.completed += o.completed;
        self.signals += o.signals;
        self.tokens += o.tokens;
        self.scans += o.scans;
        self.eagain_retries += o.eagain_retries;
        self.waited += o.waited;
    }
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    bytes: u64,
    secs: f64,
    cpu_us: f64,
    /// Minor page faults of the process (`ru_minflt`).
    faults: u64,
    counters: Counters,
}

impl Sample {
    fn mib(&self) -> f64 {
        self.bytes as f64 / MIB as f64
    }
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    fn cpu_us_per_mib(&self) -> f64 {
        self.cpu_us / self.mib()
    }
    fn faults_per_mib(&self) -> f64 {
        self.faults as f64 / self.mib()
    }
}

/// One line of a table: a backend of a workload, with its runs.
#[derive(Debug)]
struct Row {
    workload: Workload,
    backend: Backend,
    samples: Vec<Sample>,
}

impl Row {
    fn name(&self) -> &'static str {
        self.workload.backend_name(self.backend)
    }
    fn mb_per_s(&self) -> f64 {
        median(self.samples.iter().map(Sample::mb_per_s))
    }
    fn cpu_us_per_mib(&self) -> f64 {
        median(self.samples.iter().map(Sample::cpu_us_per_mib))
    }
    fn faults_per_mib(&self) -> f64 {
        median(self.samples.iter().map(Sample::faults_per_mib))
    }
    fn secs(&self) -> f64 {
        median(self.samples.iter().map(|s| s.secs))
    }
}

// ---------------------------------------------------------------- the data

/// An `AsyncWrite` that checks that it is handed the pattern, from offset 0.
#[derive(Debug, Default)]
struct CheckSink {
    pos: u64,
}

impl AsyncWrite for CheckSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        verify(buf, me.pos, "aiofs::File into a checking sink")?;
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

// ---------------------------------------------------------------- measuring

/// CPU time (user + system, µs) and minor page faults of the whole process.
fn usage() -> (f64, u64) {
    // SAFETY: `rusage` is plain old data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage` for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        u64::try_from(ru.ru_minflt).unwrap_or(0),
    )
}

/// Times `f`, which returns the bytes moved and a value checked afterwards.
fn measure<T>(f: impl FnOnce() -> io::Result<(u64, T)>) -> io::Result<(Sample, T)> {
    let stats0 = aiofs::stats();
    let (cpu0, faults0) = usage();
    let t0 = Instant::now();
    let (bytes, out) = f()?;
    let secs = t0.elapsed().as_secs_f64();
    let (cpu1, faults1) = usage();
    let cpu_us = cpu1 - cpu0;
    let faults = faults1.saturating_sub(faults0);
    let counters = Counters::between(&stats0, &aiofs::stats());
    Ok((
        Sample {
            bytes,
            secs,
            cpu_us,
            faults,
            counters,
        },
        out,
    ))
}

/// Runs `fut` as a task on the runtime's workers and waits for it.
fn on_worker<T: Send + 'static>(
    rt: &Runtime,
    fut: impl Future<Output = io::Result<T>> + Send + 'static,
) -> io::Result<T> {
    rt.block_on(rt.spawn(fut)).map_err(io::Error::other)?
}

/// The files the workloads read, and the bytes they write.
struct Inputs {
    dir: PathBuf,
    stream_src: PathBuf,
    copy_src: PathBuf,
    whole_src: PathBuf,
    /// The pattern from offset 0, as long as the largest write to come.
    data: &'static [u8],
}

impl Inputs {
    fn new(dir: &Path, data_len: usize) -> Inputs {
        let mut data = vec![0u8; data_len.next_multiple_of(8)].into_boxed_slice();
        fill_pattern(&mut data, 0);
        Inputs {
            dir: dir.to_path_buf(),
            stream_src: dir.join("stream.dat"),
            copy_src: dir.join("copy.dat"),
            whole_src: dir.join("whole.dat"),
            data: Box::leak(data),
        }
    }
}

/// Runs one cell once in this process: set up (untimed), the timed run, then
/// the checks (untimed). The caller warms the source first.
fn sample(
    rt: &Runtime,
    w: Workload,
    b: Backend,
    inp: &Inputs,
    p: &Params,
    rep: usize,
) -> Result<Sample> {
    let size = w.size(p);
    let what = w.backend_name(b);
    let s = match w {
        Workload::StreamRead => {
            let src = &inp.stream_src;
            let (s, n) = match b {
                Backend::Aiofs => {
                    let mut file = rt.block_on(aiofs::File::open(src))?;
                    measure(|| {
                        let n = on_worker(rt, async move {
                            tokio::io::copy(&mut file, &mut tokio::io::sink()).await
                        })?;
                        Ok((n, n))
                    })?
                }
                Backend::TokioFs => {
                    let mut file = rt.block_on(tokio::fs::File::open(src))?;
                    measure(|| {
                        let n = on_worker(rt, async move {
                            tokio::io::copy(&mut file, &mut tokio::io::sink()).await
                        })?;
                        Ok((n, n))
                    })?
                }
                Backend::Std | Backend::StdSmall => {
                    let mut file = fs::File::open(src)?;
                    let mut buf = vec![
                        0u8;
                        if b == Backend::Std {
                            STD_BIG_BUF
                        } else {
                            STD_SMALL_BUF
                        }
                    ];
                    measure(|| {
                        let mut n = 0u64;
                        loop {
                            match file.read(&mut buf) {
                                Ok(0) => break,
                                Ok(k) => n += k as u64,
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => return Err(e),
                            }
                            std::hint::black_box(&buf);
                        }
                        Ok((n, n))
                    })?
                }
            };
            expect_len(what, n, size)?;
            s
        }
        Workload::Copy => {
            let src = inp.copy_src.clone();
            let dst = inp.dir.join(format!("copy-{b:?}-{rep}"));
            let (s, n) = measure(|| {
                let n = match b {
                    Backend::Aiofs => {
                        let (src, dst) = (src.clone(), dst.clone());
                        on_worker(rt, async move { aiofs::copy(src, dst).await })?
                    }
                    Backend::TokioFs => {
                        let (src, dst) = (src.clone(), dst.clone());
                        on_worker(rt, async move { tokio::fs::copy(src, dst).await })?
                    }
                    Backend::Std | Backend::StdSmall => fs::copy(&src, &dst)?,
                };
                Ok((n, n))
            })?;
            expect_len(what, n, size)?;
            verify_file_sampled(&dst, size, what)?;
            fs::remove_file(&dst)?;
            s
        }
        Workload::Read => {
            let src = inp.whole_src.clone();
            let (s, data) = measure(|| {
                let data = match b {
                    Backend::Aiofs => on_worker(rt, async move { aiofs::read(src).await })?,
                    Backend::TokioFs => on_worker(rt, async move { tokio::fs::read(src).await })?,
                    Backend::Std | Backend::StdSmall => fs::read(&src)?,
                };
                Ok((data.len() as u64, data))
            })?;
            expect_len(what, data.len() as u64, size)?;
            verify(&data, 0, what)?;
            s
        }
        Workload::Write => {
            let dst = inp.dir.join(format!("write-{b:?}-{rep}"));
            let data = &inp.data[..size];
            let (s, ()) = measure(|| {
                let path = dst.clone();
                match b {
                    Backend::Aiofs => on_worker(rt, async move { aiofs::write(path, data).await })?,
                    Backend::TokioFs => {
                        on_worker(rt, async move { tokio::fs::write(path, data).await })?
                    }
                    Backend::Std | Backend::StdSmall => fs::write(&path, data)?,
                }
                Ok((size as u64, ()))
            })?;
            let back = fs::read(&dst)?;
            expect_len(what, back.len() as u64, size)?;
            verify(&back, 0, what)?;
            fs::remove_file(&dst)?;
            s
        }
        Workload::StreamWrite => {
            let dst = inp.dir.join(format!("stream-write-{b:?}-{rep}"));
            let data = &inp.data[..size];
            let (s, ()) = match b {
                Backend::Aiofs => {
                    let mut file = rt.block_on(aiofs::File::create_new(&dst))?;
                    measure(|| {
                        on_worker(rt, async move {
                            for slice in data.chunks(WRITE_SLICE) {
                                file.write_all(slice).await?;
                            }
                            file.flush().await?;
                            file.sync_all().await
                        })?;
                        Ok((size as u64, ()))
                    })?
                }
                Backend::TokioFs => {
                    let mut file = rt.block_on(tokio::fs::File::create_new(&dst))?;
                    measure(|| {
                        on_worker(rt, async move {
                            for slice in data.chunks(WRITE_SLICE) {
                                file.write_all(slice).await?;
                            }
                            file.flush().await?;
                            file.sync_all().await
                        })?;
                        Ok((size as u64, ()))
                    })?
                }
                Backend::Std | Backend::StdSmall => {
                    let mut file = fs::File::create_new(&dst)?;
                    measure(|| {
                        for slice in data.chunks(WRITE_SLICE) {
                            file.write_all(slice)?;
                        }
                        file.flush()?;
                        file.sync_all()?;
                        Ok((size as u64, ()))
                    })?
                }
            };
            let back = fs::read(&dst)?;
            expect_len(what, back.len() as u64, size)?;
            verify(&back, 0, what)?;
            fs::remove_file(&dst)?;
            s
        }
    };
    Ok(s)
}

/// Untimed: starts the driver, the runtime's workers and blocking pool and
/// glibc's AIO threads on a small file, and reads a whole source through
/// `aiofs::File` into a sink that checks every byte.
fn warm_up_and_check(rt: &Runtime, inp: &Inputs, p: &Params) -> Result<()> {
    let small = inp.dir.join("warm-up");
    let data = &inp.data[..4 * MIB];
    on_worker(rt, {
        let small = small.clone();
        async move {
            aiofs::write(&small, data).await?;
            let mut f = aiofs::File::open(&small).await?;
            tokio::io::copy(&mut f, &mut tokio::io::sink()).await?;
            let mut f = tokio::fs::File::open(&small).await?;
            tokio::io::copy(&mut f, &mut tokio::io::sink()).await?;
            let back = aiofs::read(&small).await?;
            verify(&back, 0, "warm-up aiofs::read")
        }
    })?;
    fs::remove_file(&small)?;

    let src = inp.stream_src.clone();
    warm_file(&src)?;
    let n = on_worker(rt, async move {
        let mut f = aiofs::File::open(src).await?;
        let mut sink = CheckSink::default();
        let n = tokio::io::copy(&mut f, &mut sink).await?;
        io::Result::Ok(n)
    })?;
    expect_len("aiofs::File into a checking sink", n, p.stream_size)?;
    Ok(())
}

// ---------------------------------------------------------------- output

/// aiofs ÷ `row` (MB/s, CPU per MiB), against the aiofs row of the workload.
fn ratios(rows: &[Row], row: &Row) -> (Option<f64>, Option<f64>) {
    if row.backend == Backend::Aiofs {
        return (None, None);
    }
    let Some(a) = rows
        .iter()
        .find(|r| r.backend == Backend::Aiofs && r.workload == row.workload)
    else {
        return (None, None);
    };
    (
        ratio(a.mb_per_s(), row.mb_per_s()),
        ratio(a.cpu_us_per_mib(), row.cpu_us_per_mib()),
    )
}

/// The sum of the aiofs row's counters over its runs, and the MiB moved.
fn aiofs_counters(rows: &[Row], w: Workload) -> Option<(Counters, f64)> {
    let row = rows
        .iter()
        .find(|r| r.workload == w && r.backend == Backend::Aiofs)?;
    let mut c = Counters::default();
    let mut mib = 0.0;
    for s in &row.samples {
        c.add(&s.counters);
        mib += s.mib();
    }
    Some((c, mib))
}

fn stream_ratio(rows: &[Row]) -> Option<f64> {
    let find = |b| {
        rows.iter()
            .find(|r| r.workload == Workload::StreamRead && r.backend == b)
    };
    ratio(
        find(Backend::Aiofs)?.mb_per_s(),
        find(Backend::TokioFs)?.mb_per_s(),
    )
}

fn print_json(rows: &[Row], p: &Params, notifier: &str, exec: &str) {
    for row in rows {
        let (r_mb, r_cpu) = ratios(rows, row);
        println!(
            "{{\"workload\":{},\"backend\":{},\"mode\":{},\"notifier\":{},\"exec\":{},\"bytes\":{},\"runs\":{},\"mb_per_s\":{},\"cpu_us_per_mib\":{},\"faults_per_mib\":{},\"secs\":{},\"aiofs_over_this_mb_per_s\":{},\"aiofs_over_this_cpu_us_per_mib\":{},\"samples_mb_per_s\":{},\"samples_cpu_us_per_mib\":{}}}",
            json_str(row.workload.key()),
            json_str(row.name()),
            json_str(p.mode),
            json_str(notifier),
            json_str(exec),
            row.workload.size(p),
            row.samples.len(),
            json_num(Some(row.mb_per_s())),
            json_num(Some(row.cpu_us_per_mib())),
            json_num(Some(row.faults_per_mib())),
            json_num(Some(row.secs())),
            json_num(r_mb),
            json_num(r_cpu),
            json_list(row.samples.iter().map(Sample::mb_per_s)),
            json_list(row.samples.iter().map(Sample::cpu_us_per_mib)),
        );
    }
}

fn print_table(rows: &[Row], p: &Params, notifier: &str, exec: &str) {
    println!(
        "aiofs stream bench: {} mode, median of {} run(s) per cell, {exec}, notifier {notifier}, {} CPUs",
        p.mode,
        p.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "CPU = getrusage(RUSAGE_SELF) user+sys of the whole process per MiB; flt = its minor page faults per MiB; aiofs÷ = aiofs divided by this row"
    );
    for w in WORKLOADS {
        println!();
        println!("{}", w.title(p));
        println!(
            "  {:<20} {:>9} {:>11} {:>8} {:>8} | {:>11} {:>10} | runs MB/s ; runs CPU µs/MiB",
            "backend", "MB/s", "CPU µs/MiB", "secs", "flt/MiB", "aiofs÷ MB/s", "aiofs÷ CPU",
        );
        for row in rows.iter().filter(|r| r.workload == w) {
            let (r_mb, r_cpu) = ratios(rows, row);
            let runs_mb: Vec<String> = row
                .samples
                .iter()
                .map(|s| format!("{:.0}", s.mb_per_s()))
                .collect();
            let runs_cpu: Vec<String> = row
                .samples
                .iter()
                .map(|s| format!("{:.0}", s.cpu_us_per_mib()))
                .collect();
            println!(
                "  {:<20} {:>9.0} {:>11.1} {:>8.3} {:>8.1} | {:>11} {:>10} | {} ; {}",
                row.name(),
                row.mb_per_s(),
                row.cpu_us_per_mib(),
                row.secs(),
                row.faults_per_mib(),
                fmt_ratio(r_mb),
                fmt_ratio(r_cpu),
                runs_mb.join(" "),
                runs_cpu.join(" "),
            );
        }
        if let Some((c, mib)) = aiofs_counters(rows, w) {
            println!(
                "  aiofs driver per MiB: {:.2} requests submitted, {:.2} completed, {:.2} signals, {:.2} tokens, {:.3} scans, {:.3} waited, {:.3} EAGAIN retries",
                c.submitted as f64 / mib,
                c.completed as f64 / mib,
                c.signals as f64 / mib,
                c.tokens as f64 / mib,
                c.scans as f64 / mib,
                c.waited as f64 / mib,
                c.eagain_retries as f64 / mib,
            );
        }
    }
    println!();
    match stream_ratio(rows) {
        Some(r) => println!(
            "acceptance: stream read of {} MiB, aiofs::File ÷ tokio::fs::File = {r:.2}x (bar {BAR:.0}x, for 1 GiB): {}",
            p.stream_size / MIB,
            if r >= BAR { "PASS" } else { "BELOW" }
        ),
        None => println!("acceptance: no stream-read figures"),
    }
}

/// The fields of `aiofs::stats()`, in the order of [`stats_values`].
const STATS_FIELDS: [&str; 14] = [
    "submitted",
    "completed",
    "in_flight",
    "queued",
    "orphaned",
    "cancelled",
    "waited",
    "signals",
    "tokens",
    "stale_tokens",
    "scans",
    "eagain_retries",
    "pipe_overflows",
    "listeners",
];

fn stats_values(s: &aiofs::Stats) -> [u64; 14] {
    [
        s.submitted,
        s.completed,
        s.in_flight,
        s.queued,
        s.orphaned,
        s.cancelled,
        s.waited,
        s.signals,
        s.tokens,
        s.stale_tokens,
        s.scans,
        s.eagain_retries,
        s.pipe_overflows,
        s.listeners,
    ]
}

fn stats_json(v: &[u64; 14]) -> String {
    let items: Vec<String> = STATS_FIELDS
        .iter()
        .zip(v)
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", items.join(","))
}

fn stats_text(v: &[u64; 14]) -> String {
    let items: Vec<String> = STATS_FIELDS
        .iter()
        .zip(v)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    items.join(", ")
}

/// The driver counters of the sample processes, added up, and their count.
#[derive(Debug, Default)]
struct ChildStats {
    sum: [u64; 14],
    processes: usize,
}

impl ChildStats {
    fn add(&mut self, v: &[u64; 14]) {
        for (s, v) in self.sum.iter_mut().zip(v) {
            *s += v;
        }
        self.processes += 1;
    }
}

fn print_stats(json: bool, children: Option<&ChildStats>, elapsed: f64) {
    let own = aiofs::stats();
    if json {
        println!(
            "{{\"stats\":{},\"sample_processes\":{},\"sample_processes_stats\":{},\"elapsed_s\":{elapsed:.1}}}",
            stats_json(&stats_values(&own)),
            children.map_or(0, |c| c.processes),
            children.map_or_else(|| "null".to_string(), |c| stats_json(&c.sum)),
        );
        return;
    }
    println!();
    match children {
        Some(c) => {
            println!("aiofs::stats() of this process (warm-up and checks): {own:?}");
            println!(
                "aiofs::stats() summed over the {} sample processes: {}",
                c.processes,
                stats_text(&c.sum)
            );
        }
        None => println!("aiofs::stats(): {own:?}"),
    }
    println!("bench took {elapsed:.1} s");
}

// ---------------------------------------------------------------- sample processes

/// The first argument of a sample process: `CHILD_FLAG workload backend rep mode dir`.
const CHILD_FLAG: &str = "--sample-process";
/// The tags of a sample process's output lines.
const CHILD_SAMPLE: &str = "stream-sample";
const CHILD_STATS: &str = "stream-stats";

/// Runs one cell once in a new process of this bench, as an application that
/// opens a file and copies it would: its allocator and threads start fresh.
/// The caller warms the source first.
fn child_sample(
    w: Workload,
    b: Backend,
    inp: &Inputs,
    p: &Params,
    rep: usize,
) -> Result<(Sample, [u64; 14])> {
    let out = Command::new(std::env::current_exe()?)
        .arg(CHILD_FLAG)
        .args([w.key(), b.key(), &rep.to_string(), p.mode])
        .arg(&inp.dir)
        .stdin(Stdio::null())
        .output()?;
    let what = format!("{} / {}", w.key(), w.backend_name(b));
    if !out.status.success() {
        return Err(format!(
            "{what}: the sample process failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let numbers = |tag: &str| -> Option<Vec<f64>> {
        let line = stdout.lines().find_map(|l| l.strip_prefix(tag))?;
        line.split_whitespace().map(|x| x.parse().ok()).collect()
    };
    let bad = || format!("{what}: unexpected output from the sample process: {stdout:?}");
    let v = numbers(CHILD_SAMPLE)
        .filter(|v| v.len() == 11)
        .ok_or_else(bad)?;
    let st = numbers(CHILD_STATS)
        .filter(|v| v.len() == 14)
        .ok_or_else(bad)?;
    let n = |x: f64| x as u64;
    let sample = Sample {
        bytes: n(v[0]),
        secs: v[1],
        cpu_us: v[2],
        faults: n(v[3]),
        counters: Counters {
            submitted: n(v[4]),
            completed: n(v[5]),
            signals: n(v[6]),
            tokens: n(v[7]),
            scans: n(v[8]),
            eagain_retries: n(v[9]),
            waited: n(v[10]),
        },
    };
    let mut stats = [0u64; 14];
    for (s, x) in stats.iter_mut().zip(st) {
        *s = n(x);
    }
    Ok((sample, stats))
}

/// The sample process: starts the runtime, the aiofs driver and Tokio's
/// blocking pool with small requests (no allocation large enough to change
/// malloc's thresholds), runs the cell once, prints the sample and its
/// `aiofs::stats()`.
fn child_main(args: &[String]) -> Result<()> {
    let [w, b, rep, mode, dir] = args else {
        return Err(format!("{CHILD_FLAG}: expected 5 arguments, got {args:?}").into());
    };
    let w = Workload::from_key(w).ok_or_else(|| format!("unknown workload {w:?}"))?;
    let b = Backend::from_key(b).ok_or_else(|| format!("unknown backend {b:?}"))?;
    let rep: usize = rep.parse()?;
    let p = if mode == QUICK.mode { QUICK } else { FULL };
    let inp = Inputs::new(Path::new(dir), w.writes(&p));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (path, dir) = (inp.whole_src.clone(), inp.dir.clone());
    on_worker(&rt, async move {
        let f = aiofs::File::open(&path).await?;
        let (res, _) = f.read_at(Vec::with_capacity(4 * KIB), 0).await;
        res?;
        tokio::fs::metadata(&dir).await?;
        io::Result::Ok(())
    })?;
    let s = sample(&rt, w, b, &inp, &p, rep)?;
    drop(rt);
    let c = &s.counters;
    println!(
        "{CHILD_SAMPLE} {} {} {} {} {} {} {} {} {} {} {}",
        s.bytes,
        s.secs,
        s.cpu_us,
        s.faults,
        c.submitted,
        c.completed,
        c.signals,
        c.tokens,
        c.scans,
        c.eagain_retries,
        c.waited
    );
    let st: Vec<String> = stats_values(&aiofs::stats())
        .iter()
        .map(u64::to_string)
        .collect();
    println!("{CHILD_STATS} {}", st.join(" "));
    Ok(())
}

// ---------------------------------------------------------------- main

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == CHILD_FLAG) {
        return child_main(&args[1..]);
    }
    let mut p = FULL;
    let mut json = false;
    let mut in_process = false;
    for arg in &args {
        match arg.as_str() {
            "--quick" => p = QUICK,
            "--json" => json = true,
            "--in-process" => in_process = true,
            "--bench" => {}
            "-h" | "--help" => {
                println!(
                    "usage: cargo bench --bench stream [-- [--quick] [--json] [--in-process]]"
                );
                return Ok(());
            }
            other => eprintln!("stream: ignoring argument {other:?}"),
        }
    }
    let notifier = std::env::var("AIOFS_NOTIFIER").unwrap_or_else(|_| "pipe (default)".into());
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let dir = tempfile::tempdir()?;
    // The sample processes make their own data; in-process runs use this.
    let data_len = if in_process {
        p.write_size.max(p.whole_size)
    } else {
        4 * MIB
    };
    let inp = Inputs::new(dir.path(), data_len.max(4 * MIB));
    eprintln!(
        "stream: {} mode; writing {} + {} + {} MiB of sources to {}",
        p.mode,
        p.stream_size / MIB,
        p.copy_size / MIB,
        p.whole_size / MIB,
        inp.dir.display()
    );
    write_pattern_file(&inp.stream_src, p.stream_size)?;
    write_pattern_file(&inp.copy_src, p.copy_size)?;
    write_pattern_file(&inp.whole_src, p.whole_size)?;
    warm_up_and_check(&rt, &inp, &p)?;

    let mut children = ChildStats::default();
    let mut rows = Vec::new();
    for w in WORKLOADS {
        let backends = w.backends();
        let first = rows.len();
        rows.extend(backends.iter().map(|&backend| Row {
            workload: w,
            backend,
            samples: Vec::new(),
        }));
        let t0 = Instant::now();
        for rep in 0..p.runs {
            for k in 0..backends.len() {
                let i = (k + rep) % backends.len();
                let b = backends[i];
                if let Some(src) = w.source(&inp) {
                    warm_file(src)?;
                }
                let s = if in_process {
                    sample(&rt, w, b, &inp, &p, rep)?
                } else {
                    let (s, stats) = child_sample(w, b, &inp, &p, rep)?;
                    children.add(&stats);
                    s
                };
                eprintln!(
                    "stream: {} run {}/{}: {:<20} {:>7.0} MB/s {:>8.1} CPU µs/MiB {:>6.1} faults/MiB",
                    w.key(),
                    rep + 1,
                    p.runs,
                    w.backend_name(b),
                    s.mb_per_s(),
                    s.cpu_us_per_mib(),
                    s.faults_per_mib()
                );
                rows[first + i].samples.push(s);
            }
        }
        eprintln!(
            "stream: {} took {:.1} s",
            w.key(),
            t0.elapsed().as_secs_f64()
        );
    }

    let exec = if in_process {
        "in-process"
    } else {
        "process-per-run"
    };
    if json {
        print_json(&rows, &p, &notifier, exec);
    } else {
        print_table(&rows, &p, &notifier, exec);
    }
    drop(rt);
    print_stats(
        json,
        (!in_process).then_some(&children),
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}
