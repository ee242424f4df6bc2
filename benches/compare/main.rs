//! aiofs side by side with every way of doing file I/O from Tokio, in one run,
//! as ratios: the project's one bench harness.
//!
//! ```text
//! cargo bench --bench compare                        # full run: 3 runs per cell, medians (~20 min)
//! cargo bench --bench compare -- --quick             # smoke run: small files, 1 short run per cell (~30 s)
//! cargo bench --bench compare -- --only cold         # one workload (or a list: cold,small,wal)
//! cargo bench --bench compare -- --runs 5            # runs per cell
//! cargo bench --bench compare -- --secs 2            # seconds of every timed run
//! cargo bench --bench compare -- --json              # one JSON object per row and per target
//! cargo bench --bench compare -- --rows aiofs,aiofs-blocked,spawn-blocking   # some rows only
//! cargo bench --bench compare -- --only direct --pool 4,8,16                 # + aiofs rows with set_fd_pool(N)
//! AIOFS_BENCH_DIR=/mnt/disk cargo bench --bench compare                      # where the data files go
//! ```
//!
//! # Workloads (sizes full / quick)
//!
//! - **cached**: random 4 KiB reads (4 KiB-aligned) of a page-cached file
//!   (1 GiB / 64 MiB) at QD 1, 16 and 128: QD tasks sharing one file, each
//!   reading until the run's time is up (1 s / 0.15 s).
//! - **latency**: the same at QD1, every read timed.
//! - **direct**: random 4 KiB `O_DIRECT` reads (1 GiB / 64 MiB) at QD 1 and 32,
//!   into 4096-aligned buffers; `--pool` adds aiofs rows with
//!   `File::set_fd_pool(N)`.
//! - **cold**: random 4 KiB reads of a file (2 GiB / 256 MiB) whose pages are
//!   evicted (`fsync`, `POSIX_FADV_DONTNEED`) right before the timed run,
//!   each page read at most once, QD 1, 16, 64 (2 s / 0.15 s); `--pool` too.
//! - **seq-copy**: the whole cached file, `tokio::io::copy(&mut file, &mut sink)`
//!   (a sink that checks the bytes at 17 offsets).
//! - **seq-read-at**: the whole cached file with positioned 1 MiB reads, 4 in
//!   flight (each completion starts the next).
//! - **write-stream**, **write-at**: 256 MiB / 32 MiB to a new file in 1 MiB
//!   chunks, through `AsyncWrite` (`write_all`, `flush`) or `write_all_at` (4 in
//!   flight), then `sync_all`.
//! - **small**: 4,000 / 300 files of 1-64 KiB, each read whole once with
//!   `read` (`read-*` cases) or `File::open` + `AsyncReadExt::read_to_end`
//!   (`open-*`), cold (every file evicted right before the run) or cached (every
//!   file read right before), QD 1 and 16: files/s.
//! - **wal**: a write-ahead log, 4 KiB appends each followed by `sync_data`
//!   (3 s / 0.15 s): one at a time through `write_all_at` (`write_all_at`
//!   case) or `AsyncWrite` `write_all` + `flush` (`AsyncWrite` case); and
//!   `group` commit: 16 tasks append to one file, each reserving its offset
//!   with an `AtomicU64`, writing its record, then awaiting `sync_data` for its
//!   own durability. Appends/s (records/s).
//! - **whole**: the whole-file functions: `copy` of a 256 MiB / 32 MiB cached
//!   file, `read` of a 64 MiB / 32 MiB cached file, `write` of 64 MiB / 32 MiB
//!   (no sync).
//!
//! # Rows
//!
//! - The aiofs rows of [`workloads::AIOFS_ROWS`], first `aiofs (default)`:
//!   aiofs as a user gets it (the default `Config`, no signal blocking), the
//!   reference of the ratio columns; then the signal notifier, `nowait(false)`
//!   (the page-cache fast path off), and the completion signal blocked
//!   (`aiofs::block_completion_signal()` in main and in `on_thread_start`).
//!   Each row's `Config` is installed in its sample process (the `AIOFS_*`
//!   variables are removed from its environment). **Adding a row** (a new
//!   `Config` switch) is one line in that table; every workload then measures
//!   it.
//! - `tokio::fs`: random reads with one `tokio::fs::File` per task (it has one
//!   cursor), `seek` + `read_exact`; its `read`, `File::open` + `read_to_end`,
//!   `copy`, `write`; `AsyncRead`/`AsyncWrite`; `sync_data` (the write-ahead
//!   log's group commit: a `File` per task, `seek` + `write_all` + `flush` +
//!   `sync_data`). Not with `O_DIRECT` (its buffer is not aligned).
//! - `tokio::fs io_uring: ...`: the same code on tokio's io_uring driver (tokio
//!   1.54's `io-uring` feature with `--cfg tokio_unstable`,
//!   `Builder::enable_io_uring`). The harness builds this bench a second time
//!   for it (`cargo build --release --bench compare --features
//!   bench-tokio-io-uring` with `RUSTFLAGS="--cfg tokio_unstable"`, into
//!   `target/tokio-uring-fs`; minutes the first time, cached after) and runs
//!   those samples in that build. In tokio 1.54, `File::open` /
//!   `OpenOptions::open`, `fs::read`, `fs::write`, `rename`, `try_exists` and
//!   `File`'s `AsyncRead` reads go through io_uring; `seek`, `AsyncWrite`,
//!   `sync_all` / `sync_data`, `metadata` and `copy` stay on the blocking pool:
//!   the row's label says which of the timed calls use io_uring. A sample checks
//!   that the process holds an io_uring instance (tokio falls back silently).
//!   If the build or io_uring fails, the row prints n/a with the reason and
//!   the rest of the run goes on.
//! - `spawn_blocking`: `tokio::task::spawn_blocking` + the std call (`pread`,
//!   `pwrite` + `fdatasync`, `std::fs::read`), one blocking task per op.
//! - `tokio-uring` (Linux): its own current_thread runtime, tasks sharing an
//!   `Rc<File>`, the way that crate is used (random reads, positioned
//!   windows, the write-ahead log with `write_all_at` + `sync_data`).
//! - `std (1 thread)`: the synchronous limit, on one thread whatever the queue
//!   depth.
//!
//! The Tokio rows run as tasks on a multi_thread runtime with 2 workers (these
//! machines' CPU count); the streaming rows as one task on a worker, as in an
//! application; `block_on` only waits for them.
//!
//! # Method
//!
//! Every sample (a cell, a row, one run) runs in a new process of this bench
//! (`AIOFS_COMPARE_SAMPLE` in its environment says what to run), as an
//! application that starts and does the work would: the aiofs configuration is
//! per process, and fresh allocator state and threads make the runs
//! independent. In that process: the runtime starts, files are opened, an
//! untimed warm-up pass at the same depth starts the threads, the driver and
//! the descriptor pool; then the input is prepared (the cached file read
//! through, the cold file or the small files evicted), then the timed part,
//! then the checks. The runs of a cell are interleaved across rows, the order
//! rotating by one each run. Each figure is the median of the runs, per column.
//!
//! Figures: ops/s (a 4 KiB read, a file, an append) or MB/s (MB = 10^6 bytes;
//! an op is a MiB moved). CPU and csw are `getrusage(RUSAGE_SELF)` user +
//! system time and context switches of the whole sample process (Tokio workers,
//! the blocking pool, glibc's AIO threads, the aiofs notifier, io_uring's
//! workers) over the timed part, per op; kernel threads (writeback, block
//! completions) are not counted. p50 and p99 are the latency of one op (not
//! timed in `cached`, where two clock reads per read would show). `aio` and
//! `sig` are aiofs's requests submitted and completion signals per op
//! (`aiofs::stats()`; the JSON has more counters). `other%` is the CPU the rest
//! of the machine used during the run (`/proc/stat`), `o.MB/s` the disk I/O on
//! the data's device that the process's `/proc/self/io` does not account for
//! (other programs' I/O and writeback, the file system's journal writes for the
//! process's own syncs; `/proc/diskstats`); a warning is printed when a run saw
//! more than 10% or 5 MB/s: these 2-CPU machines on a shared disk are easily
//! disturbed. A disk slowed down from outside the VM shows in nothing but the
//! figures themselves (and in std's latencies).
//!
//! The last block gives the project's targets (the README's, and issue 12's),
//! each ratio computed from this run, marked met or missed: printed, not
//! enforced. The exit status is for errors and wrong data only.
//!
//! # Data
//!
//! Every file holds a pattern that is a function of the offset. Reads check
//! every length and the data of each task's first and last read (small files:
//! both ends of every file); sequential reads the bytes at 17 offsets; written
//! files are checked afterwards. The input files are made once and kept in
//! `AIOFS_BENCH_DIR`, else `target/bench-data` (a kept file is checked before
//! it is reused), which must not be memory-backed; written files go in a
//! temporary directory there, removed at the end.

