//! A standard completion signal (issue 10, item 1): `Config::signal(SIGUSR2)`.
//! Standard signals are not queued: while one is pending the kernel drops the
//! next ones (glibc's `rt_sigqueueinfo` still succeeds), so most completions
//! arrive without a signal of their own. The driver must scan at every
//! wake-up when the signal is a standard one, under every notifier; the pipe
//! notifier used to scan only after 250 ms without a token on its pipe, so a
//! steady flow of other completions kept the merged ones stranded.
//!
//! `merged_completions_are_found_promptly_amid_flowing_traffic`: a sequential
//! read loop keeps completions flowing; it parks for a moment while every
//! thread blocks `SIGUSR2` and 64 reads finish (one `SIGUSR2` stays pending,
//! the 63 others are merged into it); then one thread unblocks the signal and
//! the loop resumes at once, for up to 4 s. Each of the 64 reads must complete
//! within 300 ms (+ 300 ms of margin) of its submission.
//!
//! Process-wide state (the signal mask of every thread, the `Config`): its own
//! binary, `harness = false`, so that `main` blocks the signal before any
//! other thread exists. The notifier comes from `AIOFS_NOTIFIER` (CI runs both;
//! the signal notifier already scanned at every wake-up for standard signals).

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aiofs::Config;
use support::traffic::{Traffic, check_timed, data_file, timed_reads};
use support::{open_rw, settle};

const SIGNO: i32 = libc::SIGUSR2;
const READS: u64 = 64;
const BOUND: Duration = Duration::from_millis(600);

/// Blocks (`true`) or unblocks `SIGNO` in the calling thread.
fn mask(block: bool) {
    // SAFETY: an all-zero sigset is valid storage for `sigemptyset`.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid; `SIGNO` is a real signal.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, SIGNO);
    }
    let how = if block {
        libc::SIG_BLOCK
    } else {
        libc::SIG_UNBLOCK
    };
    // SAFETY: `set` is a valid signal set; the old mask is not asked for.
    let rc = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "pthread_sigmask");
}

/// Whether `SIGNO` is pending on the process (blocked everywhere, not taken).
fn pending() -> bool {
    // SAFETY: an all-zero sigset is valid storage for `sigpending`.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid for writes.
    assert_eq!(unsafe { libc::sigpending(&mut set) }, 0);
    // SAFETY: `set` was filled by `sigpending`.
    unsafe { libc::sigismember(&set, SIGNO) == 1 }
}

/// A thread whose only job is to take `SIGNO` (or not, when told to block it):
/// every other thread blocks it.
struct Receiver {
    tx: mpsc::Sender<Option<bool>>,
    ack: mpsc::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Receiver {
    fn start() -> Receiver {
        let (tx, rx) = mpsc::channel::<Option<bool>>();
        let (ack_tx, ack) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            // `None`: the end. The waits in `recv` restart after the handler runs.
            while let Ok(Some(block)) = rx.recv() {
                mask(block);
                ack_tx.send(()).expect("ack");
            }
        });
        let r = Receiver { tx, ack, thread };
        r.set(false);
        r
    }

    fn set(&self, block: bool) {
        self.tx.send(Some(block)).expect("tell the receiver");
        self.ack
            .recv_timeout(Duration::from_secs(10))
            .expect("the receiver's ack");
    }

    fn stop(self) {
        let _ = self.tx.send(None);
        self.thread.join().expect("receiver thread");
    }
}

fn main() {
    // Before any other thread: every thread started from here on blocks it,
    // but the receiver, which unblocks it when told.
    mask(true);
    Config::new()
        .signal(SIGNO)
        .nowait(false)
        .max_in_flight(256)
        .install()
        .expect("install the Config");
    let receiver = Receiver::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let merged_path = data_file(dir.path(), "merged", 0);
    let traffic_path = data_file(dir.path(), "traffic", 1 << 40);
    rt.block_on(merged_completions_are_found_promptly_amid_flowing_traffic(
        &merged_path,
        &traffic_path,
        &receiver,
    ));
    receiver.stop();
    println!("test merged_completions_are_found_promptly_amid_flowing_traffic ... ok");
    println!("\ntest result: ok. 1 passed; 0 failed");
}

async fn merged_completions_are_found_promptly_amid_flowing_traffic(
    merged_path: &std::path::Path,
    traffic_path: &std::path::Path,
    receiver: &Receiver,
) {
    let merged = Arc::new(open_rw(merged_path).await);
    let (res, _) = merged.read_at(Vec::with_capacity(4096), 0).await;
    res.expect("a first read");
    let traffic = Arc::new(Traffic::default());
    let traffic_task = tokio::spawn(Arc::clone(&traffic).run(open_rw(traffic_path).await, 1 << 40));
    // Completions flow.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        traffic.reads.load(SeqCst) > 0,
        "no traffic: {:?}",
        aiofs::stats()
    );

    traffic.park().await;
    receiver.set(true);
    let before = aiofs::stats();
    let reads = timed_reads(&merged, READS);
    // Cached 4 KiB reads on one descriptor: about a millisecond for all.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pending() {
        assert!(
            Instant::now() < deadline,
            "no SIGUSR2 pending: {:?}",
            aiofs::stats()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    receiver.set(false);
    traffic.resume();
    let resumed = traffic.reads.load(SeqCst);

    let waited = Instant::now();
    let stopper = {
        let traffic = Arc::clone(&traffic);
        tokio::spawn(async move {
            // Keep the traffic going until the 64 are done, at most 4 s.
            tokio::time::sleep(Duration::from_secs(4)).await;
            traffic.stop.store(true, SeqCst);
        })
    };
    check_timed(
        reads,
        0,
        BOUND,
        30,
        "a standard signal merged their completions; the promise: each completes within \
         300 ms, checked with 300 ms of margin",
    )
    .await;
    let waited = waited.elapsed();
    let during = traffic.reads.load(SeqCst) - resumed;
    traffic.stop.store(true, SeqCst);
    stopper.abort();
    traffic_task
        .await
        .expect("traffic task")
        .expect("traffic reads");
    let after = aiofs::stats();
    println!(
        "{READS} reads with merged signals done {waited:?} after the signal was unblocked; \
         {during} traffic reads meanwhile; signals +{}, tokens +{}, scans +{}",
        after.signals - before.signals,
        after.tokens - before.tokens,
        after.scans - before.scans
    );
    settle().await;
}
