//! The harness of `benches/compare`, as a module that the bench
//! (`benches/compare/main.rs`) and a demo can both include:
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
//! [`run`] blocks (it waits for sample processes): call it outside async code.
//! What is measured and how is described in `benches/compare/main.rs`.
//!
//! This file holds the API (workloads, cells, rows, options), the cell loop,
//! the data files, the sample processes and the io_uring build of `tokio::fs`.
//! It brings in by path, relative to itself (so that an includer names only
//! this file): `sample.rs` (what every sample shares: runtimes, measuring, the
//! result line), one file per family of workloads (`random.rs`, `seq.rs`,
//! `files.rs`, `wal.rs`), `uring.rs` (the tokio-uring rows), `report.rs` (the
//! tables, the JSON lines, the targets) and `util.rs`.
//!
//! # Adding an aiofs row
//!
//! Every aiofs row is one line of [`AIOFS_ROWS`]: a key, a name and the
//! [`aiofs::Config`] its sample process installs (plus whether it blocks the
//! completion signal). A future switch is measured in every workload by adding
//! its line, e.g.
//! `AiofsRow::new("aiofs-pool-fixed", "aiofs (fixed pool)", |c| c.pool_fixed(8), false),`.

#![allow(dead_code)] // a demo that includes this module uses part of it

#[path = "files.rs"]
mod files;
#[path = "random.rs"]
mod random;
#[path = "report.rs"]
mod report;
#[path = "sample.rs"]
mod sample;
#[path = "seq.rs"]
mod seq;
#[cfg(target_os = "linux")]
#[path = "uring.rs"]
mod uring;
#[path = "util.rs"]
mod util;
#[path = "wal.rs"]
mod wal;

#[allow(unused_imports)] // the bench prints with two of them; a demo may want the others
pub use report::{Metric, Target, print_json, print_table, print_targets, targets};
pub use sample::Sample;

use aiofs::{Config, Notifier};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use util::{KIB, MIB, fmt_pct, fmt_rate, median};

/// A random read, and a write-ahead log record: 4 KiB.
pub const BLOCK: usize = 4 * KIB;
/// The sequential workloads' buffers and chunks: 1 MiB.
pub const CHUNK: usize = MIB;
/// Requests in flight in `seq-read-at` and `write-at` (async rows).
pub const SEQ_DEPTH: usize = 4;
/// Appenders in the write-ahead log's group commit.
pub const GROUP: usize = 16;
/// Worker threads of the multi_thread runtime the Tokio rows run on.
pub const WORKERS: usize = 2;
/// The environment variable that makes a process a sample process.
const SAMPLE_ENV: &str = "AIOFS_COMPARE_SAMPLE";
/// The tag of a sample process's result line.
const SAMPLE_TAG: &str = "compare-sample";
/// A run that saw more of the machine busy elsewhere is flagged: a share of
/// the CPUs, or MB/s of others' disk I/O on the data's device.
const NOISY: f64 = 0.10;
const NOISY_IO: f64 = 5.0;
/// The Cargo feature that, with `RUSTFLAGS="--cfg tokio_unstable"`, puts
/// `tokio::fs` on tokio's io_uring driver.
const URING_FEATURE: &str = "bench-tokio-io-uring";

// ---------------------------------------------------------------- the aiofs rows

/// One aiofs row: the configuration its sample process installs before the
/// first request.
#[derive(Debug, Clone, Copy)]
pub struct AiofsRow {
    /// The row's key in JSON and in `--rows`.
    pub key: &'static str,
    /// The row's name in the tables.
    pub name: &'static str,
    /// The configuration, built from `Config::new()`.
    pub config: fn(Config) -> Config,
    /// Every thread blocks the completion signal: `aiofs::block_completion_signal()`
    /// in `main` and in the runtime's `on_thread_start`.
    pub block_signal: bool,
}

impl AiofsRow {
    pub const fn new(
        key: &'static str,
        name: &'static str,
        config: fn(Config) -> Config,
        block_signal: bool,
    ) -> AiofsRow {
        AiofsRow {
            key,
            name,
            config,
            block_signal,
        }
    }
}

/// The aiofs rows, in the order they print. The first is aiofs as a user gets
/// it (the default `Config`, no signal blocking): the reference of the ratio
/// columns and of the targets. One line per row.
#[rustfmt::skip]
pub const AIOFS_ROWS: &[AiofsRow] = &[
    AiofsRow::new("aiofs", "aiofs (default)", |c| c, false),
    AiofsRow::new("aiofs-signal", "aiofs (signal notifier)", |c| c.notifier(Notifier::Signal), false),
    AiofsRow::new("aiofs-nowait-off", "aiofs (nowait off)", |c| c.nowait(false), false),
    AiofsRow::new("aiofs-blocked", "aiofs (signal blocked)", |c| c, true),
];

// ---------------------------------------------------------------- workloads and cells

