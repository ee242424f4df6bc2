//! Load with a signal queue far smaller than the in-flight limit: real
//! completions race a full queue.
//!
//! `RLIMIT_SIGPENDING` is lowered to 16 signals while the driver keeps up to
//! 256 requests in flight, and the signal is *not* blocked (unlike
//! `tests/sigpending_full.rs`, where nothing is delivered until the queue is
//! full): signals are delivered as they come, and whenever more completions
//! arrive at once than the queue holds, glibc replaces a finished request's
//! result with -1/`EAGAIN` and sends no signal.
//!
//! Thousands of requests at once — positioned reads (on a pool of descriptors,
//! so that several glibc workers finish requests at the same moment) and
//! positioned writes to distinct blocks, and `O_APPEND` writes of numbered
//! lines through several descriptors — and then:
//!
//! - no wrong result: every read returns the right bytes, every positioned
//!   write lands, no `EAGAIN` / `WouldBlock` reaches the caller;
//! - an `O_APPEND` write is never run twice: it succeeds, or (its completion
//!   signal lost) fails with an error saying the outcome is unknown. The file
//!   holds every acknowledged line exactly once, no line twice, and nothing
//!   else;
//! - the driver's gauges come back to 0.
//!
//! Rounds repeat until the queue was seen full (`stats().eagain_retries` or an
//! outcome-unknown append), at most `MAX_ROUNDS`.
//!
//! Process-wide state (a resource limit, the driver's `Config`): its own
//! binary, `harness = false`. The notifier comes from `AIOFS_NOTIFIER`.
//! `AIOFS_TEST_SMALL=1` makes each round smaller.

mod support;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use aiofs::Config;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use support::{Rng, bounded, open_rw, pattern_bytes, settle};

/// `RLIMIT_SIGPENDING`: the signals that can be queued to the process at once
/// (counted for the whole user).
const SIGPENDING: u64 = 16;
const MAX_IN_FLIGHT: usize = 256;
const BLOCK: usize = 4096;
/// The read-only region of the positioned file.
const READ_REGION: u64 = 4 << 20;
/// Descriptors for the positioned reads, and `O_APPEND` descriptors.
const READ_FDS: usize = 8;
const APPENDERS: usize = 4;
const LINE: usize = 64;
const MAX_ROUNDS: usize = 20;

fn small() -> bool {
    std::env::var("AIOFS_TEST_SMALL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Positioned requests and appended lines per round.
fn sizes() -> (usize, usize) {
    if small() {
        (1_000, 300)
    } else {
        (10_000, 2_000)
    }
}

/// The line of append `id`: its number, then bytes derived from it, so that a
/// torn or misplaced line shows.
fn line(id: u64) -> Vec<u8> {
    let mut l = format!("{id:08} ").into_bytes();
    l.extend((0..LINE - 10).map(|i| b'a' + ((id as usize * 7 + i) % 26) as u8));
    l.push(b'\n');
    assert_eq!(l.len(), LINE);
    l
}

fn is_outcome_unknown(e: &io::Error) -> bool {
    e.to_string().contains("outcome unknown")
}

fn main() {
    // SAFETY: plain libc calls on valid, local arguments, before any thread.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut lim), 0);
        lim.rlim_cur = SIGPENDING;
        assert_eq!(libc::setrlimit(libc::RLIMIT_SIGPENDING, &lim), 0);
    }
    // Far more in flight than signals can be queued; the default limit would
    // be a quarter of RLIMIT_SIGPENDING. The notifier comes from AIOFS_NOTIFIER.
    // Every read through AIO (no page-cache fast path): each needs a signal.
    Config::new()
        .max_in_flight(MAX_IN_FLIGHT)
        .nowait(false)
        .install()
        .expect("install the Config");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bounded(
        "full_signal_queue_under_load_loses_no_result_and_appends_nothing_twice",
        120,
        full_signal_queue_under_load_loses_no_result_and_appends_nothing_twice(),
    ));
    println!("test full_signal_queue_under_load_loses_no_result_and_appends_nothing_twice ... ok");
    println!("\ntest result: ok. 1 passed; 0 failed");
}

#[derive(Debug)]
enum Outcome {
    Ok,
    /// An `O_APPEND` write acknowledged: its line must be in the file once.
    Appended(u64),
    /// An `O_APPEND` write whose outcome is unknown: its line may be in the
    /// file once, or not at all.
    Unknown(u64),
}

type Check = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, String>> + Send>>;