mod workloads;

use std::io;
use std::process::ExitCode;
use std::time::Instant;

use workloads::{Options, Workload};

const USAGE: &str = "usage: cargo bench --bench compare [-- [--quick] [--json] [--runs N] [--secs S] [--only WORKLOADS] [--rows ROWS] [--pool N,N...] [--dir DIR]]
  WORKLOADS: cached, latency, direct, cold, seq-copy, seq-read-at, write-stream, write-at, small, wal, whole (seq, write, all)
  ROWS: aiofs, aiofs-signal, aiofs-nowait-off, aiofs-blocked, tokio-fs, tokio-fs-uring, spawn-blocking, tokio-uring, std";

fn parse_args() -> io::Result<Option<(Options, bool)>> {
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = if args.iter().any(|a| a == "--quick") {
        Options::quick()
    } else {
        Options::full()
    };
    let mut json = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| bad(format!("{arg} needs a value")));
        let list =
            |v: &str| -> Vec<String> { v.split(',').map(|s| s.trim().to_string()).collect() };
        match arg.as_str() {
            "--quick" | "--bench" => {}
            "--json" => json = true,
            "--runs" => {
                let v = value()?;
                opts.runs = v
                    .parse::<usize>()
                    .map_err(|e| bad(format!("--runs {v}: {e}")))?
                    .max(1);
            }
            "--secs" => {
                let v = value()?;
                let s: f64 = v.parse().map_err(|e| bad(format!("--secs {v}: {e}")))?;
                if !(s.is_finite() && s > 0.0) {
                    return Err(bad(format!("--secs {v}: a positive number of seconds")));
                }
                (opts.secs, opts.cold_secs, opts.wal_secs) = (s, s, s);
                opts.warm_secs = opts.warm_secs.min(s / 4.0);
            }
            "--only" => opts.workloads = Workload::parse_list(value()?)?,
            "--rows" => opts.rows = list(value()?),
            "--pool" => {
                opts.pools = list(value()?)
                    .iter()
                    .map(|n| n.parse().map_err(|e| bad(format!("--pool {n}: {e}"))))
                    .collect::<io::Result<_>>()?;
            }
            "--dir" => opts.dir = Some(value()?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(bad(format!("unknown argument {other:?}\n{USAGE}"))),
        }
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
        eprintln!("compare: {} mode, {} run(s) per cell", opts.mode, opts.runs);
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
