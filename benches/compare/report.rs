//! The report: one table per cell, the JSON lines, the targets.

use super::util::{fmt_opt, fmt_pct, fmt_rate, fmt_ratio, json_list, json_num, json_str, ratio};
use super::{AIOFS_ROWS, Backend, Case, NOISY, NOISY_IO, Row, Sample, WORKERS, Workload};

/// The aiofs row the ratio columns of `row`'s cell divide: aiofs as a user
/// gets it, or the first aiofs row when it was not run.
fn reference<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    let cell = || {
        rows.iter()
            .filter(|r| r.cell == row.cell && r.backend.is_aiofs() && r.na.is_none())
    };
    cell()
        .find(|r| r.backend == Backend::DEFAULT_AIOFS)
        .or_else(|| cell().next())
}

/// The ratio columns of a row: the reference aiofs row ÷ this one, for the
/// rate and CPU per op. `None` for the reference row itself.
fn ratios(rows: &[Row], row: &Row) -> (Option<f64>, Option<f64>) {
    let Some(a) = reference(rows, row).filter(|a| a.backend != row.backend) else {
        return (None, None);
    };
    (
        ratio(rate(a), rate(row)),
        ratio(a.cpu_us_per_op(), row.cpu_us_per_op()),
    )
}

/// The rate a row's table shows: ops/s, or MB/s when an op is a MiB.
fn rate(row: &Row) -> f64 {
    if row.cell.workload.rate_name(row.cell.case) == "MB/s" {
        row.mb_per_s()
    } else {
        row.ops_per_s()
    }
}

fn fmt_sample_rate(row: &Row, s: &Sample) -> String {
    if row.cell.workload.rate_name(row.cell.case) == "MB/s" {
        format!("{:.0}", s.mb_per_s())
    } else {
        fmt_rate(s.ops_per_s())
    }
}

/// The tables, one per cell, then the notes, the noise warning and the targets.
pub fn print_table(rows: &[Row]) {
    let Some(first) = rows.first() else {
        println!("aiofs compare bench: no rows");
        return;
    };
    let runs = rows.iter().map(|r| r.samples.len()).max().unwrap_or(0);
    println!(
        "aiofs compare bench: {} mode, median of {runs} run(s) per cell, {} CPUs, Tokio multi_thread runtime with {WORKERS} workers (tokio-uring: its own runtime; std: one thread)",
        first.mode,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "CPU, csw = getrusage(RUSAGE_SELF) user+sys time, context switches of the sample's process per op; p50, p99 = latency of one op; aio, sig = aiofs requests submitted, completion signals per op; aiofs÷ = {} ÷ this row (rate > 1: aiofs faster; CPU < 1: aiofs spends less); other% = CPU busy outside the process (other programs, kernel threads, steal); o.MB/s = disk I/O on the data's device not counted to the process (other programs; also the journal writes of its own syncs)",
        AIOFS_ROWS[0].name
    );
    let mut cell = None;
    for row in rows {
        let (w, case) = (row.cell.workload, row.cell.case);
        if cell != Some(row.cell) {
            cell = Some(row.cell);
            let per = if w.rate_name(case) == "MB/s" {
                "MiB"
            } else {
                "op"
            };
            println!();
            println!("{}", w.title(case, row.cell.qd, row.size));
            println!(
                "  {:<32} {:>9} {:>9} {:>7} {:>8} {:>8} {:>5} {:>5} | {:>7} {:>7} | {:>6} {:>6} | runs",
                "row",
                w.rate_name(case),
                format!("CPU µs/{per}"),
                format!("csw/{per}"),
                "p50 µs",
                "p99 µs",
                "aio",
                "sig",
                "aiofs÷",
                "÷ CPU",
                "other%",
                "o.MB/s",
            );
        }
        if let Some(why) = &row.na {
            println!("  {:<32} n/a: {why}", row.name());
            continue;
        }
        let (r_rate, r_cpu) = ratios(rows, row);
        let runs: Vec<String> = row
            .samples
            .iter()
            .map(|s| fmt_sample_rate(row, s))
            .collect();
        let (p50, p99) = (row.p50_us(), row.p99_us());
        let decimals = |x: Option<f64>| if x.is_some_and(|x| x >= 100.0) { 0 } else { 1 };
        println!(
            "  {:<32} {:>9} {:>9.2} {:>7.2} {:>8} {:>8} {:>5} {:>5} | {:>7} {:>7} | {:>6} {:>6} | {}",
            row.name(),
            if w.rate_name(case) == "MB/s" {
                format!("{:.0}", row.mb_per_s())
            } else {
                fmt_rate(row.ops_per_s())
            },
            row.cpu_us_per_op(),
            row.csw_per_op(),
            fmt_opt(p50, decimals(p50)),
            fmt_opt(p99, decimals(p99)),
            fmt_opt(row.aio_per_op("submitted"), 2),
            fmt_opt(row.aio_per_op("signals"), 2),
            fmt_ratio(r_rate),
            fmt_ratio(r_cpu),
            fmt_pct(row.other()),
            fmt_opt(row.other_io(), 0),
            runs.join(" "),
        );
    }
    print_notes(rows);
    print_targets(rows);
}

