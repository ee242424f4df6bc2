//! The workloads of `benches/compare` and their report, as a module that the
//! bench (`benches/compare/main.rs`) and a demo can both include:
//!
//! ```ignore
//! #[path = "../benches/compare/workloads.rs"]
//! mod workloads;
//!
//! fn main() -> std::io::Result<()> {
//!     // First thing: in a sample process started by `run`, run the sample and exit.
//!     if let Some(res) = workloads::sample_process_main() {
//!         return res;
//!     }
//!     let mut opts = workloads::Options::quick();
//!     opts.workloads = workloads::Workload::parse_list("cached,latency")?;
//!     let rows = workloads::run(&opts, &mut |line| eprintln!("compare: {line}"))?;
//!     workloads::print_table(&rows);
//!     Ok(())
//! }
//! ```
//!
//! [`run`] blocks (it waits for sample processes, or runs each sample on a
//! thread of its own with runtimes of its own): call it outside async code, or
//! in `spawn_blocking`. What is measured and how is described in
//! `benches/compare/main.rs`.
//!
//! This file holds the API, the cells and the sample processes; it brings in
//! by path, relative to itself (so an includer names only this file),
//! `samples.rs` (one sample: every backend of every workload), `report.rs`
//! (the tables, the JSON lines, the targets) and `../common/mod.rs` (the
//! helpers the benches share).

#![allow(dead_code)] // a demo that includes this module uses part of it

#[path = "../common/mod.rs"]
mod common;
#[path = "report.rs"]
mod report;
#[path = "samples.rs"]
mod samples;

#[allow(unused_imports)] // the bench prints with two of them; a demo may want the others
pub use report::{Metric, Target, print_json, print_table, print_targets, targets};

use common::{
    KIB, MIB, fmt_pct, fmt_rate, median, memory_fs, warm_file, write_direct_file,
    write_pattern_file,
};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// A random read: 4 KiB at a 4 KiB-aligned offset.
pub const BLOCK: usize = 4 * KIB;
/// The sequential workloads' buffers and chunks: 1 MiB.
pub const CHUNK: usize = MIB;
/// Requests in flight in `seq-read-at` and `write-at` (async backends).
pub const SEQ_DEPTH: usize = 4;
/// Worker threads of the multi_thread runtime the Tokio backends run on.
pub const WORKERS: usize = 2;
/// The environment variable that makes a process a sample process.
const SAMPLE_ENV: &str = "AIOFS_COMPARE_SAMPLE";
/// The tag of a sample process's result line.
const SAMPLE_TAG: &str = "compare-sample";
/// A run that saw more of the machine busy elsewhere is flagged.
const NOISY: f64 = 0.10;

// ---------------------------------------------------------------- workloads and backends

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Random 4 KiB reads of the page-cached file at QD 1, 16, 128.
    Cached,
    /// QD1 latency (p50, p99) of random 4 KiB reads of the page-cached file.
    Latency,
    /// Random 4 KiB `O_DIRECT` reads of a file not in the cache at QD 1, 32.
    Direct,
    /// The whole cached file through `AsyncRead`: `tokio::io::copy` into a sink.
    SeqCopy,
    /// The whole cached file with positioned 1 MiB reads.
    SeqReadAt,
    /// 1 MiB chunks through `AsyncWrite` (`write_all`), then `flush` + `sync_all`.
    WriteStream,
    /// 1 MiB chunks with `write_all_at`, then `sync_all`.
    WriteAt,
}

impl Workload {
    /// Every workload, in the order they run and print.
    pub const ALL: [Workload; 7] = [
        Workload::Cached,
        Workload::Latency,
        Workload::Direct,
        Workload::SeqCopy,
        Workload::SeqReadAt,
        Workload::WriteStream,
        Workload::WriteAt,
    ];