async fn full_signal_queue_under_load_loses_no_result_and_appends_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (requests, lines) = sizes();
    let started = Instant::now();
    let before = aiofs::stats();

    // The positioned file: a read-only region, then one block per write of
    // every round.
    let data_path = dir.path().join("data");
    std::fs::write(&data_path, pattern_bytes(0, READ_REGION as usize)).expect("write");
    let data = Arc::new(open_rw(&data_path).await);
    data.set_fd_pool(READ_FDS);
    let log_path = dir.path().join("log");
    std::fs::write(&log_path, b"").expect("create the log");
    let mut appenders = Vec::new();
    for _ in 0..APPENDERS {
        let f = aiofs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .await
            .expect("open for append");
        appenders.push(Arc::new(f));
    }

    let mut rng = Rng::new(11);
    let mut acked = Vec::new();
    let mut unknown = Vec::new();
    let mut next_line = 0u64;
    let mut next_block = 0u64;
    let mut rounds = 0;
    let mut positioned = 0;
    while rounds < MAX_ROUNDS {
        rounds += 1;
        let mut checks: Vec<Check> = Vec::new();
        for _ in 0..requests {
            let data = Arc::clone(&data);
            if rng.below(4) == 0 {
                let pos = READ_REGION + next_block * BLOCK as u64;
                next_block += 1;
                checks.push(Box::pin(async move {
                    let (res, _) = data.write_at(pattern_bytes(pos, BLOCK), pos).await;
                    match res {
                        Ok(BLOCK) => Ok(Outcome::Ok),
                        other => Err(format!("write_at {pos}: {other:?}")),
                    }
                }));
            } else {
                let pos = rng.below(READ_REGION - BLOCK as u64 + 1);
                checks.push(Box::pin(async move {
                    let (res, buf) = data.read_at(Vec::with_capacity(BLOCK), pos).await;
                    match res {
                        Ok(BLOCK) if buf == pattern_bytes(pos, BLOCK) => Ok(Outcome::Ok),
                        Ok(BLOCK) => Err(format!("read_at {pos}: wrong data")),
                        other => Err(format!("read_at {pos}: {other:?}")),
                    }
                }));
            }
        }
        positioned += requests;
        for _ in 0..lines {
            let id = next_line;
            next_line += 1;
            let file = Arc::clone(&appenders[id as usize % APPENDERS]);
            checks.push(Box::pin(async move {
                let (res, _) = file.write_at(line(id), 0).await;
                match res {
                    Ok(LINE) => Ok(Outcome::Appended(id)),
                    Err(e) if is_outcome_unknown(&e) => Ok(Outcome::Unknown(id)),
                    other => Err(format!("append of line {id}: {other:?}")),
                }
            }));
        }
        // Mixed, so that appends and positioned requests complete together.
        for i in (1..checks.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            checks.swap(i, j);
        }
        let mut failures = Vec::new();
        let mut all: FuturesUnordered<Check> = checks.into_iter().collect();
        while let Some(res) = all.next().await {
            match res {
                Ok(Outcome::Ok) => {}
                Ok(Outcome::Appended(id)) => acked.push(id),
                Ok(Outcome::Unknown(id)) => unknown.push(id),
                Err(e) => failures.push(e),
            }
        }
        assert!(
            failures.is_empty(),
            "round {rounds}: {} requests went wrong: {:#?}",
            failures.len(),
            &failures[..failures.len().min(10)]
        );
        let s = aiofs::stats();
        if s.eagain_retries > before.eagain_retries || !unknown.is_empty() {
            break;
        }
    }
    settle().await;
    let s = aiofs::stats();
    assert_eq!(s.in_flight, 0, "{s:?}");
    assert_eq!(s.queued, 0, "{s:?}");
    assert_eq!(s.orphaned, 0, "{s:?}");
    drop(appenders);

    // The positioned writes landed; the read region is unchanged.
    let content = std::fs::read(&data_path).expect("read the data back");
    let want = pattern_bytes(0, (READ_REGION + next_block * BLOCK as u64) as usize);
    assert!(
        content == want,
        "the positioned file is not what was written"
    );

    let present = check_log(&log_path, next_line, &acked, &unknown);
    let retries = s.eagain_retries - before.eagain_retries;
    println!(
        "{rounds} round(s) in {:.2?}: {positioned} positioned requests, {next_line} appends \
         ({} acknowledged, {} outcome unknown, {present} of those in the file); \
         {retries} EAGAIN results retried; {} scans",
        started.elapsed(),
        acked.len(),
        unknown.len(),
        s.scans - before.scans,
    );
    assert!(
        retries > 0 || !unknown.is_empty(),
        "the signal queue was never seen full in {rounds} rounds: the race was not exercised"
    );
}

/// The log holds whole lines only, each a line we appended, none twice; every
/// acknowledged line is there. Returns how many outcome-unknown lines are.
fn check_log(path: &Path, appended: u64, acked: &[u64], unknown: &[u64]) -> usize {
    let log = std::fs::read(path).expect("read the log");
    assert_eq!(log.len() % LINE, 0, "the log holds a partial line");
    let mut seen = vec![false; appended as usize];
    for (i, l) in log.chunks(LINE).enumerate() {
        let id: u64 = std::str::from_utf8(&l[..8])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("line {i} of the log is not one of ours: {l:?}"));
        assert!(id < appended, "line {i}: id {id} was never appended");
        assert_eq!(l, &line(id)[..], "line {i} (id {id}) is torn");
        assert!(!seen[id as usize], "line {id} is in the log twice");
        seen[id as usize] = true;
    }
    for &id in acked {
        assert!(
            seen[id as usize],
            "acknowledged line {id} is not in the log"
        );
    }
    let present = unknown.iter().filter(|&&id| seen[id as usize]).count();
    assert_eq!(
        log.len() / LINE,
        acked.len() + present,
        "the log holds lines neither acknowledged nor of unknown outcome"
    );
    present
}