/// An enum whose variants have a name on the command line and in JSON: with
/// `ALL` (the variants in order), `key` and `from_key`.
macro_rules! keyed_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident = $key:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v,)* }

        impl $name {
            /// Every variant, in the order they run and print.
            pub const ALL: &[$name] = &[$($name::$v,)*];

            /// The name on the command line and in JSON.
            pub fn key(self) -> &'static str {
                match self { $($name::$v => $key,)* }
            }

            fn from_key(key: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|x| x.key() == key)
            }
        }
    };
}

keyed_enum! {
    /// What is measured.
    pub enum Workload {
        /// Random 4 KiB reads of a page-cached file at QD 1, 16, 128.
        Cached = "cached",
        /// QD1 latency (p50, p99) of random 4 KiB reads of the page-cached file.
        Latency = "latency",
        /// Random 4 KiB `O_DIRECT` reads at QD 1, 32.
        Direct = "direct",
        /// Random 4 KiB reads of evicted pages, each page at most once, QD 1, 16, 64.
        Cold = "cold",
        /// The whole cached file through `AsyncRead`: `tokio::io::copy` into a sink.
        SeqCopy = "seq-copy",
        /// The whole cached file with positioned 1 MiB reads.
        SeqReadAt = "seq-read-at",
        /// 1 MiB chunks through `AsyncWrite` (`write_all`), then `flush` + `sync_all`.
        WriteStream = "write-stream",
        /// 1 MiB chunks with `write_all_at`, then `sync_all`.
        WriteAt = "write-at",
        /// Thousands of small files read whole, cold and cached, QD 1 and 16.
        Small = "small",
        /// A write-ahead log: 4 KiB appends, each made durable (`sync_data`).
        Wal = "wal",
        /// The whole-file functions on large files: `copy`, `read`, `write`.
        Whole = "whole",
    }
}

