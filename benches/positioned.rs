//! Positioned I/O: aiofs side by side with its baselines, in one run, as ratios.
//!
//! ```text
//! cargo bench --bench positioned                 # full run: 3 runs per cell, medians
//! cargo bench --bench positioned -- --quick      # CI smoke run: 1 run per cell
//! cargo bench --bench positioned -- --json       # one JSON object per row on stdout
//! AIOFS_NOTIFIER=signal cargo bench --bench positioned
//! ```
//!
//! Workload A: random 4 KiB reads (4 KiB-aligned) of a page-cached file at queue
//! depth 1, 16 and 128 (QD tasks sharing one file on a multi_thread runtime):
//!
//! - `aiofs read_at`: `File::read_at` on one shared `Arc<aiofs::File>`;
//! - `spawn_blocking+pread`: `tokio::task::spawn_blocking` + `FileExt::read_at`
//!   on an `Arc<std::fs::File>`;
//! - `tokio::fs seek+read`: one `tokio::fs::File` per task, `seek` + `read_exact`;
//! - `std pread 1 thread`: a synchronous `pread` loop on one thread (QD1 only):
//!   the limit.
//!
//! Workload B: sequential write in 1 MiB chunks then `sync_all`:
//!
//! - `aiofs write_all_at`: `WRITE_DEPTH` chunks in flight on one file;
//! - `std write_all`: `write_all` + `sync_all` on one thread;
//! - `tokio::fs write_all`: `tokio::fs::File` `write_all` + `sync_all`.
//!
//! Each figure is the median of its runs (3, or 1 with `--quick`), taken
//! independently per column. CPU is `getrusage(RUSAGE_SELF)` user + system,
//! every thread of the process (Tokio workers, the blocking pool, glibc's AIO
//! threads, aiofs's notifier), divided by the operation count; kernel writeback
//! threads are not counted. The ratio columns are aiofs ÷ the row's backend at
//! the same queue depth: throughput > 1 means aiofs is faster, CPU < 1 means
//! aiofs spends less per operation.
//!
//! The cached file is read fully right before every run of workload A (these
//! machines drop idle page cache), and the first and last read of every task are
//! checked against the file's pattern, for every backend; written files are read
//! back and checked after every run of workload B.

mod common;

use common::{
    fill_pattern, fmt_rate, fmt_ratio, joined, json_list, json_num, json_str, median, ratio,
    verify_pattern as verify, warm_file,
};
use std::fs;
use std::io::{self, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
use tokio::runtime::Runtime;

const MIB: usize = 1 << 20;
const BLOCK: usize = 4096;
const CHUNK: usize = MIB;
const QUEUE_DEPTHS: [usize; 3] = [1, 16, 128];
/// aiofs writes in flight at once in workload B.
const WRITE_DEPTH: usize = 8;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Clone, Copy)]
struct Params {
    mode: &'static str,
    runs: usize,
    read_file: usize,
    read_ops: usize,
    write_size: usize,
}

const FULL: Params = Params {
    mode: "full",
    runs: 3,
    read_file: 256 * MIB,
    read_ops: 100_000,
    write_size: 64 * MIB,
};

const QUICK: Params = Params {
    mode: "quick",
    runs: 1,
    read_file: 32 * MIB,
    read_ops: 20_000,
    write_size: 16 * MIB,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Aiofs,
    SpawnBlocking,
    TokioFs,
    StdPread,
}

impl Reader {
    fn name(self) -> &'static str {
        match self {
            Reader::Aiofs => "aiofs read_at",
            Reader::SpawnBlocking => "spawn_blocking+pread",
            Reader::TokioFs => "tokio::fs seek+read",
            Reader::StdPread => "std pread 1 thread",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Aiofs,
    Std,
    TokioFs,
}

impl Writer {
    fn name(self) -> &'static str {
        match self {
            Writer::Aiofs => "aiofs write_all_at",
            Writer::Std => "std write_all",
            Writer::TokioFs => "tokio::fs write_all",
        }
    }
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ops: u64,
    bytes: u64,
    secs: f64,
    cpu_us: f64,
}

impl Sample {
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    fn cpu_us_per_op(&self) -> f64 {
        self.cpu_us / self.ops as f64
    }
}

