//! The report of `benches/compare`: the tables, the JSON lines, the targets.

use super::common::{fmt_pct, fmt_rate, fmt_ratio, json_list, json_num, json_str, ratio};
use super::{Backend, MIB, NOISY, Row, SEQ_DEPTH, Sample, WORKERS, Workload};

/// The aiofs row the ratio columns of `row`'s cell divide: `aiofs (pipe)`, or
/// the first aiofs row when there is none (an in-process run).
fn reference<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    let cell = || {
        rows.iter()
            .filter(|r| r.same_cell(row) && r.backend.is_aiofs())
    };
    cell()
        .find(|r| r.backend == Backend::AiofsPipe)
        .or_else(|| cell().next())
}

/// The ratio columns of a row: the reference aiofs row ÷ this one, for the
/// rate (ops/s or MB/s), CPU per op, and p50 latency. `None` for the
/// reference row itself.
fn ratios(rows: &[Row], row: &Row) -> (Option<f64>, Option<f64>, Option<f64>) {
    let Some(a) = reference(rows, row).filter(|a| a.backend != row.backend) else {
        return (None, None, None);
    };
    (
        ratio(a.ops_per_s(), row.ops_per_s()),
        ratio(a.cpu_us_per_op(), row.cpu_us_per_op()),
        a.p50_us().zip(row.p50_us()).and_then(|(x, y)| ratio(x, y)),
    )
}

fn fmt_opt(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{x:.decimals$}"))
}

/// The tables, one per cell, then the noise warning and the targets.
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
        "CPU = getrusage(RUSAGE_SELF) user+sys of the sample's process per op; aio, sig = aiofs requests submitted, completion signals per op; aiofs÷ = aiofs (pipe) ÷ this row (rate > 1: aiofs faster; CPU, p50 < 1: aiofs spends / waits less); other% = CPU busy outside the process (other programs, kernel threads, steal)"
    );
    let mut cell: Option<(Workload, usize)> = None;
    for row in rows {
        let w = row.workload;
        if cell != Some((w, row.qd)) {
            cell = Some((w, row.qd));
            println!();
            println!("{}", w.title(row.qd, row.size));
            if w == Workload::Latency {
                println!(
                    "  {:<26} {:>8} {:>8} {:>8} {:>9} | {:>10} {:>10} | {:>6} | runs p50 µs",
                    "backend",
                    "p50 µs",
                    "p99 µs",
                    "ops/s",
                    "CPU µs/op",
                    "aiofs÷ p50",
                    "aiofs÷ CPU",
                    "other%",
                );
            } else {
                let (rate, cpu) = if w.timed() {
                    ("ops/s", "CPU µs/op")
                } else {
                    ("MB/s", "CPU µs/MiB")
                };
                println!(
                    "  {:<26} {:>8} {:>8} {:>10} {:>5} {:>5} | {:>11} {:>10} | {:>6} | runs {rate}",
                    "backend",
                    rate,
                    if w.timed() { "MB/s" } else { "secs" },
                    cpu,
                    "aio",
                    "sig",
                    format!("aiofs÷ {rate}"),
                    "aiofs÷ CPU",
                    "other%",
                );
            }
        }
        let (r_rate, r_cpu, r_p50) = ratios(rows, row);
        if w == Workload::Latency {
            let runs: Vec<String> = row.samples.iter().map(|s| fmt_opt(s.p50_us, 1)).collect();
            println!(
                "  {:<26} {:>8} {:>8} {:>8} {:>9.2} | {:>10} {:>10} | {:>6} | {}",
                row.name(),
                fmt_opt(row.p50_us(), 1),
                fmt_opt(row.p99_us(), 1),
                fmt_rate(row.ops_per_s()),
                row.cpu_us_per_op(),
                fmt_ratio(r_p50),
                fmt_ratio(r_cpu),
                fmt_pct(row.other()),
                runs.join(" "),
            );
        } else {
            let (rate, second, runs): (String, String, Vec<String>) = if w.timed() {
                (
                    fmt_rate(row.ops_per_s()),
                    format!("{:.1}", row.mb_per_s()),
                    row.samples
                        .iter()
                        .map(|s| fmt_rate(s.ops_per_s()))
                        .collect(),
                )
            } else {
                (
                    format!("{:.0}", row.mb_per_s()),
                    format!("{:.3}", row.secs()),
                    row.samples
                        .iter()
                        .map(|s| format!("{:.0}", s.mb_per_s()))
                        .collect(),
                )
            };
            println!(
                "  {:<26} {:>8} {:>8} {:>10.2} {:>5} {:>5} | {:>11} {:>10} | {:>6} | {}",
                row.name(),
                rate,
                second,
                row.cpu_us_per_op(),
                fmt_opt(row.aio_per_op(), 2),
                fmt_opt(row.signals_per_op(), 2),
                fmt_ratio(r_rate),
                fmt_ratio(r_cpu),
                fmt_pct(row.other()),
                runs.join(" "),
            );
        }
    }
    if rows.iter().any(|r| r.backend == Backend::AiofsNowaitOff) {
        println!();
        println!(
            "aiofs (pipe, nowait off) runs with AIOFS_NOWAIT=0: the preadv2(RWF_NOWAIT) fast path for cached reads switched off; aiofs (pipe, sig blocked): every thread blocks the completion signal (aiofs::block_completion_signal), completions are read from a signalfd"
        );
    }
    let worst = rows.iter().filter_map(Row::worst_other).fold(0.0, f64::max);
    if worst > NOISY {
        println!();
        println!(
            "WARNING: up to {:.0}% of the CPUs were busy outside the bench during a timed run: the figures are disturbed",
            worst * 100.0
        );
    }
    print_targets(rows);
}