    /// The workload's name on the command line and in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Workload::Cached => "cached",
            Workload::Latency => "latency",
            Workload::Direct => "direct",
            Workload::SeqCopy => "seq-copy",
            Workload::SeqReadAt => "seq-read-at",
            Workload::WriteStream => "write-stream",
            Workload::WriteAt => "write-at",
        }
    }

    fn from_key(key: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.key() == key)
    }

    /// Parses a comma-separated list of workload names; `seq` stands for
    /// `seq-copy,seq-read-at`, `write` for `write-stream,write-at`, `all` for
    /// every workload. The result is in [`Workload::ALL`]'s order, without
    /// repeats.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming an unknown workload.
    pub fn parse_list(list: &str) -> io::Result<Vec<Workload>> {
        let mut chosen = Vec::new();
        for key in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            match key {
                "all" => chosen.extend(Workload::ALL),
                "seq" => chosen.extend([Workload::SeqCopy, Workload::SeqReadAt]),
                "write" => chosen.extend([Workload::WriteStream, Workload::WriteAt]),
                _ => chosen.push(Workload::from_key(key).ok_or_else(|| {
                    let names: Vec<&str> = Workload::ALL.iter().map(|w| w.key()).collect();
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "unknown workload {key:?}: one of {}, seq, write, all",
                            names.join(", ")
                        ),
                    )
                })?),
            }
        }
        Ok(Workload::ALL
            .into_iter()
            .filter(|w| chosen.contains(w))
            .collect())
    }

    /// The queue depths measured: requests in flight (tasks, for the random
    /// reads; 1 for the streams and the synchronous rows).
    pub fn queue_depths(self) -> &'static [usize] {
        match self {
            Workload::Cached => &[1, 16, 128],
            Workload::Latency => &[1],
            Workload::Direct => &[1, 32],
            Workload::SeqCopy | Workload::WriteStream => &[1],
            Workload::SeqReadAt | Workload::WriteAt => &[SEQ_DEPTH],
        }
    }

    /// The backends that run this workload, in the order they print.
    pub fn backends(self) -> Vec<Backend> {
        use Backend::*;
        let mut v = vec![AiofsPipe, AiofsSignal, AiofsNowaitOff, AiofsBlocked];
        match self {
            Workload::Cached | Workload::Latency | Workload::SeqReadAt => {
                v.extend([TokioFs, SpawnBlocking, TokioUring, Std])
            }
            Workload::Direct | Workload::WriteAt => v.extend([SpawnBlocking, TokioUring, Std]),
            Workload::SeqCopy | Workload::WriteStream => v.extend([TokioFs, Std]),
        }
        if !cfg!(target_os = "linux") {
            v.retain(|&b| b != TokioUring);
        }
        v
    }

    /// Reads the page-cached file (warmed right before each run).
    fn reads_cached(self) -> bool {
        matches!(
            self,
            Workload::Cached | Workload::Latency | Workload::SeqCopy | Workload::SeqReadAt
        )
    }

    /// Random reads for a fixed time (the others move a fixed size).
    fn timed(self) -> bool {
        matches!(
            self,
            Workload::Cached | Workload::Latency | Workload::Direct
        )
    }

    fn writes(self) -> bool {
        matches!(self, Workload::WriteStream | Workload::WriteAt)
    }

    /// What one "op" of the figures is.
    pub fn unit(self) -> &'static str {
        if self.timed() { "4 KiB read" } else { "MiB" }
    }

    fn title(self, qd: usize, size: usize) -> String {
        let mib = size / MIB;
        match self {
            Workload::Cached => format!(
                "cached: random 4 KiB reads of a {mib} MiB page-cached file, QD{qd} ({qd} task(s) on one shared file; tokio::fs: a File per task, seek + read_exact; std: one thread)"
            ),
            Workload::Latency => format!(
                "latency: QD1 random 4 KiB reads of the {mib} MiB page-cached file, each read timed (one task; std: one thread)"
            ),
            Workload::Direct => format!(
                "direct: random 4 KiB O_DIRECT reads of a {mib} MiB file not in the cache, QD{qd} (aiofs: its default descriptor pool; std: one thread)"
            ),
            Workload::SeqCopy => format!(
                "seq-copy: the whole {mib} MiB page-cached file, tokio::io::copy(file -> sink) (std: a read loop, 1 MiB buffer)"
            ),
            Workload::SeqReadAt => format!(
                "seq-read-at: the whole {mib} MiB page-cached file with 1 MiB read_at, {SEQ_DEPTH} in flight (tokio::fs and std: a read loop, 1 MiB buffer)"
            ),
            Workload::WriteStream => format!(
                "write-stream: {mib} MiB to a new file, write_all of 1 MiB chunks (AsyncWrite), flush, sync_all (std: write_all loop + sync_all)"
            ),
            Workload::WriteAt => format!(
                "write-at: {mib} MiB to a new file, write_all_at of 1 MiB chunks, {SEQ_DEPTH} in flight, then sync_all (std: write_all loop + sync_all)"
            ),
        }
    }
}

