//! aiofs side by side with every way of doing file I/O from Tokio, in one run,
//! as ratios: the figures of the project's targets.
//!
//! ```text
//! cargo bench --bench compare                       # full run: 5 runs per cell, medians (~7 min)
//! cargo bench --bench compare -- --quick            # smoke run: small files, 1 run per cell (< 60 s)
//! cargo bench --bench compare -- --json             # one JSON object per row (and per target) on stdout
//! cargo bench --bench compare -- --secs 2           # seconds per timed run of the random reads
//! cargo bench --bench compare -- --runs 3           # runs per cell
//! cargo bench --bench compare -- --only cached,latency   # cached, latency, direct, seq, write (or
//!                                                   # seq-copy, seq-read-at, write-stream, write-at)
//! cargo bench --bench compare -- --in-process       # every sample in this process (one aiofs row)
//! AIOFS_BENCH_DIR=/mnt/disk cargo bench --bench compare   # where the files go
//! ```
//!
//! Workloads (sizes full / quick):
//!
//! - **cached**: random 4 KiB reads (4 KiB-aligned) of a page-cached file
//!   (1 GiB / 64 MiB) at queue depth 1, 16 and 128: QD tasks sharing one file,
//!   each reading until the run's time is up (1 s / 0.2 s, after an untimed
//!   warm-up pass at the same depth).
//! - **latency**: the same at QD1, every read timed: p50 and p99 of the run.
//! - **direct**: random 4 KiB reads of a file opened `O_DIRECT` and not in the
//!   cache (1 GiB / 64 MiB, written with `O_DIRECT`, synced, `POSIX_FADV_DONTNEED`)
//!   at QD 1 and 32, into 4096-aligned buffers; aiofs with the descriptor pool an
//!   `O_DIRECT` file gets by default.
//! - **seq-copy**: the whole cached file through `AsyncRead`:
//!   `tokio::io::copy(&mut file, &mut sink)`, the sink being `tokio::io::sink()`
//!   that also checks the bytes at 17 offsets.
//! - **seq-read-at**: the whole cached file with positioned 1 MiB reads, 4 in
//!   flight (a window: each completion starts the next read).
//! - **write-stream**: 256 MiB / 32 MiB to a new file, `write_all` of 1 MiB
//!   chunks through `AsyncWrite`, `flush`, `sync_all`.
//! - **write-at**: the same with `write_all_at` of 1 MiB chunks, 4 in flight,
//!   then `sync_all`.
//!
//! Backends (rows):
//!
//! - `aiofs (pipe)`, `aiofs (signal)`: `aiofs::File` (`read_at` on one shared
//!   `Arc<File>`; `AsyncRead`/`AsyncWrite`; `write_all_at`) with each notifier,
//!   chosen with `AIOFS_NOTIFIER` in the sample's process (the notifier is
//!   process-wide). `aiofs (pipe)` is the reference of the ratio columns.
//! - `aiofs (pipe, nowait off)`: the same with `AIOFS_NOWAIT=0`, the driver's
//!   switch for its `preadv2(RWF_NOWAIT)` fast path for cached reads (on by
//!   default): the row shows what the path is worth. A driver without the
//!   switch ignores it.
//! - `tokio::fs`: random reads with one `tokio::fs::File` per task (it has one
//!   cursor), `seek` + `read_exact`; `tokio::io::copy` of a `File`; a `read` loop
//!   with a 1 MiB buffer for seq-read-at (there is no `read_at`); `write_all` +
//!   `flush` + `sync_all`. Not run with `O_DIRECT` (its buffer is not aligned).
//! - `spawn_blocking`: `tokio::task::spawn_blocking` + `FileExt::read_at` /
//!   `write_all_at` on an `Arc<std::fs::File>`, one blocking call per request.
//! - `tokio-uring` (Linux): `read_at` / `write_all_at` on its own
//!   current_thread runtime, tasks sharing an `Rc<File>`, the way that crate is
//!   used. Not in the streaming rows (it has no `AsyncRead`/`AsyncWrite`).
//! - `std`: the synchronous limit, on one thread whatever the queue depth: a
//!   `pread` loop, a `read` loop with a 1 MiB buffer, a `write_all` loop +
//!   `sync_all`.
//!
//! The Tokio backends run as tasks on a multi_thread runtime with 2 workers
//! (the existing benches' choice and these machines' CPU count; the random
//! reads need several workers to keep many requests in flight, and the
//! AsyncRead/AsyncWrite rows run as one task on a worker, as in an
//! application); `block_on` only waits for them.
//!
//! Every sample (a cell, a backend, one run) runs in a new process of this
//! bench (`AIOFS_COMPARE_SAMPLE` in its environment tells it what to run), as
//! an application that starts and does the work would: the aiofs notifier is
//! chosen per process, and fresh allocator state and threads make the runs
//! independent of what ran before (`--in-process` runs them all in this
//! process instead: then only the aiofs row of this process's environment
//! runs). In that process: the runtime starts, the aiofs driver / blocking pool
//! start with one small untimed request (the random reads: the untimed warm-up
//! pass), files are opened or created, then the timed part, then the checks.
//! Opening and creating files are not timed; `sync_all` is.
//!
//! The cached file is read through once right before each run that reads it
//! (these machines drop idle page cache after ~30 s). The runs of a cell are
//! interleaved across backends, the order rotating by one each run, so that
//! drift on a noisy machine spreads over all of them. Each figure is the median
//! of the runs (5 / 1), taken per column.
//!
//! Figures: ops/s (a 4 KiB read) or MB/s (MB = 10^6 bytes). CPU is
//! `getrusage(RUSAGE_SELF)` user + system of the sample's whole process (Tokio
//! workers, the blocking pool, glibc's AIO threads, the aiofs notifier,
//! io_uring's workers) over the timed part, per op (a 4 KiB read, or 1 MiB
//! moved); kernel threads (writeback, block completions) are not counted. `aio`
//! and `sig` are aiofs's requests submitted and completion signals per op
//! (`aiofs::stats()` over the timed part). `other%` is the CPU time the rest of
//! the machine used during the run (other programs, kernel threads, hypervisor
//! steal; from `/proc/stat`) over all CPUs; a warning is printed when a run saw
//! more than 10%. The ratio columns are `aiofs (pipe)` ÷ the row in the same
//! cell: throughput > 1 means aiofs is faster, CPU and p50 < 1 mean aiofs
//! spends or waits less.
//!
//! The last block gives the project's targets, each ratio computed from this
//! run with the best aiofs row of the cell (named), marked met or not: printed,
//! not enforced. The exit status is for errors and wrong data only.
//!
//! Data: the files hold a pattern that is a function of the offset. Every
//! random read must return a full block, and the first and the last read of
//! every task are checked against it (every backend, warm-up and timed passes);
//! a sequential read checks its length and the bytes at 17 offsets (both ends
//! included); a written file is checked after the run (its length, and 4 KiB at
//! 17 offsets).
//!
//! Files go in a new temporary directory in `AIOFS_BENCH_DIR`, else in Cargo's
//! target tmpdir, else in the system temp dir: the first that is not
//! memory-backed (tmpfs and ramfs accept `O_DIRECT` on recent kernels but have no
//! device behind them, and their `sync_all` is free) and accepts `O_DIRECT`.
//!
//! The workloads live in `workloads.rs` so that a demo can include them
//! (`#[path = "../benches/compare/workloads.rs"] mod workloads;`).