impl Workload {
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
                "all" => chosen.extend(Workload::ALL.iter().copied()),
                "seq" => chosen.extend([Workload::SeqCopy, Workload::SeqReadAt]),
                "write" => chosen.extend([Workload::WriteStream, Workload::WriteAt]),
                _ => chosen.push(Workload::from_key(key).ok_or_else(|| {
                    let names: Vec<&str> = Workload::ALL.iter().map(|w| w.key()).collect();
                    invalid(format!(
                        "unknown workload {key:?}: one of {}, seq, write, all",
                        names.join(", ")
                    ))
                })?),
            }
        }
        Ok(Workload::ALL
            .iter()
            .copied()
            .filter(|w| chosen.contains(w))
            .collect())
    }

    /// The workload's cases, each with the queue depths it is measured at
    /// (requests in flight: tasks for the random reads, the small files and
    /// the group commit; 1 for the streams and the synchronous rows).
    pub fn cases(self) -> &'static [(Case, &'static [usize])] {
        use Case::*;
        match self {
            Workload::Cached => &[(Only, &[1, 16, 128])],
            Workload::Latency | Workload::SeqCopy | Workload::WriteStream => &[(Only, &[1])],
            Workload::Direct => &[(Only, &[1, 32])],
            Workload::Cold => &[(Only, &[1, 16, 64])],
            Workload::SeqReadAt | Workload::WriteAt => &[(Only, &[SEQ_DEPTH])],
            Workload::Small => &[
                (ReadCold, &[1, 16]),
                (ReadCached, &[1, 16]),
                (OpenCold, &[1, 16]),
                (OpenCached, &[1, 16]),
            ],
            Workload::Wal => &[(At, &[1]), (Stream, &[1]), (Group, &[GROUP])],
            Workload::Whole => &[(Copy, &[1]), (Read, &[1]), (Write, &[1])],
        }
    }

    /// The rows after the aiofs rows, in the order they print.
    fn baselines(self, case: Case) -> &'static [Backend] {
        use Backend::*;
        match (self, case) {
            (Workload::Cached | Workload::Latency | Workload::Cold | Workload::SeqReadAt, _) => {
                &[TokioFs, TokioFsUring, SpawnBlocking, TokioUring, Std]
            }
            (Workload::Direct | Workload::WriteAt, _) | (Workload::Wal, Case::At) => {
                &[SpawnBlocking, TokioUring, Std]
            }
            (Workload::SeqCopy, _) | (Workload::Wal, Case::Stream) => &[TokioFs, TokioFsUring, Std],
            (Workload::Whole, Case::Read | Case::Write) => &[TokioFs, TokioFsUring, Std],
            (Workload::WriteStream | Workload::Whole, _) => &[TokioFs, Std],
            (Workload::Small, _) => &[TokioFs, TokioFsUring, SpawnBlocking, Std],
            (Workload::Wal, _) => &[TokioFs, TokioFsUring, SpawnBlocking, TokioUring],
        }
    }

    /// Reads device data, where the descriptor pool of a file matters:
    /// `--pool` adds rows here.
    fn reads_device(self) -> bool {
        matches!(self, Workload::Direct | Workload::Cold)
    }

    /// What one op of the figures is.
    pub fn unit(self, case: Case) -> &'static str {
        match (self, case) {
            (Workload::Cached | Workload::Latency | Workload::Direct | Workload::Cold, _) => {
                "4 KiB read"
            }
            (Workload::Small, _) => "file",
            (Workload::Wal, Case::Group) => "record",
            (Workload::Wal, _) => "append",
            _ => "MiB",
        }
    }

    /// The rate's name: ops/s, or MB/s when an op is a MiB moved.
    fn rate_name(self, case: Case) -> &'static str {
        match self.unit(case) {
            "4 KiB read" => "reads/s",
            "file" => "files/s",
            "append" => "appends/s",
            "record" => "records/s",
            _ => "MB/s",
        }
    }

    /// The title of a cell's table.
    #[rustfmt::skip]
    fn title(self, case: Case, qd: usize, size: u64) -> String {
        const TASKS: &str = "QD{qd} ({qd} task(s) on one shared file; tokio::fs: a File per task, seek + read_exact; std: one thread)";
        const SMALL: &str = "{size} files of 1-64 KiB, each read whole once, {prep} right before the run, QD{qd} ({qd} task(s); spawn_blocking: the std call in one blocking task; std: one thread)";
        const LOG: &str = "append 4 KiB, then sync_data, one at a time (spawn_blocking: pwrite + fdatasync in one task; std: one thread)";
        let what = match (self, case) {
            (Workload::Cached, _) => "random 4 KiB reads of a {mib} MiB page-cached file, {tasks}",
            (Workload::Latency, _) => "QD1 random 4 KiB reads of the {mib} MiB page-cached file, each read timed",
            (Workload::Direct, _) => "random 4 KiB O_DIRECT reads of a {mib} MiB file, QD{qd} (aiofs: the file's default descriptor pool unless named; std: one thread)",
            (Workload::Cold, _) => "random 4 KiB reads of a {mib} MiB file evicted right before the run, each page at most once, {tasks}",
            (Workload::SeqCopy, _) => "the whole {mib} MiB page-cached file, tokio::io::copy(file -> sink) (std: a read loop, 1 MiB buffer)",
            (Workload::SeqReadAt, _) => "the whole {mib} MiB page-cached file with 1 MiB read_at, {SEQ_DEPTH} in flight (tokio::fs and std: a read loop, 1 MiB buffer)",
            (Workload::WriteStream, _) => "{mib} MiB to a new file, write_all of 1 MiB chunks (AsyncWrite), flush, sync_all (std: write_all loop + sync_all)",
            (Workload::WriteAt, _) => "{mib} MiB to a new file, write_all_at of 1 MiB chunks, {SEQ_DEPTH} in flight, then sync_all (std: write_all loop + sync_all)",
            (Workload::Small, _) => SMALL,
            (Workload::Wal, Case::At) => "{log} (aiofs: write_all_at + sync_data)",
            (Workload::Wal, Case::Stream) => "{log} (aiofs, tokio::fs: write_all + flush + sync_data)",
            (Workload::Wal, _) => "{GROUP} tasks append 4 KiB records to one file (each reserves its offset, writes, then awaits sync_data for its own record; tokio::fs: a File per task, seek + write_all + flush + sync_data)",
            (Workload::Whole, Case::Write) => "fs::write of {mib} MiB to a new file (no sync, as the function does)",
            (Workload::Whole, Case::Copy) => "fs::copy of a {mib} MiB page-cached file to a new file (no sync)",
            (Workload::Whole, _) => "fs::read of a {mib} MiB page-cached file",
        };
        let name = match case {
            Case::Only => self.key().to_string(),
            case => format!("{} {}", self.key(), case.key()),
        };
        let what = what
            .replace("{tasks}", TASKS)
            .replace("{log}", LOG)
            .replace("{prep}", if case.cold() { "evicted" } else { "read once" })
            .replace("{mib}", &(size / MIB as u64).to_string())
            .replace("{size}", &size.to_string())
            .replace("{qd}", &qd.to_string())
            .replace("{SEQ_DEPTH}", &SEQ_DEPTH.to_string())
            .replace("{GROUP}", &GROUP.to_string());
        format!("{name}: {what}")
    }
}

keyed_enum! {
    /// A workload's variant (cold or cached, which API); `Only` for a workload
    /// that has one.
    pub enum Case {
        Only = "-",
        /// Small files: `fs::read`, or `File::open` + `AsyncReadExt::read_to_end`;
        /// evicted or cached.
        ReadCold = "read-cold", ReadCached = "read-cached",
        OpenCold = "open-cold", OpenCached = "open-cached",
        /// Write-ahead log: `write_all_at` + `sync_data`; `AsyncWrite`
        /// `write_all` + `flush` + `sync_data`; group commit.
        At = "write_all_at", Stream = "AsyncWrite", Group = "group",
        /// Whole-file functions.
        Copy = "copy", Read = "read", Write = "write",
    }
}

