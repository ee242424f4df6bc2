//! Requests whose completion is awaited against a clock, beside a steady flow
//! of other completions: for the tests of the recovery of lost completion
//! signals (a scan must find them however busy the notification channel is).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use aiofs::File;

use super::pattern_bytes;

pub const BLOCK: usize = 4096;
/// The length of the files the reads and the traffic read.
pub const LEN: usize = 1 << 20;

/// A file of `LEN` bytes of the pattern from `from`, written with `std` (so its
/// pages are cached: AIO reads of it finish in microseconds).
pub fn data_file(dir: &std::path::Path, name: &str, from: u64) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pattern_bytes(from, LEN)).expect("write a data file");
    path
}

/// A sequential loop of 4 KiB reads on its own file, each checked: one
/// completion after another. It can park (finish its current read and wait)
/// and go on again.
#[derive(Default)]
pub struct Traffic {
    pub stop: AtomicBool,
    pause: AtomicBool,
    parked: AtomicBool,
    /// Reads done so far.
    pub reads: AtomicU64,
}

impl Traffic {
    /// The loop, on `file`, which holds the pattern from `from`.
    pub async fn run(self: Arc<Self>, file: File, from: u64) -> Result<(), String> {
        let mut pos = 0u64;
        while !self.stop.load(SeqCst) {
            if self.pause.load(SeqCst) {
                self.parked.store(true, SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            self.parked.store(false, SeqCst);
            let (res, buf) = file.read_at(Vec::with_capacity(BLOCK), pos).await;
            match res {
                Ok(BLOCK) if buf == pattern_bytes(from + pos, BLOCK) => {}
                other => return Err(format!("traffic read at {pos}: {other:?}")),
            }
            self.reads.fetch_add(1, SeqCst);
            pos = (pos + BLOCK as u64) % LEN as u64;
        }
        Ok(())
    }

    /// Parks the loop: no read of it is in flight when this returns.
    ///
    /// # Panics
    ///
    /// If it does not park within 10 s.
    pub async fn park(&self) {
        self.pause.store(true, SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.parked.load(SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the traffic loop did not park within 10 s: {:?}",
                aiofs::stats()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Lets the loop go on (within a millisecond).
    pub fn resume(&self) {
        self.parked.store(false, SeqCst);
        self.pause.store(false, SeqCst);
    }
}

/// A read, and how long it took from its submission to its completion.
pub type Timed = tokio::task::JoinHandle<(Duration, std::io::Result<usize>, Vec<u8>)>;

/// Starts `n` concurrent 4 KiB reads of `file` at blocks `0..n`, each timed
/// from now to its completion.
pub fn timed_reads(file: &Arc<File>, n: u64) -> Vec<Timed> {
    (0..n)
        .map(|i| {
            let file = Arc::clone(file);
            let start = Instant::now();
            tokio::spawn(async move {
                let (res, buf) = file
                    .read_at(Vec::with_capacity(BLOCK), i * BLOCK as u64)
                    .await;
                (start.elapsed(), res, buf)
            })
        })
        .collect()
}

/// Waits for `reads` (at most `secs` seconds in all); checks each one's data
/// (the pattern from `from`) and that each took at most `bound`.
///
/// # Panics
///
/// If one did not complete in time, failed, returned wrong data, or took
/// longer than `bound` (`what` says what the bound promises).
pub async fn check_timed(reads: Vec<Timed>, from: u64, bound: Duration, secs: u64, what: &str) {
    let n = reads.len();
    let all = futures::future::join_all(reads);
    let results = match tokio::time::timeout(Duration::from_secs(secs), all).await {
        Ok(results) => results,
        Err(_) => panic!(
            "{n} reads did not all complete within {secs} s ({what}): {:?}",
            aiofs::stats()
        ),
    };
    let mut slow = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        let (took, res, buf) = r.expect("read task");
        let pos = i as u64 * BLOCK as u64;
        match res {
            Ok(BLOCK) => assert!(
                buf == pattern_bytes(from + pos, BLOCK),
                "read {i} at {pos}: wrong data"
            ),
            other => panic!("read {i} at {pos}: {other:?}"),
        }
        if took > bound {
            slow.push((i, took));
        }
    }
    assert!(
        slow.is_empty(),
        "{} of {n} reads took longer than {bound:?} ({what}): {slow:?}; {:?}",
        slow.len(),
        aiofs::stats()
    );
}