mod workloads;

use std::io;
use std::process::ExitCode;
use std::time::Instant;

use workloads::{Exec, Options, Workload};

const USAGE: &str = "usage: cargo bench --bench compare [-- [--quick] [--json] [--secs SECONDS] [--runs N] [--only cached,latency,direct,seq,write] [--in-process]]";

fn parse_args() -> io::Result<Option<(Options, bool)>> {
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    let mut quick = false;
    let mut json = false;
    let mut secs = None;
    let mut runs = None;
    let mut only = None;
    let mut in_process = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| bad(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--quick" => quick = true,
            "--json" => json = true,
            "--in-process" => in_process = true,
            "--secs" => {
                let v = value("--secs")?;
                let s: f64 = v.parse().map_err(|e| bad(format!("--secs {v}: {e}")))?;
                if !(s.is_finite() && s > 0.0) {
                    return Err(bad(format!("--secs {v}: a positive number of seconds")));
                }
                secs = Some(s);
            }
            "--runs" => {
                let v = value("--runs")?;
                let n: usize = v.parse().map_err(|e| bad(format!("--runs {v}: {e}")))?;
                runs = Some(n.max(1));
            }
            "--only" => only = Some(Workload::parse_list(&value("--only")?)?),
            "--bench" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => eprintln!("compare: ignoring argument {other:?}"),
        }
    }
    let mut opts = if quick {
        Options::quick()
    } else {
        Options::full()
    };
    if let Some(s) = secs {
        opts.secs = s;
        opts.warm_secs = opts.warm_secs.min(s / 4.0);
    }
    if let Some(n) = runs {
        opts.runs = n;
    }
    if let Some(list) = only {
        opts.workloads = list;
    }
    if in_process {
        opts.exec = Exec::InProcess;
    }
    Ok(Some((opts, json)))
}

fn main() -> ExitCode {
    if let Some(res) = workloads::sample_process_main() {
        return match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("compare sample: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let started = Instant::now();
    let res = parse_args().and_then(|parsed| {
        let Some((opts, json)) = parsed else {
            return Ok(());
        };
        eprintln!(
            "compare: {} mode, {} run(s) per cell, {} s per timed run",
            opts.mode, opts.runs, opts.secs
        );
        let rows = workloads::run(&opts, &mut |line| eprintln!("compare: {line}"))?;
        if json {
            workloads::print_json(&rows);
        } else {
            workloads::print_table(&rows);
            println!();
            println!("bench took {:.1} s", started.elapsed().as_secs_f64());
        }
        Ok(())
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}