/// What the rows are, below the tables.
fn print_notes(rows: &[Row]) {
    println!();
    let present = |key: &str| {
        rows.iter()
            .any(|row| row.backend.aiofs_row().is_some_and(|r| r.key == key))
    };
    for r in AIOFS_ROWS.iter().filter(|r| present(r.key)) {
        let config = format!("{:?}", (r.config)(aiofs::Config::new()));
        let set: Vec<&str> = config
            .trim_start_matches("Config {")
            .trim_end_matches('}')
            .split(", ")
            .map(str::trim)
            .filter(|f| !f.is_empty() && !f.ends_with("None"))
            .collect();
        println!(
            "{}: Config::new(){} installed in the sample process{}",
            r.name,
            set.iter()
                .map(|f| format!(".{}", f.replace(": Some", "")))
                .collect::<String>(),
            if r.block_signal {
                "; every thread blocks the completion signal (aiofs::block_completion_signal in main and on_thread_start)"
            } else {
                ""
            },
        );
    }
    if rows.iter().any(|r| r.backend == Backend::TokioFsUring) {
        println!(
            "tokio::fs io_uring: tokio 1.54 built with its io-uring feature and --cfg tokio_unstable, runtime with enable_io_uring; through io_uring go File::open / OpenOptions::open, fs::read, fs::write, rename, try_exists and File's AsyncRead reads; seek, AsyncWrite, sync_all / sync_data, metadata, copy stay on the blocking pool (the row's label says what of the timed work goes through io_uring)"
        );
    }
    let (cpu, io) = rows
        .iter()
        .map(Row::worst_other)
        .fold((0.0, 0.0), |(c, i), (c1, i1)| {
            (f64::max(c, c1), f64::max(i, i1))
        });
    if cpu > NOISY || io > NOISY_IO {
        println!();
        println!(
            "WARNING: during a timed run, up to {:.0}% of the CPUs were busy outside the bench, and up to {io:.0} MB/s of disk I/O on the data's device was not the bench's: the figures are disturbed",
            cpu * 100.0
        );
    }
}