impl Case {
    /// Small files: evicted right before the run.
    pub fn cold(self) -> bool {
        matches!(self, Case::ReadCold | Case::OpenCold)
    }
}

/// One table: a workload's case at a queue depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cell {
    pub workload: Workload,
    pub case: Case,
    pub qd: usize,
}

// ---------------------------------------------------------------- rows

/// How a workload is run: a row of its tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// [`AIOFS_ROWS`]`[row]`; with `pool`, `File::set_fd_pool(pool)` on the
    /// file read (`--pool`, device reads only).
    Aiofs { row: usize, pool: Option<usize> },
    /// `tokio::fs` as published (its blocking pool).
    TokioFs,
    /// `tokio::fs` on tokio's io_uring driver (tokio's `io-uring` feature,
    /// `--cfg tokio_unstable`, `Builder::enable_io_uring`): a separate build
    /// of this bench runs its samples.
    TokioFsUring,
    /// `tokio::task::spawn_blocking` + the std call, one blocking task per op.
    SpawnBlocking,
    /// tokio-uring on its own runtime (Linux).
    TokioUring,
    /// Synchronous `std::fs` on one thread: the limit.
    Std,
}

/// The baselines' keys.
const BASELINE_KEYS: [(Backend, &str); 5] = [
    (Backend::TokioFs, "tokio-fs"),
    (Backend::TokioFsUring, "tokio-fs-uring"),
    (Backend::SpawnBlocking, "spawn-blocking"),
    (Backend::TokioUring, "tokio-uring"),
    (Backend::Std, "std"),
];

impl Backend {
    /// aiofs as a user gets it: the first of [`AIOFS_ROWS`].
    pub const DEFAULT_AIOFS: Backend = Backend::Aiofs { row: 0, pool: None };

    /// The row's key in JSON and in `--rows` (`aiofs-blocked`, `aiofs/pool=8`, `std`).
    pub fn key(self) -> String {
        match self {
            Backend::Aiofs { row, pool: None } => AIOFS_ROWS[row].key.to_string(),
            Backend::Aiofs { row, pool: Some(n) } => format!("{}/pool={n}", AIOFS_ROWS[row].key),
            b => BASELINE_KEYS
                .iter()
                .find(|(k, _)| *k == b)
                .map_or("?", |(_, key)| key)
                .to_string(),
        }
    }

    fn from_key(key: &str) -> Option<Backend> {
        let (row_key, pool) = match key.split_once("/pool=") {
            Some((k, n)) => (k, Some(n.parse().ok()?)),
            None => (key, None),
        };
        if let Some(row) = AIOFS_ROWS.iter().position(|r| r.key == row_key) {
            return Some(Backend::Aiofs { row, pool });
        }
        let b = BASELINE_KEYS.iter().find(|(_, k)| *k == key)?.0;
        pool.is_none().then_some(b)
    }

    pub fn is_aiofs(self) -> bool {
        matches!(self, Backend::Aiofs { .. })
    }

    /// The aiofs row's configuration, if this is one.
    pub fn aiofs_row(self) -> Option<&'static AiofsRow> {
        match self {
            Backend::Aiofs { row, .. } => AIOFS_ROWS.get(row),
            _ => None,
        }
    }

    /// The row's name in a table.
    pub fn name(self, cell: Cell) -> String {
        let uring = |what: &str| format!("tokio::fs io_uring: {what}");
        match (self, cell.workload, cell.case) {
            (Backend::Aiofs { row, pool: None }, ..) => AIOFS_ROWS[row].name.to_string(),
            (Backend::Aiofs { row, pool: Some(n) }, ..) => {
                format!("{}, fd_pool={n}", AIOFS_ROWS[row].name)
            }
            (Backend::TokioFs, ..) => "tokio::fs".to_string(),
            (Backend::TokioFsUring, Workload::Wal | Workload::WriteStream, _) => uring("none"),
            (Backend::TokioFsUring, Workload::Small | Workload::Whole, Case::Write) => {
                uring("open+write")
            }
            (Backend::TokioFsUring, Workload::Small | Workload::Whole, _) => uring("open+read"),
            (Backend::TokioFsUring, ..) => uring("read"),
            (Backend::SpawnBlocking, ..) => "spawn_blocking".to_string(),
            (Backend::TokioUring, ..) => "tokio-uring".to_string(),
            (Backend::Std, ..) => "std (1 thread)".to_string(),
        }
    }
}

// ---------------------------------------------------------------- options