/// How a workload is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// aiofs with the pipe notifier (`AIOFS_NOTIFIER=pipe`): the reference
    /// of the ratio columns.
    AiofsPipe,
    /// aiofs with the signal notifier (`AIOFS_NOTIFIER=signal`).
    AiofsSignal,
    /// aiofs, pipe notifier, with the driver's `preadv2(RWF_NOWAIT)` fast path
    /// switched off (`AIOFS_NOWAIT=0`).
    AiofsNowaitOff,
    /// aiofs, pipe notifier, every thread blocking the completion signal
    /// (`aiofs::block_completion_signal`): completions read from a signalfd.
    AiofsBlocked,
    /// `tokio::fs::File`.
    TokioFs,
    /// `tokio::task::spawn_blocking` + `FileExt::read_at`/`write_all_at` on an
    /// `Arc<std::fs::File>`.
    SpawnBlocking,
    /// tokio-uring on its own runtime (Linux).
    TokioUring,
    /// Synchronous `std::fs::File` on one thread: the limit.
    Std,
}

impl Backend {
    /// The backend's name in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Backend::AiofsPipe => "aiofs-pipe",
            Backend::AiofsSignal => "aiofs-signal",
            Backend::AiofsNowaitOff => "aiofs-pipe-nowait-off",
            Backend::AiofsBlocked => "aiofs-pipe-blocked",
            Backend::TokioFs => "tokio-fs",
            Backend::SpawnBlocking => "spawn-blocking",
            Backend::TokioUring => "tokio-uring",
            Backend::Std => "std",
        }
    }

    fn from_key(key: &str) -> Option<Backend> {
        [
            Backend::AiofsPipe,
            Backend::AiofsSignal,
            Backend::AiofsNowaitOff,
            Backend::AiofsBlocked,
            Backend::TokioFs,
            Backend::SpawnBlocking,
            Backend::TokioUring,
            Backend::Std,
        ]
        .into_iter()
        .find(|b| b.key() == key)
    }

    pub fn is_aiofs(self) -> bool {
        matches!(
            self,
            Backend::AiofsPipe
                | Backend::AiofsSignal
                | Backend::AiofsNowaitOff
                | Backend::AiofsBlocked
        )
    }

    /// The row's name in a workload's table.
    pub fn name(self, w: Workload) -> &'static str {
        use Workload::*;
        match (self, w) {
            (Backend::AiofsPipe, _) => "aiofs (pipe)",
            (Backend::AiofsSignal, _) => "aiofs (signal)",
            (Backend::AiofsNowaitOff, _) => "aiofs (pipe, nowait off)",
            (Backend::AiofsBlocked, _) => "aiofs (pipe, sig blocked)",
            (Backend::TokioFs, Cached | Latency | Direct) => "tokio::fs seek+read",
            (Backend::TokioFs, SeqReadAt) => "tokio::fs read loop",
            (Backend::TokioFs, _) => "tokio::fs::File",
            (Backend::SpawnBlocking, WriteStream | WriteAt) => "spawn_blocking+pwrite",
            (Backend::SpawnBlocking, _) => "spawn_blocking+pread",
            (Backend::TokioUring, WriteStream | WriteAt) => "tokio-uring write_all_at",
            (Backend::TokioUring, _) => "tokio-uring read_at",
            (Backend::Std, Cached | Latency | Direct) => "std pread (1 thread)",
            (Backend::Std, SeqCopy | SeqReadAt) => "std read loop",
            (Backend::Std, WriteStream | WriteAt) => "std write_all loop",
        }
    }

    /// The aiofs row of a process that runs samples itself: named after its
    /// environment (a `Config` installed in code is not seen).
    fn of_this_process() -> Backend {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        if var("AIOFS_NOTIFIER") == "signal" {
            Backend::AiofsSignal
        } else if var("AIOFS_NOWAIT") == "0" {
            Backend::AiofsNowaitOff
        } else if var(BLOCK_ENV) == "1" {
            Backend::AiofsBlocked
        } else {
            Backend::AiofsPipe
        }
    }
}