/// One line of the table: a backend at a queue depth, with its runs.
#[derive(Debug)]
struct Row {
    workload: &'static str,
    backend: &'static str,
    is_aiofs: bool,
    qd: usize,
    /// Rows of one group are compared with the group's aiofs row.
    group: usize,
    samples: Vec<Sample>,
}

impl Row {
    fn ops_per_s(&self) -> f64 {
        median(self.samples.iter().map(Sample::ops_per_s))
    }
    fn mb_per_s(&self) -> f64 {
        median(self.samples.iter().map(Sample::mb_per_s))
    }
    fn cpu_us_per_op(&self) -> f64 {
        median(self.samples.iter().map(Sample::cpu_us_per_op))
    }
    fn ops(&self) -> u64 {
        self.samples.first().map_or(0, |s| s.ops)
    }
}

// ---------------------------------------------------------------- the data

/// Writes the read workload's file, synced so that its writeback does not run
/// under the measurements.
fn make_read_file(path: &Path, size: usize) -> io::Result<()> {
    let mut f = fs::File::create_new(path)?;
    let mut chunk = vec![0u8; CHUNK];
    for off in (0..size).step_by(CHUNK) {
        fill_pattern(&mut chunk, off as u64);
        f.write_all(&chunk)?;
    }
    f.sync_all()
}

/// A task's stream of random block-aligned offsets (xorshift64*).
struct Offsets {
    state: u64,
    blocks: u64,
}