/// What [`run`] measures, and how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// "full", "quick", ...: printed with the figures.
    pub mode: &'static str,
    /// Runs per cell; each figure is the median.
    pub runs: usize,
    /// Seconds of a timed run: random reads (cached, latency, direct) / cold
    /// reads / the write-ahead log.
    pub secs: f64,
    pub cold_secs: f64,
    pub wal_secs: f64,
    /// Seconds of the untimed warm-up pass before each timed run.
    pub warm_secs: f64,
    /// The page-cached file (random and sequential reads), bytes.
    pub file_size: u64,
    /// The `O_DIRECT` file, bytes.
    pub direct_size: u64,
    /// The cold file, bytes.
    pub cold_size: u64,
    /// Bytes each write run writes (write-stream, write-at).
    pub write_size: u64,
    /// Small files.
    pub small_files: u64,
    /// `whole`: the file copied; the file read and the bytes written.
    pub copy_size: u64,
    pub whole_size: u64,
    /// The workloads to run; empty: all.
    pub workloads: Vec<Workload>,
    /// The rows to run, by key ([`Backend::key`]); empty: all.
    pub rows: Vec<String>,
    /// `set_fd_pool` sizes: each adds, to each aiofs row of the device-read
    /// workloads (direct, cold), a row with that pool.
    pub pools: Vec<usize>,
    /// Where the data files go; else `AIOFS_BENCH_DIR`, else `target/bench-data`.
    pub dir: Option<PathBuf>,
}

impl Options {
    /// The full run: 1 GiB files (2 GiB cold), 3 runs per cell.
    pub fn full() -> Options {
        Options {
            mode: "full",
            runs: 3,
            secs: 1.0,
            cold_secs: 2.0,
            wal_secs: 3.0,
            warm_secs: 0.2,
            file_size: 1024 * MIB as u64,
            direct_size: 1024 * MIB as u64,
            cold_size: 2048 * MIB as u64,
            write_size: 256 * MIB as u64,
            small_files: 4000,
            copy_size: 256 * MIB as u64,
            whole_size: 64 * MIB as u64,
            workloads: Vec::new(),
            rows: Vec::new(),
            pools: Vec::new(),
            dir: None,
        }
    }

    /// A smoke run: small files and short runs, 1 run per cell.
    pub fn quick() -> Options {
        let mib = MIB as u64;
        let mut o = Options::full();
        (o.mode, o.runs, o.warm_secs) = ("quick", 1, 0.03);
        (o.secs, o.cold_secs, o.wal_secs) = (0.15, 0.15, 0.15);
        (o.file_size, o.direct_size, o.cold_size) = (64 * mib, 64 * mib, 256 * mib);
        (o.write_size, o.copy_size, o.whole_size) = (32 * mib, 32 * mib, 32 * mib);
        o.small_files = 300;
        o
    }

    fn workloads(&self) -> Vec<Workload> {
        Workload::ALL
            .iter()
            .copied()
            .filter(|w| self.workloads.is_empty() || self.workloads.contains(w))
            .collect()
    }

    /// The rows of a cell, in the order they print.
    fn backends(&self, cell: Cell) -> Vec<Backend> {
        let aiofs = (0..AIOFS_ROWS.len()).map(|row| Backend::Aiofs { row, pool: None });
        let pools: &[usize] = if cell.workload.reads_device() {
            &self.pools
        } else {
            &[]
        };
        let pooled = (0..AIOFS_ROWS.len()).flat_map(|row| {
            pools
                .iter()
                .map(move |&n| Backend::Aiofs { row, pool: Some(n) })
        });
        let mut v: Vec<Backend> = aiofs.chain(pooled).collect();
        v.extend(cell.workload.baselines(cell.case));
        v.retain(|b| {
            let key = b.key();
            let base = key.split('/').next().unwrap_or_default();
            self.rows.is_empty() || self.rows.iter().any(|r| *r == key || *r == base)
        });
        v
    }

    /// The timed run of a cell, seconds.
    fn secs_of(&self, w: Workload) -> f64 {
        match w {
            Workload::Cold => self.cold_secs,
            Workload::Wal => self.wal_secs,
            _ => self.secs,
        }
    }

    /// The size of a cell's input: bytes, or files for `small`.
    fn size_of(&self, w: Workload, case: Case) -> u64 {
        match (w, case) {
            (Workload::Direct, _) => self.direct_size,
            (Workload::Cold, _) => self.cold_size,
            (Workload::WriteStream | Workload::WriteAt, _) => self.write_size,
            (Workload::Small, _) => self.small_files,
            (Workload::Wal, _) => 0,
            (Workload::Whole, Case::Copy) => self.copy_size,
            (Workload::Whole, _) => self.whole_size,
            _ => self.file_size,
        }
    }
}

// ---------------------------------------------------------------- rows of the report

/// One line of a table: a backend in one cell, with its runs. Each figure is
/// the median over the runs, taken per column.
#[derive(Debug, Clone)]
pub struct Row {
    pub cell: Cell,
    pub backend: Backend,
    /// [`Options::mode`].
    pub mode: &'static str,
    /// The cell's input: bytes, or files.
    pub size: u64,
    pub samples: Vec<Sample>,
    /// Why the row has no figures (a backend this machine cannot run).
    pub na: Option<String>,
}