// ---------------------------------------------------------------- options

/// Where samples run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exec {
    /// Every sample in a new process of the current executable (whose `main`
    /// must call [`sample_process_main`] first), with the aiofs variant's
    /// environment: every aiofs row runs.
    ProcessPerSample,
    /// Every sample in this process (on a thread of its own): only the aiofs
    /// row of this process's configuration runs.
    InProcess,
}

/// What [`run`] measures, and how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// "full", "quick", ...: printed with the figures.
    pub mode: &'static str,
    /// Runs per cell; each figure is the median.
    pub runs: usize,
    /// Seconds of a timed run of the random-read workloads.
    pub secs: f64,
    /// Seconds of the untimed warm-up pass before each of them.
    pub warm_secs: f64,
    /// The page-cached file (random and sequential reads), bytes.
    pub file_size: usize,
    /// The `O_DIRECT` file, bytes (a multiple of 1 MiB).
    pub direct_size: usize,
    /// Bytes each write run writes (a multiple of 8).
    pub write_size: usize,
    /// The workloads to run; empty: all.
    pub workloads: Vec<Workload>,
    pub exec: Exec,
    /// Where the files go; else `AIOFS_BENCH_DIR`, Cargo's target tmpdir (for
    /// a bench), the system temp dir: the first not memory-backed when
    /// `O_DIRECT` or writes are measured.
    pub dir: Option<PathBuf>,
}

impl Options {
    /// The full run: 1 GiB files, 256 MiB writes, 5 runs of 1 s per cell.
    pub fn full() -> Options {
        Options {
            mode: "full",
            runs: 5,
            secs: 1.0,
            warm_secs: 0.2,
            file_size: 1024 * MIB,
            direct_size: 1024 * MIB,
            write_size: 256 * MIB,
            workloads: Vec::new(),
            exec: Exec::ProcessPerSample,
            dir: None,
        }
    }

    /// A smoke run: 64 MiB files, 32 MiB writes, 1 run of 0.2 s per cell.
    pub fn quick() -> Options {
        Options {
            mode: "quick",
            runs: 1,
            secs: 0.2,
            warm_secs: 0.05,
            file_size: 64 * MIB,
            direct_size: 64 * MIB,
            write_size: 32 * MIB,
            ..Options::full()
        }
    }

    fn workloads(&self) -> Vec<Workload> {
        if self.workloads.is_empty() {
            Workload::ALL.to_vec()
        } else {
            Workload::ALL
                .into_iter()
                .filter(|w| self.workloads.contains(w))
                .collect()
        }
    }
}

// ---------------------------------------------------------------- samples and rows

/// aiofs's driver counters over a timed run (`aiofs::stats()` differences).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AioCounters {
    pub submitted: u64,
    pub completed: u64,
    pub signals: u64,
    pub tokens: u64,
    pub scans: u64,
    pub eagain_retries: u64,
}

impl AioCounters {
    fn between(a: &aiofs::Stats, b: &aiofs::Stats) -> AioCounters {
        AioCounters {
            submitted: b.submitted - a.submitted,
            completed: b.completed - a.completed,
            signals: b.signals - a.signals,
            tokens: b.tokens - a.tokens,
            scans: b.scans - a.scans,
            eagain_retries: b.eagain_retries - a.eagain_retries,
        }
    }
}