/// One row per line (`"kind":"row"`), then one line per target
/// (`"kind":"target"`).
pub fn print_json(rows: &[Row]) {
    for row in rows {
        let (r_rate, r_cpu) = ratios(rows, row);
        let aio: Vec<String> = super::sample::AIO_FIELDS
            .iter()
            .map(|f| format!("\"aio_{f}_per_op\":{}", json_num(row.aio_per_op(f))))
            .collect();
        println!(
            "{{\"bench\":\"compare\",\"kind\":\"row\",\"workload\":{},\"case\":{},\"qd\":{},\"row\":{},\"name\":{},\"na\":{},\"mode\":{},\"runs\":{},\"size\":{},\"unit\":{},\"ops_per_s\":{},\"mb_per_s\":{},\"cpu_us_per_op\":{},\"csw_per_op\":{},\"p50_us\":{},\"p99_us\":{},{},\"aiofs_over_this\":{},\"aiofs_over_this_cpu\":{},\"other_cpu_share\":{},\"other_disk_mb_per_s\":{},\"samples_ops_per_s\":{},\"samples_cpu_us_per_op\":{},\"samples_other_cpu_share\":{}}}",
            json_str(row.cell.workload.key()),
            json_str(row.cell.case.key()),
            row.cell.qd,
            json_str(&row.backend.key()),
            json_str(&row.name()),
            row.na
                .as_deref()
                .map_or_else(|| "null".to_string(), json_str),
            json_str(row.mode),
            row.samples.len(),
            row.size,
            json_str(row.cell.workload.unit(row.cell.case)),
            json_num(Some(row.ops_per_s())),
            json_num(Some(row.mb_per_s())),
            json_num(Some(row.cpu_us_per_op())),
            json_num(Some(row.csw_per_op())),
            json_num(row.p50_us()),
            json_num(row.p99_us()),
            aio.join(","),
            json_num(r_rate),
            json_num(r_cpu),
            json_num(row.other()),
            json_num(row.other_io()),
            json_list(row.samples.iter().map(Sample::ops_per_s)),
            json_list(row.samples.iter().map(Sample::cpu_us_per_op)),
            json_list(row.samples.iter().map(|s| s.other.unwrap_or(f64::NAN))),
        );
    }
    for t in targets(rows) {
        println!(
            "{{\"bench\":\"compare\",\"kind\":\"target\",\"target\":{},\"workload\":{},\"case\":{},\"qd\":{},\"aiofs\":{},\"baseline\":{},\"metric\":{},\"ratio\":{},\"bar\":{},\"at_least\":{},\"met\":{}}}",
            json_str(t.label),
            json_str(t.spec.workload.key()),
            json_str(t.spec.case.key()),
            t.spec.qd,
            t.aiofs
                .as_deref()
                .map_or_else(|| "null".to_string(), json_str),
            json_str(t.spec.baseline.1),
            json_str(t.spec.metric.key()),
            json_num(t.ratio),
            json_num(Some(t.spec.bar)),
            t.spec.at_least,
            t.met()
                .map_or_else(|| "null".to_string(), |m| m.to_string()),
        );
    }
}

// ---------------------------------------------------------------- targets

/// The figure a target compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// ops/s (or MB/s): more is better.
    Rate,
    /// CPU per op: less is better.
    Cpu,
    /// Latency percentiles: less is better.
    P50,
    P99,
}

impl Metric {
    fn key(self) -> &'static str {
        match self {
            Metric::Rate => "rate",
            Metric::Cpu => "cpu_us_per_op",
            Metric::P50 => "p50_us",
            Metric::P99 => "p99_us",
        }
    }

    fn of(self, row: &Row) -> Option<f64> {
        match self {
            Metric::Rate => Some(rate(row)),
            Metric::Cpu => Some(row.cpu_us_per_op()),
            Metric::P50 => row.p50_us(),
            Metric::P99 => row.p99_us(),
        }
        .filter(|x| x.is_finite())
    }
}

/// Which aiofs row a target takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The best aiofs row of the cell for the metric (named in the block).
    Best,
    /// The aiofs row of this key ([`super::AiofsRow::key`]).
    Row(&'static str),
}

/// A target: the aiofs row's figure ÷ the baseline's, against a bar.
#[derive(Debug, Clone, Copy)]
pub struct TargetSpec {
    pub workload: Workload,
    pub case: Case,
    pub qd: usize,
    pub metric: Metric,
    pub aiofs: Pick,
    /// The baseline row, and the case of its cell (the write-ahead log's
    /// `spawn_blocking` runs in the `write_all_at` case only).
    pub baseline: (Backend, &'static str, Case),
    pub bar: f64,
    /// The ratio must be ≥ `bar` (else ≤).
    pub at_least: bool,
}

/// A target computed from the rows.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: &'static str,
    pub spec: TargetSpec,
    /// The aiofs row's name, and the ratio; `None` if a row is missing.
    pub aiofs: Option<String>,
    pub ratio: Option<f64>,
}

impl Target {
    pub fn met(&self) -> Option<bool> {
        self.ratio.map(|r| {
            if self.spec.at_least {
                r >= self.spec.bar
            } else {
                r <= self.spec.bar
            }
        })
    }
}