/// One row per line (`"kind":"row"`), then one line per target
/// (`"kind":"target"`).
pub fn print_json(rows: &[Row]) {
    for row in rows {
        let (r_rate, r_cpu, r_p50) = ratios(rows, row);
        println!(
            "{{\"bench\":\"compare\",\"kind\":\"row\",\"workload\":{},\"qd\":{},\"backend\":{},\"name\":{},\"mode\":{},\"runs\":{},\"size_mib\":{},\"unit\":{},\"ops_per_s\":{},\"mb_per_s\":{},\"cpu_us_per_op\":{},\"csw_per_op\":{},\"p50_us\":{},\"p99_us\":{},\"aio_per_op\":{},\"signals_per_op\":{},\"scans_per_op\":{},\"aiofs_over_this\":{},\"aiofs_over_this_cpu\":{},\"aiofs_over_this_p50\":{},\"other_cpu_share\":{},\"samples_ops_per_s\":{},\"samples_cpu_us_per_op\":{},\"samples_p50_us\":{},\"samples_other_cpu_share\":{}}}",
            json_str(row.workload.key()),
            row.qd,
            json_str(row.backend.key()),
            json_str(row.name()),
            json_str(row.mode),
            row.samples.len(),
            row.size / MIB,
            json_str(row.workload.unit()),
            json_num(Some(row.ops_per_s())),
            json_num(Some(row.mb_per_s())),
            json_num(Some(row.cpu_us_per_op())),
            json_num(Some(row.csw_per_op())),
            json_num(row.p50_us()),
            json_num(row.p99_us()),
            json_num(row.aio_per_op()),
            json_num(row.signals_per_op()),
            json_num(row.scans_per_op()),
            json_num(r_rate),
            json_num(r_cpu),
            json_num(r_p50),
            json_num(row.other()),
            json_list(row.samples.iter().map(Sample::ops_per_s)),
            json_list(row.samples.iter().map(Sample::cpu_us_per_op)),
            json_list(row.samples.iter().map(|s| s.p50_us.unwrap_or(f64::NAN))),
            json_list(row.samples.iter().map(|s| s.other.unwrap_or(f64::NAN))),
        );
    }
    for t in targets(rows) {
        println!(
            "{{\"bench\":\"compare\",\"kind\":\"target\",\"target\":{},\"workload\":{},\"qd\":{},\"aiofs\":{},\"baseline\":{},\"metric\":{},\"ratio\":{},\"bar\":{},\"at_least\":{},\"met\":{}}}",
            json_str(t.label),
            json_str(t.workload.key()),
            t.qd,
            t.aiofs.map_or_else(|| "null".to_string(), json_str),
            json_str(t.baseline.name(t.workload)),
            json_str(t.metric.key()),
            json_num(t.ratio),
            json_num(Some(t.bar)),
            t.at_least,
            t.met()
                .map_or_else(|| "null".to_string(), |m| m.to_string()),
        );
    }
}

/// The figure a target compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// ops/s (or MB/s): more is better.
    Rate,
    /// p50 latency: less is better.
    P50,
}

impl Metric {
    fn key(self) -> &'static str {
        match self {
            Metric::Rate => "ops_per_s",
            Metric::P50 => "p50_us",
        }
    }
}

/// One of the project's targets, computed from the rows: the best aiofs row
/// of the cell (the fastest, or the lowest p50) ÷ the baseline row.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: &'static str,
    pub workload: Workload,
    pub qd: usize,
    pub metric: Metric,
    pub baseline: Backend,
    pub bar: f64,
    /// The ratio must be ≥ `bar` (else ≤).
    pub at_least: bool,
    /// The best aiofs row's name, and its ratio; `None` if a row is missing.
    pub aiofs: Option<&'static str>,
    pub ratio: Option<f64>,
}