/// One timed run of one cell.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Operations: 4 KiB reads, or MiB moved.
    pub ops: u64,
    pub bytes: u64,
    pub secs: f64,
    /// `getrusage(RUSAGE_SELF)` user + system of the process, µs.
    pub cpu_us: f64,
    /// Context switches of the process, voluntary and not.
    pub csw: f64,
    /// Share of all CPUs busy outside the process (`/proc/stat`).
    pub other: Option<f64>,
    /// Latency workload: percentiles of the run's reads, µs.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// aiofs rows: the driver's counters.
    pub aio: Option<AioCounters>,
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
    fn per_op(&self, f: impl Fn(&AioCounters) -> u64) -> Option<f64> {
        self.aio.map(|c| f(&c) as f64 / self.ops as f64)
    }

    fn encode(&self) -> String {
        let opt = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| x.to_string());
        let aio = self.aio.map_or_else(
            || "-".to_string(),
            |c| {
                format!(
                    "{},{},{},{},{},{}",
                    c.submitted, c.completed, c.signals, c.tokens, c.scans, c.eagain_retries
                )
            },
        );
        format!(
            "ops={} bytes={} secs={} cpu_us={} csw={} other={} p50_us={} p99_us={} aio={aio}",
            self.ops,
            self.bytes,
            self.secs,
            self.cpu_us,
            self.csw,
            opt(self.other),
            opt(self.p50_us),
            opt(self.p99_us),
        )
    }

    fn decode(line: &str) -> Option<Sample> {
        let mut s = Sample::default();
        let opt = |v: &str| -> Option<Option<f64>> {
            if v == "-" {
                Some(None)
            } else {
                v.parse().ok().map(Some)
            }
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
                "p50_us" => s.p50_us = opt(v)?,
                "p99_us" => s.p99_us = opt(v)?,
                "aio" if v == "-" => s.aio = None,
                "aio" => {
                    let n: Vec<u64> = v
                        .split(',')
                        .map(|x| x.parse().ok())
                        .collect::<Option<_>>()?;
                    let [submitted, completed, signals, tokens, scans, eagain_retries] = n[..]
                    else {
                        return None;
                    };
                    s.aio = Some(AioCounters {
                        submitted,
                        completed,
                        signals,
                        tokens,
                        scans,
                        eagain_retries,
                    });
                }
                _ => return None,
            }
        }
        (s.ops > 0 && s.secs > 0.0).then_some(s)
    }
}

/// One line of a table: a backend in one cell (workload, queue depth), with
/// its runs. Each figure is the median over the runs, taken per column.
#[derive(Debug, Clone)]
pub struct Row {
    pub workload: Workload,
    pub qd: usize,
    pub backend: Backend,
    /// [`Options::mode`].
    pub mode: &'static str,
    /// The file read, or the bytes written, per run.
    pub size: usize,
    pub samples: Vec<Sample>,
}

impl Row {
    pub fn name(&self) -> &'static str {
        self.backend.name(self.workload)
    }
    pub fn ops_per_s(&self) -> f64 {
        median(self.samples.iter().map(Sample::ops_per_s))
    }
    pub fn mb_per_s(&self) -> f64 {
        median(self.samples.iter().map(Sample::mb_per_s))
    }
    pub fn cpu_us_per_op(&self) -> f64 {
        median(self.samples.iter().map(Sample::cpu_us_per_op))
    }
    pub fn csw_per_op(&self) -> f64 {
        median(self.samples.iter().map(|s| s.csw / s.ops as f64))
    }
    pub fn secs(&self) -> f64 {
        median(self.samples.iter().map(|s| s.secs))
    }
    pub fn p50_us(&self) -> Option<f64> {
        self.median_of(|s| s.p50_us)
    }
    pub fn p99_us(&self) -> Option<f64> {
        self.median_of(|s| s.p99_us)
    }
    /// aiofs rows: requests submitted to AIO per op.
    pub fn aio_per_op(&self) -> Option<f64> {
        self.median_of(|s| s.per_op(|c| c.submitted))
    }
    /// aiofs rows: completion signals per op.
    pub fn signals_per_op(&self) -> Option<f64> {
        self.median_of(|s| s.per_op(|c| c.signals))
    }
    /// aiofs rows: full scans per op.
    pub fn scans_per_op(&self) -> Option<f64> {
        self.median_of(|s| s.per_op(|c| c.scans))
    }
    /// The share of the CPUs busy outside the process during the runs.
    pub fn other(&self) -> Option<f64> {
        self.median_of(|s| s.other)
    }
    fn worst_other(&self) -> Option<f64> {
        self.samples.iter().filter_map(|s| s.other).reduce(f64::max)
    }
    fn median_of(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = self.samples.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(v.into_iter()))
    }
    fn same_cell(&self, other: &Row) -> bool {
        self.workload == other.workload && self.qd == other.qd
    }
}