impl Row {
    pub fn name(&self) -> String {
        self.backend.name(self.cell)
    }
    pub fn ops_per_s(&self) -> f64 {
        self.median_of(|s| Some(s.ops_per_s())).unwrap_or(f64::NAN)
    }
    pub fn mb_per_s(&self) -> f64 {
        self.median_of(|s| Some(s.mb_per_s())).unwrap_or(f64::NAN)
    }
    pub fn cpu_us_per_op(&self) -> f64 {
        self.median_of(|s| Some(s.cpu_us_per_op()))
            .unwrap_or(f64::NAN)
    }
    pub fn csw_per_op(&self) -> f64 {
        self.median_of(|s| Some(s.csw / s.ops as f64))
            .unwrap_or(f64::NAN)
    }
    pub fn p50_us(&self) -> Option<f64> {
        self.median_of(|s| s.p50_us)
    }
    pub fn p99_us(&self) -> Option<f64> {
        self.median_of(|s| s.p99_us)
    }
    /// aiofs rows: a counter of `aiofs::stats()` per op (a name of
    /// [`sample::AIO_FIELDS`]).
    pub fn aio_per_op(&self, field: &str) -> Option<f64> {
        self.median_of(|s| s.aio_per_op(field))
    }
    /// The share of the CPUs busy outside the process during the runs.
    pub fn other(&self) -> Option<f64> {
        self.median_of(|s| s.other)
    }
    /// Disk I/O of others on the data's device during the runs, MB/s.
    pub fn other_io(&self) -> Option<f64> {
        self.median_of(|s| s.other_io)
    }
    /// The worst of the runs: CPU share, disk MB/s of others.
    fn worst_other(&self) -> (f64, f64) {
        let worst =
            |f: fn(&Sample) -> Option<f64>| self.samples.iter().filter_map(f).fold(0.0, f64::max);
        (worst(|s| s.other), worst(|s| s.other_io))
    }
    fn median_of(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = self.samples.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(v.into_iter()))
    }
}

// ---------------------------------------------------------------- running