impl Target {
    pub fn met(&self) -> Option<bool> {
        self.ratio.map(|r| {
            if self.at_least {
                r >= self.bar
            } else {
                r <= self.bar
            }
        })
    }
}

/// (label, workload, qd, metric, baseline, bar, at least)
type TargetSpec = (&'static str, Workload, usize, Metric, Backend, f64, bool);

#[rustfmt::skip]
const TARGETS: [TargetSpec; 12] = [
    ("cached 4 KiB QD16", Workload::Cached, 16, Metric::Rate, Backend::TokioFs, 5.0, true),
    ("cached 4 KiB QD16", Workload::Cached, 16, Metric::Rate, Backend::SpawnBlocking, 2.0, true),
    ("cached 4 KiB QD128", Workload::Cached, 128, Metric::Rate, Backend::TokioFs, 5.0, true),
    ("cached 4 KiB QD128", Workload::Cached, 128, Metric::Rate, Backend::SpawnBlocking, 2.0, true),
    ("cached 4 KiB QD1", Workload::Cached, 1, Metric::Rate, Backend::TokioFs, 5.0, true),
    ("cached 4 KiB QD1 latency", Workload::Latency, 1, Metric::P50, Backend::TokioFs, 0.2, false),
    ("O_DIRECT 4 KiB QD32", Workload::Direct, 32, Metric::Rate, Backend::TokioUring, 0.9, true),
    ("O_DIRECT 4 KiB QD32", Workload::Direct, 32, Metric::Rate, Backend::SpawnBlocking, 1.0, true),
    ("seq tokio::io::copy", Workload::SeqCopy, 1, Metric::Rate, Backend::TokioFs, 20.0, true),
    ("seq tokio::io::copy", Workload::SeqCopy, 1, Metric::Rate, Backend::Std, 0.5, true),
    ("write + sync_all, AsyncWrite", Workload::WriteStream, 1, Metric::Rate, Backend::Std, 0.9, true),
    ("write + sync_all, write_all_at", Workload::WriteAt, SEQ_DEPTH, Metric::Rate, Backend::Std, 0.9, true),
];

/// The targets whose cells were measured, computed from the rows.
pub fn targets(rows: &[Row]) -> Vec<Target> {
    TARGETS
        .iter()
        .filter(|t| rows.iter().any(|r| r.workload == t.1 && r.qd == t.2))
        .map(|&(label, workload, qd, metric, baseline, bar, at_least)| {
            let in_cell = |b: Backend| {
                rows.iter()
                    .find(|r| r.workload == workload && r.qd == qd && r.backend == b)
            };
            let aiofs_rows = rows
                .iter()
                .filter(|r| r.workload == workload && r.qd == qd && r.backend.is_aiofs());
            let best = match metric {
                Metric::Rate => aiofs_rows.max_by(|a, b| a.ops_per_s().total_cmp(&b.ops_per_s())),
                Metric::P50 => aiofs_rows.filter(|r| r.p50_us().is_some()).min_by(|a, b| {
                    a.p50_us()
                        .unwrap_or(f64::INFINITY)
                        .total_cmp(&b.p50_us().unwrap_or(f64::INFINITY))
                }),
            };
            let ratio = best.zip(in_cell(baseline)).and_then(|(a, b)| match metric {
                Metric::Rate => ratio(a.ops_per_s(), b.ops_per_s()),
                Metric::P50 => a.p50_us().zip(b.p50_us()).and_then(|(x, y)| ratio(x, y)),
            });
            Target {
                label,
                workload,
                qd,
                metric,
                baseline,
                bar,
                at_least,
                aiofs: best.map(Row::name),
                ratio,
            }
        })
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
        "targets (this run; the best aiofs row of the cell ÷ the baseline; printed, not enforced):"
    );
    for t in &targets {
        let what = match t.metric {
            Metric::Rate if t.workload.timed() => "ops/s",
            Metric::Rate => "MB/s",
            Metric::P50 => "p50",
        };
        let bar = format!("{} {}x", if t.at_least { "≥" } else { "≤" }, t.bar);
        let verdict = match t.met() {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "n/a (a row is missing)",
        };
        println!(
            "  {:<31} {:<26} ÷ {:<22} {:<5} {:>8}  {:<7} {verdict}",
            t.label,
            t.aiofs.unwrap_or("-"),
            t.baseline.name(t.workload),
            what,
            fmt_ratio(t.ratio),
            bar,
        );
    }
}