// ---------------------------------------------------------------- running

/// Runs every cell of the chosen workloads, `opts.runs` times each, and
/// returns the rows (the order of [`Workload::ALL`], queue depths rising,
/// backends in [`Workload::backends`] order). The runs of a cell are
/// interleaved across backends, the order rotating by one each run. Files are
/// made (and removed) in a new temporary directory. `progress` is told what
/// happens, a line at a time (no newline).
///
/// # Errors
///
/// Any I/O error, a failed sample (with its process's message), or data that
/// does not match what was written.
pub fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> io::Result<Vec<Row>> {
    let workloads = opts.workloads();
    let needs_disk = workloads
        .iter()
        .any(|w| *w == Workload::Direct || w.writes());
    let direct_size = workloads
        .contains(&Workload::Direct)
        .then(|| opts.direct_size.next_multiple_of(MIB));
    let t0 = Instant::now();
    let dir = place(opts.dir.as_deref(), needs_disk, direct_size)?;
    let cached = dir.path().join("cached.dat");
    let direct = dir.path().join("direct.dat");
    if let Some(size) = direct_size {
        progress(&format!(
            "{} MiB O_DIRECT file written in {}",
            size / MIB,
            dir.path().display()
        ));
    }
    if workloads.iter().any(|w| w.reads_cached()) {
        write_pattern_file(&cached, opts.file_size.next_multiple_of(BLOCK))?;
        progress(&format!(
            "{} MiB cached-read file written in {}",
            opts.file_size / MIB,
            dir.path().display()
        ));
    }
    progress(&format!(
        "files ready in {:.1} s",
        t0.elapsed().as_secs_f64()
    ));

    let own = Backend::of_this_process();
    let mut rows = Vec::new();
    for (wi, &w) in workloads.iter().enumerate() {
        let (path, size) = match w {
            Workload::Direct => (direct.clone(), opts.direct_size.next_multiple_of(MIB)),
            w if w.writes() => (
                dir.path().to_path_buf(),
                opts.write_size.next_multiple_of(8),
            ),
            _ => (cached.clone(), opts.file_size.next_multiple_of(BLOCK)),
        };
        for (qi, &qd) in w.queue_depths().iter().enumerate() {
            let backends: Vec<Backend> = w
                .backends()
                .into_iter()
                .filter(|&b| opts.exec == Exec::ProcessPerSample || !b.is_aiofs() || b == own)
                .collect();
            let first = rows.len();
            rows.extend(backends.iter().map(|&backend| Row {
                workload: w,
                qd,
                backend,
                mode: opts.mode,
                size,
                samples: Vec::new(),
            }));
            let cell = Instant::now();
            for rep in 0..opts.runs {
                for k in 0..backends.len() {
                    let i = (k + rep) % backends.len();
                    let spec = Spec {
                        workload: w,
                        qd,
                        backend: backends[i],
                        seed: (((wi * 8 + qi) * 16 + i) * 256 + rep) as u64,
                        secs: opts.secs,
                        warm_secs: opts.warm_secs,
                        size,
                        path: path.clone(),
                    };
                    if w.reads_cached() {
                        warm_file(&cached)?;
                    }
                    let s = match opts.exec {
                        Exec::ProcessPerSample => spawn_sample(&spec)?,
                        Exec::InProcess => std::thread::scope(|scope| {
                            scope
                                .spawn(|| samples::sample(&spec))
                                .join()
                                .unwrap_or_else(|_| Err(io::Error::other("the sample panicked")))
                        })?,
                    };
                    progress(&progress_line(&spec, rep, opts.runs, &s));
                    rows[first + i].samples.push(s);
                }
            }
            progress(&format!(
                "{} QD{qd} took {:.1} s",
                w.key(),
                cell.elapsed().as_secs_f64()
            ));
        }
    }
    Ok(rows)
}

