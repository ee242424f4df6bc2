//! The bound on duplicate descriptors is configurable (issue 11, item 6):
//! `Config::max_pool_fds(n)` and `AIOFS_MAX_POOL_FDS`, for the whole process.
//! `stats().pool_fds` is a gauge of the duplicates open now and
//! `stats().pool_fds_opened` counts those ever opened.
//!
//! - `max_pool_fds_bounds_the_duplicates_of_the_whole_process`: with
//!   `Config::max_pool_fds(4)`, 10 `O_DIRECT` files each with 8 aligned reads
//!   at once, round after round: every read succeeds, and no more than 4
//!   duplicates are ever open (sampled all along, from the descriptors under
//!   the files' directory and from `pool_fds`);
//! - `aiofs_max_pool_fds_sets_the_bound_too`: the same with
//!   `AIOFS_MAX_POOL_FDS=2` and no `Config`.
//!
//! Each runs in a child process of this binary (its own `Config` or
//! environment). `max_pool_fds`, `pool_fds_opened` and the variable are new:
//! this file does not compile on today's main. The notifier comes from
//! `AIOFS_NOTIFIER`.

mod support;

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use aiofs::buf::AlignedBuf;
use support::process::in_child_env;
use support::{in_child, open_fds_under, pattern_bytes, serial};

const FILES: usize = 10;
const DEPTH: u64 = 8;
const ROUNDS: u64 = 20;
const BLOCK: usize = 4096;

/// Reads the files at depth `DEPTH`, `ROUNDS` times, while a sampler records
/// the most duplicates seen open; checks them against `bound`.
fn reads_within(bound: usize) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let probe = dir.path().join("probe");
    std::fs::write(&probe, vec![0u8; BLOCK]).expect("write");
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
    {
        eprintln!("SKIPPED: O_DIRECT is refused here: {e}");
        return;
    }
    std::fs::remove_file(&probe).expect("remove");
    let len = DEPTH as usize * BLOCK;
    let paths: Vec<_> = (0..FILES)
        .map(|k| {
            let path = dir.path().join(format!("f{k}"));
            std::fs::write(&path, pattern_bytes((k as u64) << 32, len)).expect("write");
            path
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut files = Vec::new();
        for path in &paths {
            let f = aiofs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .await
                .expect("open O_DIRECT");
            files.push(f);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let most = Arc::new(AtomicUsize::new(0));
        let most_gauge = Arc::new(AtomicUsize::new(0));
        let sampler = {
            let (stop, most, most_gauge) = (stop.clone(), most.clone(), most_gauge.clone());
            let dir = dir.path().to_owned();
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    most.fetch_max(count_dups(&dir), SeqCst);
                    most_gauge.fetch_max(aiofs::stats().pool_fds as usize, SeqCst);
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        for round in 0..ROUNDS {
            let reads = files.iter().enumerate().flat_map(|(k, f)| {
                (0..DEPTH).map(move |i| async move {
                    let pos = i * BLOCK as u64;
                    let (res, buf) = f.read_at(AlignedBuf::new(BLOCK, BLOCK), pos).await;
                    match res {
                        Ok(BLOCK)
                            if buf[..] == pattern_bytes(((k as u64) << 32) + pos, BLOCK)[..] => {}
                        other => panic!(
                            "round {round}, file {k}, read at {pos}: {:?}",
                            other.map(|_| "wrong data")
                        ),
                    }
                })
            });
            support::bounded("reads at depth", 30, futures::future::join_all(reads)).await;
        }
        stop.store(true, SeqCst);
        sampler.join().expect("sampler");
        let s = aiofs::stats();
        let (most, most_gauge) = (most.load(SeqCst), most_gauge.load(SeqCst));
        println!("at most {most} duplicates open, pool_fds at most {most_gauge}: {s:?}");
        assert!(
            most <= bound,
            "{most} duplicate descriptors were open at once; the bound is {bound}"
        );
        assert!(
            most_gauge <= bound,
            "stats().pool_fds reached {most_gauge}; the bound is {bound}"
        );
        assert!(
            s.pool_fds_opened >= most as u64,
            "pool_fds_opened ({}) counts fewer duplicates than were open at once ({most})",
            s.pool_fds_opened
        );
        drop(files);
    });
}

/// Descriptors under `dir` beyond the files' own.
fn count_dups(dir: &Path) -> usize {
    open_fds_under(dir).saturating_sub(FILES)
}

#[test]
fn max_pool_fds_bounds_the_duplicates_of_the_whole_process() {
    let _serial = serial();
    if !in_child("max_pool_fds_bounds_the_duplicates_of_the_whole_process") {
        return;
    }
    aiofs::Config::new()
        .max_pool_fds(4)
        .install()
        .expect("install the Config");
    reads_within(4);
}

#[test]
fn aiofs_max_pool_fds_sets_the_bound_too() {
    let _serial = serial();
    if !in_child_env(
        "aiofs_max_pool_fds_sets_the_bound_too",
        &[("AIOFS_MAX_POOL_FDS", "2")],
    ) {
        return;
    }
    reads_within(2);
}