const SB: (Backend, &str, Case) = (Backend::SpawnBlocking, "spawn_blocking", Case::Only);
const TFS: (Backend, &str, Case) = (Backend::TokioFs, "tokio::fs", Case::Only);
const URING: (Backend, &str, Case) = (Backend::TokioUring, "tokio-uring", Case::Only);
const STD: (Backend, &str, Case) = (Backend::Std, "std", Case::Only);
const SB_AT: (Backend, &str, Case) = (Backend::SpawnBlocking, "spawn_blocking", Case::At);

/// (label, workload, case, qd, metric, aiofs row, baseline, bar, at least).
type TargetRow = (
    &'static str,
    Workload,
    Case,
    usize,
    Metric,
    Pick,
    (Backend, &'static str, Case),
    f64,
    bool,
);

/// The project's targets: those of the README's table (the best aiofs row),
/// then issue 12's (aiofs as a user gets it unless named).
#[rustfmt::skip]
const TARGETS: &[TargetRow] = {
    use Case::*;
    use Metric::*;
    use Workload::*;
    const B: Pick = Pick::Best;
    const D: Pick = Pick::Row("aiofs");
    const K: Pick = Pick::Row("aiofs-blocked");
    &[
        ("cached 4 KiB QD16", Cached, Only, 16, Rate, B, TFS, 5.0, true),
        ("cached 4 KiB QD16", Cached, Only, 16, Rate, B, SB, 2.0, true),
        ("cached 4 KiB QD128", Cached, Only, 128, Rate, B, TFS, 5.0, true),
        ("cached 4 KiB QD128", Cached, Only, 128, Rate, B, SB, 2.0, true),
        ("cached 4 KiB QD1", Cached, Only, 1, Rate, B, TFS, 5.0, true),
        ("cached 4 KiB QD1 latency", Latency, Only, 1, P50, B, TFS, 0.2, false),
        ("O_DIRECT 4 KiB QD32", Direct, Only, 32, Rate, B, URING, 0.9, true),
        ("O_DIRECT 4 KiB QD32", Direct, Only, 32, Rate, B, SB, 1.0, true),
        ("seq tokio::io::copy", SeqCopy, Only, 1, Rate, B, TFS, 20.0, true),
        ("seq tokio::io::copy", SeqCopy, Only, 1, Rate, B, STD, 0.5, true),
        ("write + sync_all, AsyncWrite", WriteStream, Only, 1, Rate, B, STD, 0.9, true),
        ("write + sync_all, write_all_at", WriteAt, Only, 4, Rate, B, STD, 0.9, true),
        ("cold 4 KiB QD1", Cold, Only, 1, Rate, D, SB, 1.0, true),
        ("cold 4 KiB QD1", Cold, Only, 1, Rate, D, TFS, 1.2, true),
        ("cold 4 KiB QD1", Cold, Only, 1, Cpu, D, SB, 1.0, false),
        ("cold 4 KiB QD1, signal blocked", Cold, Only, 1, Rate, K, SB, 1.2, true),
        ("cold 4 KiB QD16", Cold, Only, 16, Rate, D, SB, 1.0, true),
        ("cold 4 KiB QD16", Cold, Only, 16, Rate, D, TFS, 1.2, true),
        ("cold 4 KiB QD16", Cold, Only, 16, Cpu, D, SB, 1.0, false),
        ("cold 4 KiB QD16", Cold, Only, 16, P99, D, SB, 1.0, false),
        ("cold 4 KiB QD16, signal blocked", Cold, Only, 16, Rate, K, SB, 1.2, true),
        ("cold 4 KiB QD64", Cold, Only, 64, Rate, D, SB, 1.0, true),
        ("cold 4 KiB QD64", Cold, Only, 64, Rate, D, TFS, 1.2, true),
        ("cold 4 KiB QD64", Cold, Only, 64, Cpu, D, SB, 1.0, false),
        ("cold 4 KiB QD64, signal blocked", Cold, Only, 64, Rate, K, SB, 1.2, true),
        ("wal QD1 write_all_at", Wal, At, 1, Rate, D, SB_AT, 1.0, true),
        ("wal QD1 write_all_at", Wal, At, 1, P99, D, SB_AT, 1.0, false),
        ("wal QD1 AsyncWrite", Wal, Stream, 1, Rate, D, SB_AT, 1.0, true),
        ("wal QD1 AsyncWrite", Wal, Stream, 1, P99, D, SB_AT, 1.0, false),
        ("wal group commit, 16", Wal, Group, 16, Rate, D, SB, 2.0, true),
        ("O_DIRECT 4 KiB QD1", Direct, Only, 1, Rate, D, SB, 1.0, true),
        ("O_DIRECT 4 KiB QD32", Direct, Only, 32, Rate, D, SB, 1.0, true),
        ("O_DIRECT 4 KiB QD32, signal blocked", Direct, Only, 32, Rate, K, URING, 0.8, true),
        ("small cold read QD1", Small, ReadCold, 1, Rate, D, TFS, 1.0, true),
        ("small cold read QD16", Small, ReadCold, 16, Rate, D, TFS, 1.0, true),
        ("small cold open+read QD1", Small, OpenCold, 1, Rate, D, TFS, 1.0, true),
        ("small cold open+read QD16", Small, OpenCold, 16, Rate, D, TFS, 1.0, true),
        ("small cached read QD1", Small, ReadCached, 1, Rate, D, TFS, 3.0, true),
        ("small cached read QD16", Small, ReadCached, 16, Rate, D, TFS, 3.0, true),
        ("small cached open+read QD1", Small, OpenCached, 1, Rate, D, TFS, 3.0, true),
        ("small cached open+read QD16", Small, OpenCached, 16, Rate, D, TFS, 3.0, true),
    ]
};

/// The targets whose cells were measured, computed from the rows.
pub fn targets(rows: &[Row]) -> Vec<Target> {
    TARGETS
        .iter()
        .filter(|t| {
            rows.iter()
                .any(|r| r.cell.workload == t.1 && r.cell.case == t.2 && r.cell.qd == t.3)
        })
        .map(
            |&(label, workload, case, qd, metric, aiofs, baseline, bar, at_least)| {
                let spec = TargetSpec {
                    workload,
                    case,
                    qd,
                    metric,
                    aiofs,
                    baseline,
                    bar,
                    at_least,
                };
                let figure = |case: Case, b: Backend| {
                    let row = rows.iter().find(|r| {
                        r.cell.workload == workload
                            && r.cell.case == case
                            && r.cell.qd == qd
                            && r.backend == b
                    })?;
                    Some((row, metric.of(row)?))
                };
                let candidates = AIOFS_ROWS.iter().enumerate().filter(|(_, r)| match aiofs {
                    Pick::Best => true,
                    Pick::Row(key) => r.key == key,
                });
                let mut found: Vec<(&Row, f64)> = candidates
                    .filter_map(|(row, _)| figure(spec.case, Backend::Aiofs { row, pool: None }))
                    .collect();
                found.sort_by(|a, b| a.1.total_cmp(&b.1));
                let best = if metric == Metric::Rate {
                    found.last()
                } else {
                    found.first()
                };
                let base_case = if baseline.2 == Case::Only {
                    spec.case
                } else {
                    baseline.2
                };
                let ratio = best
                    .zip(figure(base_case, baseline.0))
                    .and_then(|((_, a), (_, b))| ratio(*a, b));
                Target {
                    label,
                    spec,
                    aiofs: best.map(|(r, _)| r.name()),
                    ratio,
                }
            },
        )
        .collect()
}

/// The targets block: each ratio, its bar, met or not (printed, not enforced).
pub fn print_targets(rows: &[Row]) {
    let targets = targets(rows);
    if targets.is_empty() {
        return;
    }
    println!();
    println!(
        "targets (this run; the named aiofs row ÷ the baseline; rate: more is better, CPU and latency: less; printed, not enforced):"
    );
    for t in &targets {
        let s = &t.spec;
        let bar = format!("{} {}x", if s.at_least { "≥" } else { "≤" }, s.bar);
        let verdict = match t.met() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a (a row is missing)",
        };
        println!(
            "  {:<36} {:<24} ÷ {:<15} {:<13} {:>7}  {:<7} {verdict}",
            t.label,
            t.aiofs.as_deref().unwrap_or("-"),
            s.baseline.1,
            match s.metric {
                Metric::Rate => s.workload.rate_name(s.case),
                m => m.key(),
            },
            fmt_ratio(t.ratio),
            bar,
        );
    }
}