/// Runs every cell of the chosen workloads, `opts.runs` times each, and
/// returns the rows (the order of [`Workload::ALL`], then cases and queue
/// depths, rows in [`Options`]' order). The runs of a cell are interleaved
/// across rows, the order rotating by one each run. Input files are made once
/// in the data directory and kept; written files go in a temporary directory
/// in it. `progress` is told what happens, a line at a time.
///
/// # Errors
///
/// Any I/O error, a failed sample (with its process's message), or data that
/// does not match what was written. A row this machine cannot run (the
/// io_uring build of `tokio::fs`, tokio-uring) is marked n/a instead.
pub fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> io::Result<Vec<Row>> {
    let data = data_dir(opts.dir.as_deref())?;
    let scratch = tempfile::Builder::new().prefix("run-").tempdir_in(&data)?;
    let mut uring_exe: Option<Result<PathBuf, String>> = None;
    let mut rows = Vec::new();
    for w in opts.workloads() {
        for &(case, qds) in w.cases() {
            let size = opts.size_of(w, case);
            let input = prepare_input(&data, w, case, size, progress)?;
            for &qd in qds {
                let cell = Cell {
                    workload: w,
                    case,
                    qd,
                };
                let backends = opts.backends(cell);
                let first = rows.len();
                rows.extend(backends.iter().map(|&backend| Row {
                    cell,
                    backend,
                    mode: opts.mode,
                    size,
                    samples: Vec::new(),
                    na: None,
                }));
                let t0 = Instant::now();
                for rep in 0..opts.runs {
                    for k in 0..backends.len() {
                        let i = (k + rep) % backends.len();
                        let row = &mut rows[first + i];
                        if row.na.is_some() {
                            continue;
                        }
                        let spec = Spec {
                            cell,
                            backend: row.backend,
                            seed: ((first + i) * 256 + rep) as u64,
                            secs: opts.secs_of(w),
                            warm_secs: opts.warm_secs,
                            size,
                            input: input.clone(),
                            scratch: scratch.path().to_path_buf(),
                        };
                        match exe_for(row.backend, &mut uring_exe, progress)
                            .map_err(io::Error::other)
                            .and_then(|exe| spawn_sample(&spec, &exe))
                        {
                            Ok(s) => {
                                progress(&progress_line(&spec, rep, opts.runs, &s));
                                row.samples.push(s);
                            }
                            Err(e) if may_be_na(row.backend) => {
                                progress(&format!("{}: n/a: {e}", row.name()));
                                row.na = Some(e.to_string());
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                progress(&format!(
                    "{} {} QD{qd} took {:.1} s",
                    w.key(),
                    case.key(),
                    t0.elapsed().as_secs_f64()
                ));
            }
        }
    }
    Ok(rows)
}

/// The executable that runs `b`'s samples: this one, or for `tokio::fs
/// io_uring` this bench's io_uring build, made on first need (`uring`
/// remembers it, or why there is none).
fn exe_for(
    b: Backend,
    uring: &mut Option<Result<PathBuf, String>>,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, String> {
    if b != Backend::TokioFsUring {
        return std::env::current_exe().map_err(|e| e.to_string());
    }
    uring
        .get_or_insert_with(|| {
            progress("building the bench with tokio's io-uring driver (first time: minutes)");
            let t0 = Instant::now();
            let built = build_uring_fs();
            progress(&match &built {
                Ok(exe) => format!(
                    "built {} in {:.1} s",
                    exe.display(),
                    t0.elapsed().as_secs_f64()
                ),
                Err(e) => format!("no io_uring build of tokio::fs: {e}"),
            });
            built
        })
        .clone()
}

/// The rows a machine may be unable to run: they print n/a with the reason.
fn may_be_na(b: Backend) -> bool {
    matches!(b, Backend::TokioFsUring | Backend::TokioUring)
}

fn progress_line(spec: &Spec, rep: usize, runs: usize, s: &Sample) -> String {
    let (w, case) = (spec.cell.workload, spec.cell.case);
    let rate = match w.rate_name(case) {
        "MB/s" => format!("{:.0} MB/s", s.mb_per_s()),
        name => format!("{} {name}", fmt_rate(s.ops_per_s())),
    };
    let lat = s
        .p50_us
        .zip(s.p99_us)
        .map_or_else(String::new, |(p50, p99)| {
            format!(", p50 {p50:.1} µs, p99 {p99:.1} µs")
        });
    format!(
        "{} {} QD{} run {}/{runs}: {:<30} {rate}{lat}, {:.2} CPU µs/{}, other {} CPU, {} MB/s disk",
        w.key(),
        case.key(),
        spec.cell.qd,
        rep + 1,
        spec.backend.name(spec.cell),
        s.cpu_us_per_op(),
        w.unit(case),
        fmt_pct(s.other),
        util::fmt_opt(s.other_io, 0),
    )
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

// ---------------------------------------------------------------- data files

/// Cargo's target directory (of the bench's build; the demo's: `target`).
fn target_dir() -> PathBuf {
    option_env!("CARGO_TARGET_TMPDIR")
        .and_then(|tmp| Path::new(tmp).parent().map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The data directory: `dir`, else `AIOFS_BENCH_DIR`, else `target/bench-data`;
/// it must be on a real disk (the direct, cold and write workloads need a
/// device behind it).
fn data_dir(dir: Option<&Path>) -> io::Result<PathBuf> {
    let dir = dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("AIOFS_BENCH_DIR").map(PathBuf::from))
        .unwrap_or_else(|| target_dir().join("bench-data"));
    fs::create_dir_all(&dir)?;
    if let Some(name) = util::memory_fs(&dir)? {
        return Err(invalid(format!(
            "{} is on {name}, which has no device: set AIOFS_BENCH_DIR to a directory on a real disk",
            dir.display()
        )));
    }
    dir.canonicalize()
}

/// Makes (once) the input a cell reads: a pattern file of `size` bytes, or
/// `size` small files; its path (empty for the write workloads).
fn prepare_input(
    data: &Path,
    w: Workload,
    case: Case,
    size: u64,
    progress: &mut dyn FnMut(&str),
) -> io::Result<PathBuf> {
    let t0 = Instant::now();
    let (path, made) = match (w, case) {
        (Workload::WriteStream | Workload::WriteAt | Workload::Wal, _)
        | (Workload::Whole, Case::Write) => return Ok(PathBuf::new()),
        (Workload::Small, _) => {
            let dir = data.join(format!("small-{size}"));
            (dir.clone(), files::make_small_files(&dir, size)?)
        }
        _ => {
            let path = data.join(format!("pattern-{}M.dat", size.div_ceil(MIB as u64)));
            (path.clone(), util::pattern_file(&path, size)?)
        }
    };
    if made {
        progress(&format!(
            "{} made in {:.1} s",
            path.display(),
            t0.elapsed().as_secs_f64()
        ));
    }
    Ok(path)
}

// ---------------------------------------------------------------- tokio::fs on io_uring

/// Builds this bench with tokio's io_uring driver for the `tokio::fs io_uring`
/// rows: `cargo build --release --bench compare --features bench-tokio-io-uring`
/// with `RUSTFLAGS="--cfg tokio_unstable"`, in a target directory of its own
/// (`target/tokio-uring-fs`: the flag changes every crate's build). The executable, or why there is none.
fn build_uring_fs() -> Result<PathBuf, String> {
    if !cfg!(target_os = "linux") {
        return Err("io_uring is Linux-only".into());
    }
    let target = target_dir().join("tokio-uring-fs");
    let flags = std::env::var("RUSTFLAGS").unwrap_or_default() + " --cfg tokio_unstable";
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--bench", "compare", "--features"])
        .args([URING_FEATURE, "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .env("RUSTFLAGS", flags.trim())
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(6)
            .collect();
        return Err(format!(
            "cargo build failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"compiler-artifact\"") && l.contains("\"name\":\"compare\""))
        .find_map(|l| l.split("\"executable\":\"").nth(1)?.split('"').next())
        .map(PathBuf::from)
        .ok_or_else(|| "cargo built no compare executable".to_string())
}

// ---------------------------------------------------------------- sample processes

/// One sample to take: a cell, a row, and what it needs.
#[derive(Debug, Clone)]
pub struct Spec {
    pub cell: Cell,
    pub backend: Backend,
    pub seed: u64,
    pub secs: f64,
    pub warm_secs: f64,
    /// The cell's input: bytes, or files.
    pub size: u64,
    /// The file (or the directory of small files) read; empty for writes.
    pub input: PathBuf,
    /// A directory for written files.
    pub scratch: PathBuf,
}

impl Spec {
    fn encode(&self) -> io::Result<String> {
        let path = |p: &Path| {
            p.to_str()
                .filter(|s| !s.contains('\n'))
                .map(str::to_string)
                .ok_or_else(|| io::Error::other(format!("unusable path {p:?}")))
        };
        Ok(format!(
            "workload={}\ncase={}\nqd={}\nbackend={}\nseed={}\nsecs={}\nwarm_secs={}\nsize={}\ninput={}\nscratch={}",
            self.cell.workload.key(),
            self.cell.case.key(),
            self.cell.qd,
            self.backend.key(),
            self.seed,
            self.secs,
            self.warm_secs,
            self.size,
            path(&self.input)?,
            path(&self.scratch)?,
        ))
    }

    fn decode(s: &str) -> io::Result<Spec> {
        let bad = || invalid(format!("{SAMPLE_ENV}={s:?}"));
        let field = |k: &str| -> io::Result<&str> {
            s.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .ok_or_else(bad)
        };
        let num = |k: &str| -> io::Result<f64> { field(k)?.parse().map_err(|_| bad()) };
        let int = |k: &str| -> io::Result<u64> { field(k)?.parse().map_err(|_| bad()) };
        Ok(Spec {
            cell: Cell {
                workload: Workload::from_key(field("workload")?).ok_or_else(bad)?,
                case: Case::from_key(field("case")?).ok_or_else(bad)?,
                qd: int("qd")? as usize,
            },
            backend: Backend::from_key(field("backend")?).ok_or_else(bad)?,
            seed: int("seed")?,
            secs: num("secs")?,
            warm_secs: num("warm_secs")?,
            size: int("size")?,
            input: PathBuf::from(field("input")?),
            scratch: PathBuf::from(field("scratch")?),
        })
    }

    /// The row's name, for messages.
    pub fn what(&self) -> String {
        self.backend.name(self.cell)
    }
}

/// The variables through which aiofs reads its configuration from the
/// environment: removed in sample processes, whose rows install theirs.
const AIOFS_VARS: [&str; 5] = [
    "AIOFS_NOTIFIER",
    "AIOFS_SIGNAL",
    "AIOFS_NOWAIT",
    "AIOFS_LISTIO",
    "AIOFS_READ_AHEAD",
];

/// Runs one sample in a new process of `exe` and reads its result.
fn spawn_sample(spec: &Spec, exe: &Path) -> io::Result<Sample> {
    let mut cmd = Command::new(exe);
    cmd.env(SAMPLE_ENV, spec.encode()?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in AIOFS_VARS {
        cmd.env_remove(var);
    }
    let out = cmd.output()?;
    let what = format!(
        "{} {} QD{} / {}",
        spec.cell.workload.key(),
        spec.cell.case.key(),
        spec.cell.qd,
        spec.what()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what}: the sample process failed ({}): {}",
            out.status,
            stderr.trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(SAMPLE_TAG))
        .and_then(Sample::decode)
        .ok_or_else(|| {
            io::Error::other(format!(
                "{what}: unexpected output from the sample process: {stdout:?} (stderr: {stderr:?})"
            ))
        })
}

/// In a sample process started by [`run`] (it has `AIOFS_COMPARE_SAMPLE` in
/// its environment): installs the row's configuration, takes the sample,
/// prints its result line on stdout and returns `Some` (the caller's `main`
/// should then return it). In any other process: `None`, at once. Call it
/// first thing in `main`.
pub fn sample_process_main() -> Option<io::Result<()>> {
    let spec = std::env::var(SAMPLE_ENV).ok()?;
    Some(Spec::decode(&spec).and_then(|spec| {
        if let Some(row) = spec.backend.aiofs_row() {
            (row.config)(Config::new()).install()?;
            if row.block_signal {
                aiofs::block_completion_signal()?;
            }
        }
        let s = sample::take(&spec)?;
        println!("{SAMPLE_TAG} {}", s.encode());
        Ok(())
    }))
}
