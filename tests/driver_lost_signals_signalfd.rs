//! Lost completion signals amid flowing traffic on the `signalfd` path
//! (issue 10, item 1: one recovery rule whatever the notification path).
//!
//! Once every thread blocks the completion signal
//! (`block_completion_signal`), the pipe notifier's thread reads completions
//! from a `signalfd`, and it used to look for lost ones only after 250 ms
//! without anything to read there or on its pipe: a steady flow of other
//! completions kept them stranded for as long as it lasted.
//!
//! `lost_signals_amid_flowing_traffic_on_the_signalfd_complete_within_300_ms`:
//! a sequential read loop keeps completions flowing through the `signalfd`;
//! it parks for a moment while `RLIMIT_SIGPENDING` is 0 and 32 reads are
//! submitted and finish (their signals cannot be queued); the limit comes
//! back and the loop resumes at once, for up to 4 s. Each of the 32 must
//! complete within 300 ms (+ 300 ms of margin) of its submission.
//!
//! Process-wide state (every thread's signal mask, a resource limit, the
//! `Config`): its own binary, `harness = false`, so that `main` blocks the
//! signal before any other thread exists. It installs `Notifier::Pipe` (the
//! `signalfd` is the pipe notifier's), so both of CI's runs cover it.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use aiofs::{Config, Notifier};
use support::process::set_soft_limit;
use support::traffic::{Traffic, check_timed, data_file, timed_reads};
use support::{open_rw, settle};

fn main() {
    Config::new()
        .notifier(Notifier::Pipe)
        .nowait(false)
        .max_in_flight(256)
        .install()
        .expect("install the Config");
    // Before any other thread: every thread blocks the signal.
    aiofs::block_completion_signal().expect("block the completion signal");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(|| aiofs::block_completion_signal().expect("block in a worker"))
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let lost_path = data_file(dir.path(), "lost", 0);
    let traffic_path = data_file(dir.path(), "traffic", 1 << 40);
    rt.block_on(async {
        let lost = Arc::new(open_rw(&lost_path).await);
        let (res, _) = lost.read_at(Vec::with_capacity(4096), 0).await;
        res.expect("a first read");
        let traffic = Arc::new(Traffic::default());
        let traffic_task =
            tokio::spawn(Arc::clone(&traffic).run(open_rw(&traffic_path).await, 1 << 40));
        // Completions flow, through the signalfd.
        let before = aiofs::stats();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = aiofs::stats();
        assert!(
            traffic.reads.load(SeqCst) > 0 && s.signalfd_signals > before.signalfd_signals,
            "precondition: completions come through the signalfd: {s:?}"
        );

        traffic.park().await;
        let limit = set_soft_limit(libc::RLIMIT_SIGPENDING, 0);
        let reads = timed_reads(&lost, 32);
        // Cached 4 KiB reads on one descriptor: about a millisecond for all.
        tokio::time::sleep(Duration::from_millis(20)).await;
        set_soft_limit(libc::RLIMIT_SIGPENDING, limit);
        traffic.resume();
        let resumed = traffic.reads.load(SeqCst);
        let before = aiofs::stats();

        let waited = Instant::now();
        let stopper = {
            let traffic = Arc::clone(&traffic);
            tokio::spawn(async move {
                // Keep the traffic going until the 32 are done, at most 4 s.
                tokio::time::sleep(Duration::from_secs(4)).await;
                traffic.stop.store(true, SeqCst);
            })
        };
        check_timed(
            reads,
            0,
            Duration::from_millis(600),
            30,
            "their completion signals were lost; the promise: each completes within \
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
            "32 reads with lost signals done {waited:?} after the traffic resumed; {during} \
             traffic reads meanwhile; signalfd signals +{}, scans +{}",
            after.signalfd_signals - before.signalfd_signals,
            after.scans - before.scans
        );
        settle().await;
    });
    println!(
        "test lost_signals_amid_flowing_traffic_on_the_signalfd_complete_within_300_ms ... ok"
    );
    println!("\ntest result: ok. 1 passed; 0 failed");
}