fn progress_line(spec: &Spec, rep: usize, runs: usize, s: &Sample) -> String {
    let w = spec.workload;
    let figure = match w {
        Workload::Latency => format!(
            "p50 {:.1} µs, p99 {:.1} µs, {} ops/s",
            s.p50_us.unwrap_or(f64::NAN),
            s.p99_us.unwrap_or(f64::NAN),
            fmt_rate(s.ops_per_s())
        ),
        w if w.timed() => format!("{} ops/s", fmt_rate(s.ops_per_s())),
        _ => format!("{:.0} MB/s", s.mb_per_s()),
    };
    format!(
        "{} QD{} run {}/{runs}: {:<26} {figure}, {:.2} CPU µs/{}, other {}",
        w.key(),
        spec.qd,
        rep + 1,
        spec.backend.name(w),
        s.cpu_us_per_op(),
        w.unit(),
        fmt_pct(s.other),
    )
}

/// A new temporary directory for the files, holding the `O_DIRECT` file when
/// one is asked for: in the first candidate that is not memory-backed (when
/// `real_disk`; tmpfs and ramfs accept `O_DIRECT` on recent kernels but have no
/// device behind them, and their `sync_all` is free) and, for `O_DIRECT`,
/// accepts it.
fn place(
    dir: Option<&Path>,
    real_disk: bool,
    direct_size: Option<usize>,
) -> io::Result<tempfile::TempDir> {
    let mut candidates: Vec<PathBuf> = dir.map(Path::to_path_buf).into_iter().collect();
    if let Some(d) = std::env::var_os("AIOFS_BENCH_DIR") {
        candidates.push(d.into());
    }
    if let Some(d) = option_env!("CARGO_TARGET_TMPDIR") {
        candidates.push(d.into());
    }
    candidates.push(std::env::temp_dir());
    let mut refused = Vec::new();
    for dir in candidates {
        if let Err(e) = fs::create_dir_all(&dir) {
            refused.push(format!("{}: {e}", dir.display()));
            continue;
        }
        match memory_fs(&dir) {
            Ok(Some(name)) if real_disk => {
                refused.push(format!("{}: {name} (no device)", dir.display()));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                refused.push(format!("{}: statfs: {e}", dir.display()));
                continue;
            }
        }
        let tmp = tempfile::Builder::new()
            .prefix("aiofs-compare-")
            .tempdir_in(&dir)?;
        if let Some(size) = direct_size
            && let Err(e) = write_direct_file(&tmp.path().join("direct.dat"), size)
        {
            refused.push(format!("{}: O_DIRECT write: {e}", dir.display()));
            continue;
        }
        return Ok(tmp);
    }
    Err(io::Error::other(format!(
        "no directory for the files on a real disk (set AIOFS_BENCH_DIR): {}",
        refused.join("; ")
    )))
}

// ---------------------------------------------------------------- sample processes

/// One sample to take: a cell, a backend, and what it needs.
#[derive(Debug, Clone)]
struct Spec {
    workload: Workload,
    qd: usize,
    backend: Backend,
    seed: u64,
    secs: f64,
    warm_secs: f64,
    /// The file read, or the bytes to write.
    size: usize,
    /// The file read, or the directory to write in.
    path: PathBuf,
}