impl Offsets {
    fn new(task: usize, rep: usize, file_size: usize) -> Offsets {
        let seed = 0x2545_f491_4f6c_dd1d_u64
            ^ (task as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (rep as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
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

/// Checks one read: a full block, and the pattern on the first and last read
/// of each task.
fn check_read(
    n: usize,
    buf: &[u8],
    pos: u64,
    k: usize,
    per_task: usize,
    what: &str,
) -> io::Result<()> {
    if n != BLOCK {
        return Err(io::Error::other(format!(
            "{what}: short read at {pos}: {n} bytes"
        )));
    }
    if k == 0 || k + 1 == per_task {
        verify(&buf[..n], pos, what)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- measuring

fn cpu_time_us() -> f64 {
    // SAFETY: `rusage` is plain old data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage` for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Times `f`, which returns the operation count and the bytes moved.
fn measure(f: impl FnOnce() -> Result<(u64, u64)>) -> Result<Sample> {
    let cpu0 = cpu_time_us();
    let t0 = Instant::now();
    let (ops, bytes) = f()?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu_us = cpu_time_us() - cpu0;
    Ok(Sample {
        ops,
        bytes,
        secs,
        cpu_us,
    })
}

// ---------------------------------------------------------------- workload A

/// Runs one cell of workload A once: warm the file, a short untimed warm-up at
/// the same depth (threads, driver), then the timed run.
fn read_sample(
    rt: &Runtime,
    reader: Reader,
    path: &Path,
    p: &Params,
    qd: usize,
    rep: usize,
) -> Result<Sample> {
    let per_task = (p.read_ops / qd).max(1);
    let file_size = p.read_file;
    warm_file(path)?;
    match reader {
        Reader::StdPread => {
            let file = fs::File::open(path)?;
            let mut buf = vec![0u8; BLOCK];
            let mut pass = |n: usize, rep: usize| -> Result<(u64, u64)> {
                for (k, pos) in Offsets::new(0, rep, file_size).take(n).enumerate() {
                    let got = file.read_at(&mut buf, pos)?;
                    check_read(got, &buf, pos, k, n, "std pread")?;
                }
                Ok((n as u64, (n * BLOCK) as u64))
            };
            pass(64, usize::MAX)?;
            measure(|| pass(per_task, rep))
        }
        Reader::Aiofs => {
            let file = Arc::new(rt.block_on(aiofs::File::open(path))?);
            let pass = |n: usize, rep: usize| -> Result<(u64, u64)> {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..qd)
                        .map(|t| {
                            let file = Arc::clone(&file);
                            tokio::spawn(async move {
                                let mut buf = Vec::with_capacity(BLOCK);
                                for (k, pos) in Offsets::new(t, rep, file_size).take(n).enumerate()
                                {
                                    let (res, b) = file.read_at(buf, pos).await;
                                    buf = b;
                                    check_read(res?, &buf, pos, k, n, "aiofs read_at")?;
                                }
                                io::Result::Ok(())
                            })
                        })
                        .collect();
                    for task in tasks {
                        joined(task.await)??;
                    }
                    io::Result::Ok(())
                })?;
                Ok(((qd * n) as u64, (qd * n * BLOCK) as u64))
            };
            pass(4, usize::MAX)?;
            measure(|| pass(per_task, rep))
        }
        Reader::SpawnBlocking => {
            let file = Arc::new(fs::File::open(path)?);
            let pass = |n: usize, rep: usize| -> Result<(u64, u64)> {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..qd)
                        .map(|t| {
                            let file = Arc::clone(&file);
                            tokio::spawn(async move {
                                let mut buf = vec![0u8; BLOCK];
                                for (k, pos) in Offsets::new(t, rep, file_size).take(n).enumerate()
                                {
                                    let f = Arc::clone(&file);
                                    let (res, b) = joined(
                                        tokio::task::spawn_blocking(move || {
                                            let res = f.read_at(&mut buf, pos);
                                            (res, buf)
                                        })
                                        .await,
                                    )?;
                                    buf = b;
                                    check_read(res?, &buf, pos, k, n, "spawn_blocking+pread")?;
                                }
                                io::Result::Ok(())
                            })
                        })
                        .collect();
                    for task in tasks {
                        joined(task.await)??;
                    }
                    io::Result::Ok(())
                })?;
                Ok(((qd * n) as u64, (qd * n * BLOCK) as u64))
            };
            pass(4, usize::MAX)?;
            measure(|| pass(per_task, rep))
        }
        Reader::TokioFs => {
            // One `tokio::fs::File` per task (it has a single cursor), opened
            // outside the timed region; each pass hands them back.
            let mut files = rt.block_on(async {
                let mut files = Vec::with_capacity(qd);
                for _ in 0..qd {
                    files.push(tokio::fs::File::open(path).await?);
                }
                io::Result::Ok(files)
            })?;
            let mut pass = |n: usize, rep: usize| -> Result<(u64, u64)> {
                let taken = std::mem::take(&mut files);
                files = rt.block_on(async {
                    let tasks: Vec<_> = taken
                        .into_iter()
                        .enumerate()
                        .map(|(t, mut file)| {
                            tokio::spawn(async move {
                                let mut buf = vec![0u8; BLOCK];
                                for (k, pos) in Offsets::new(t, rep, file_size).take(n).enumerate()
                                {
                                    file.seek(SeekFrom::Start(pos)).await?;
                                    file.read_exact(&mut buf).await?;
                                    check_read(BLOCK, &buf, pos, k, n, "tokio::fs")?;
                                }
                                io::Result::Ok(file)
                            })
                        })
                        .collect();
                    let mut back = Vec::with_capacity(qd);
                    for task in tasks {
                        back.push(joined(task.await)??);
                    }
                    io::Result::Ok(back)
                })?;
                Ok(((qd * n) as u64, (qd * n * BLOCK) as u64))
            };
            pass(4, usize::MAX)?;
            measure(|| pass(per_task, rep))
        }
    }
}

// ---------------------------------------------------------------- workload B

/// Runs one cell of workload B once: a new file, the chunks written and synced
/// (timed; opening is not), then the file read back and checked.
fn write_sample(
    rt: &Runtime,
    writer: Writer,
    dir: &Path,
    data: &'static [u8],
    rep: usize,
) -> Result<Sample> {
    let path = dir.join(format!("write-{writer:?}-{rep}"));
    let ops = data.len().div_ceil(CHUNK) as u64;
    let bytes = data.len() as u64;
    let sample = match writer {
        Writer::Std => {
            let mut f = fs::File::create_new(&path)?;
            measure(|| {
                for chunk in data.chunks(CHUNK) {
                    f.write_all(chunk)?;
                }
                f.sync_all()?;
                Ok((ops, bytes))
            })?
        }
        Writer::Aiofs => {
            let file = rt.block_on(aiofs::File::create_new(&path))?;
            measure(|| {
                rt.block_on(async {
                    let mut in_flight = FuturesUnordered::new();
                    for (i, chunk) in data.chunks(CHUNK).enumerate() {
                        if in_flight.len() >= WRITE_DEPTH
                            && let Some((res, _)) = in_flight.next().await
                        {
                            res?;
                        }
                        in_flight.push(file.write_all_at(chunk, (i * CHUNK) as u64));
                    }
                    while let Some((res, _)) = in_flight.next().await {
                        res?;
                    }
                    file.sync_all().await
                })?;
                Ok((ops, bytes))
            })?
        }
        Writer::TokioFs => {
            let mut f = rt.block_on(tokio::fs::File::create_new(&path))?;
            let sample = measure(|| {
                rt.block_on(async {
                    for chunk in data.chunks(CHUNK) {
                        f.write_all(chunk).await?;
                    }
                    f.sync_all().await
                })?;
                Ok((ops, bytes))
            })?;
            drop(f);
            sample
        }
    };
    let back = fs::read(&path)?;
    if back.len() != data.len() {
        return Err(format!(
            "{}: wrote {} bytes, file has {}",
            writer.name(),
            data.len(),
            back.len()
        )
        .into());
    }
    verify(&back, 0, writer.name())?;
    fs::remove_file(&path)?;
    Ok(sample)
}

// ---------------------------------------------------------------- output

/// aiofs ÷ `row` (throughput, CPU per op), against the aiofs row of the same
/// group (workload A: the same queue depth; workload B: the whole workload).
fn ratios(rows: &[Row], row: &Row) -> (Option<f64>, Option<f64>) {
    if row.is_aiofs {
        return (None, None);
    }
    let Some(a) = rows
        .iter()
        .find(|r| r.is_aiofs && r.workload == row.workload && r.group == row.group)
    else {
        return (None, None);
    };
    (
        ratio(a.ops_per_s(), row.ops_per_s()),
        ratio(a.cpu_us_per_op(), row.cpu_us_per_op()),
    )
}

fn print_json(rows: &[Row], p: &Params, notifier: &str) {
    for row in rows {
        let (r_ops, r_cpu) = ratios(rows, row);
        println!(
            "{{\"workload\":{},\"backend\":{},\"qd\":{},\"mode\":{},\"notifier\":{},\"runs\":{},\"ops\":{},\"ops_per_s\":{},\"mb_per_s\":{},\"cpu_us_per_op\":{},\"aiofs_over_this_ops_per_s\":{},\"aiofs_over_this_cpu_us_per_op\":{},\"samples_ops_per_s\":{},\"samples_cpu_us_per_op\":{}}}",
            json_str(row.workload),
            json_str(row.backend),
            row.qd,
            json_str(p.mode),
            json_str(notifier),
            row.samples.len(),
            row.ops(),
            json_num(Some(row.ops_per_s())),
            json_num(Some(row.mb_per_s())),
            json_num(Some(row.cpu_us_per_op())),
            json_num(r_ops),
            json_num(r_cpu),
            json_list(row.samples.iter().map(Sample::ops_per_s)),
            json_list(row.samples.iter().map(Sample::cpu_us_per_op)),
        );
    }
}

fn print_table(rows: &[Row], p: &Params, notifier: &str) {
    println!(
        "aiofs positioned bench: {} mode, median of {} run(s) per cell, notifier {notifier}, {} CPUs",
        p.mode,
        p.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "CPU = getrusage(RUSAGE_SELF) user+sys of the whole process / ops; ratio columns = aiofs ÷ this row"
    );
    let header = |unit: &str| {
        println!(
            "{:>4}  {:<22} {:>10} {:>9} {:>10} | {:>11} {:>11} | runs ({unit}/s)",
            "QD",
            "backend",
            format!("{unit}/s"),
            "MB/s",
            format!("CPU µs/{unit}"),
            "aiofs÷ op/s",
            "aiofs÷ CPU",
        );
    };
    // (workload, group) of the previous row, to put a blank line between groups.
    let mut last: Option<(&str, usize)> = None;
    for row in rows {
        if last.is_none_or(|(w, _)| w != row.workload) {
            println!();
            if row.workload == "A" {
                println!(
                    "A: random {} KiB reads of a {} MiB page-cached file, {} reads per run; QD tasks, ratios vs aiofs at the same QD",
                    BLOCK / 1024,
                    p.read_file / MIB,
                    row.ops()
                );
                header("op");
            } else {
                println!(
                    "B: sequential write of {} MiB in {} MiB chunks + sync_all; op = one chunk; QD = chunks in flight",
                    p.write_size / MIB,
                    CHUNK / MIB
                );
                header("op");
            }
        } else if last.is_some_and(|(_, g)| g != row.group) {
            println!();
        }
        last = Some((row.workload, row.group));
        let (r_ops, r_cpu) = ratios(rows, row);
        let runs: Vec<String> = row
            .samples
            .iter()
            .map(|s| fmt_rate(s.ops_per_s()))
            .collect();
        println!(
            "{:>4}  {:<22} {:>10} {:>9.1} {:>10.1} | {:>11} {:>11} | {}",
            row.qd,
            row.backend,
            fmt_rate(row.ops_per_s()),
            row.mb_per_s(),
            row.cpu_us_per_op(),
            fmt_ratio(r_ops),
            fmt_ratio(r_cpu),
            runs.join(" "),
        );
    }
}

fn print_stats(json: bool, elapsed: f64) {
    let s = aiofs::stats();
    if json {
        println!(
            "{{\"stats\":{{\"submitted\":{},\"completed\":{},\"in_flight\":{},\"queued\":{},\"orphaned\":{},\"cancelled\":{},\"waited\":{},\"signals\":{},\"tokens\":{},\"stale_tokens\":{},\"scans\":{},\"eagain_retries\":{},\"pipe_overflows\":{},\"listeners\":{}}},\"elapsed_s\":{elapsed:.1}}}",
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
        );
    } else {
        println!();
        println!("aiofs::stats(): {s:?}");
        println!("bench took {elapsed:.1} s");
    }
}

// ---------------------------------------------------------------- main

fn main() -> Result<()> {
    let mut p = FULL;
    let mut json = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => p = QUICK,
            "--json" => json = true,
            "--bench" => {}
            "-h" | "--help" => {
                println!("usage: cargo bench --bench positioned [-- [--quick] [--json]]");
                return Ok(());
            }
            other => eprintln!("positioned: ignoring argument {other:?}"),
        }
    }
    let notifier = std::env::var("AIOFS_NOTIFIER").unwrap_or_else(|_| "pipe (default)".into());
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let dir = tempfile::tempdir()?;
    let read_path: PathBuf = dir.path().join("cached.dat");
    eprintln!(
        "positioned: {} mode; writing {} MiB to {}",
        p.mode,
        p.read_file / MIB,
        read_path.display()
    );
    make_read_file(&read_path, p.read_file)?;

    // Workload A. The runs of a queue depth are interleaved across backends, so
    // that drift on a noisy machine spreads over all of them.
    let mut rows = Vec::new();
    for qd in QUEUE_DEPTHS {
        let readers: &[Reader] = if qd == 1 {
            &[
                Reader::Aiofs,
                Reader::SpawnBlocking,
                Reader::TokioFs,
                Reader::StdPread,
            ]
        } else {
            &[Reader::Aiofs, Reader::SpawnBlocking, Reader::TokioFs]
        };
        let first = rows.len();
        for &reader in readers {
            rows.push(Row {
                workload: "A",
                backend: reader.name(),
                is_aiofs: reader == Reader::Aiofs,
                qd,
                group: qd,
                samples: Vec::new(),
            });
        }
        for rep in 0..p.runs {
            eprintln!("positioned: A qd {qd} run {}/{}", rep + 1, p.runs);
            for (i, &reader) in readers.iter().enumerate() {
                let s = read_sample(&rt, reader, &read_path, &p, qd, rep)?;
                rows[first + i].samples.push(s);
            }
        }
    }

    // Workload B.
    let mut data = vec![0u8; p.write_size].into_boxed_slice();
    fill_pattern(&mut data, 0);
    let data: &'static [u8] = Box::leak(data);
    let writers = [Writer::Aiofs, Writer::Std, Writer::TokioFs];
    let first = rows.len();
    for &writer in &writers {
        rows.push(Row {
            workload: "B",
            backend: writer.name(),
            is_aiofs: writer == Writer::Aiofs,
            qd: if writer == Writer::Aiofs {
                WRITE_DEPTH
            } else {
                1
            },
            group: 0,
            samples: Vec::new(),
        });
    }
    for rep in 0..p.runs {
        eprintln!("positioned: B run {}/{}", rep + 1, p.runs);
        for (i, &writer) in writers.iter().enumerate() {
            let s = write_sample(&rt, writer, dir.path(), data, rep)?;
            rows[first + i].samples.push(s);
        }
    }

    if json {
        print_json(&rows, &p, &notifier);
    } else {
        print_table(&rows, &p, &notifier);
    }
    drop(rt);
    print_stats(json, started.elapsed().as_secs_f64());
    Ok(())
}