impl Spec {
    fn encode(&self) -> io::Result<String> {
        let path = self
            .path
            .to_str()
            .filter(|p| !p.contains('\n'))
            .ok_or_else(|| io::Error::other(format!("unusable path {:?}", self.path)))?;
        Ok(format!(
            "workload={}\nqd={}\nbackend={}\nseed={}\nsecs={}\nwarm_secs={}\nsize={}\npath={path}",
            self.workload.key(),
            self.qd,
            self.backend.key(),
            self.seed,
            self.secs,
            self.warm_secs,
            self.size,
        ))
    }

    fn decode(s: &str) -> io::Result<Spec> {
        let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("{SAMPLE_ENV}={s:?}"));
        let field = |k: &str| -> io::Result<&str> {
            s.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .ok_or_else(bad)
        };
        let num = |k: &str| -> io::Result<f64> { field(k)?.parse().map_err(|_| bad()) };
        Ok(Spec {
            workload: Workload::from_key(field("workload")?).ok_or_else(bad)?,
            qd: field("qd")?.parse().map_err(|_| bad())?,
            backend: Backend::from_key(field("backend")?).ok_or_else(bad)?,
            seed: field("seed")?.parse().map_err(|_| bad())?,
            secs: num("secs")?,
            warm_secs: num("warm_secs")?,
            size: field("size")?.parse().map_err(|_| bad())?,
            path: PathBuf::from(field("path")?),
        })
    }
}

/// Set to 1 in a sample's process: every thread blocks the completion signal.
const BLOCK_ENV: &str = "AIOFS_COMPARE_BLOCK";

/// Whether this sample's process blocks the completion signal in every thread.
pub(crate) fn blocks_signal() -> bool {
    std::env::var(BLOCK_ENV).as_deref() == Ok("1")
}

/// Runs one sample in a new process of the current executable, with the aiofs
/// variant's environment, and reads its result.
fn spawn_sample(spec: &Spec) -> io::Result<Sample> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env(SAMPLE_ENV, spec.encode()?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match spec.backend {
        Backend::AiofsPipe => cmd
            .env("AIOFS_NOTIFIER", "pipe")
            .env_remove("AIOFS_NOWAIT")
            .env_remove(BLOCK_ENV),
        Backend::AiofsSignal => cmd
            .env("AIOFS_NOTIFIER", "signal")
            .env_remove("AIOFS_NOWAIT")
            .env_remove(BLOCK_ENV),
        Backend::AiofsNowaitOff => cmd.env("AIOFS_NOTIFIER", "pipe").env("AIOFS_NOWAIT", "0"),
        Backend::AiofsBlocked => cmd
            .env("AIOFS_NOTIFIER", "pipe")
            .env_remove("AIOFS_NOWAIT")
            .env(BLOCK_ENV, "1"),
        _ => &mut cmd,
    };
    let out = cmd.output()?;
    let what = format!(
        "{} QD{} / {}",
        spec.workload.key(),
        spec.qd,
        spec.backend.name(spec.workload)
    );
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what}: the sample process failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(SAMPLE_TAG))
        .and_then(Sample::decode)
        .ok_or_else(|| {
            io::Error::other(format!(
                "{what}: unexpected output from the sample process: {stdout:?} (stderr: {:?})",
                String::from_utf8_lossy(&out.stderr)
            ))
        })
}

/// In a sample process started by [`run`] (it has `AIOFS_COMPARE_SAMPLE` in
/// its environment): takes the sample, prints its result line on stdout and
/// returns `Some` (the caller's `main` should then return it). In any other
/// process: `None`, at once. Call it first thing in `main`.
pub fn sample_process_main() -> Option<io::Result<()>> {
    let spec = std::env::var(SAMPLE_ENV).ok()?;
    if blocks_signal()
        && let Err(e) = aiofs::block_completion_signal()
    {
        return Some(Err(e));
    }
    Some(Spec::decode(&spec).and_then(|spec| {
        let s = samples::sample(&spec)?;
        println!("{SAMPLE_TAG} {}", s.encode());
        Ok(())
    }))
}
