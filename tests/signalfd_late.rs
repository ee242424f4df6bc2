//! `block_completion_signal` called after a runtime's listener started (the
//! program did I/O first, then blocked the signal in every thread): the
//! listener picks up the `signalfd` when it opens. Before, nobody read it:
//! every completion waited for the recovery scan and left its signal pending
//! for good (counted against the user's `RLIMIT_SIGPENDING`). Its own binary,
//! without the test harness (whose main thread would not block the signal):
//! it blocks the signal and opens the process's `signalfd`.

use std::time::Duration;

const READS: u64 = 10;

fn main() {
    // The pipe notifier with runtime listeners (what this is about), whatever
    // the environment says.
    let signo = libc::SIGRTMIN() + 4;
    aiofs::Config::new()
        .notifier(aiofs::Notifier::Pipe)
        .runtime_delivery(true)
        .signal(signo)
        .nowait(false)
        .install()
        .unwrap();
    let file = aiofs::File::from_std(tempfile::tempfile().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (r, _) = file.write_at(vec![7u8; 1 << 16], 0).await;
        r.unwrap();
        for i in 0..READS {
            let (r, _) = file.read_at(Vec::with_capacity(4096), i * 4096).await;
            r.unwrap();
        }
    });
    // This thread runs the runtime; the notifier blocks it already; glibc's
    // AIO threads block every signal. So every thread blocks it now.
    aiofs::block_completion_signal().unwrap();
    let before = aiofs::stats();
    rt.block_on(async {
        for i in 0..READS {
            let read = file.read_at(Vec::with_capacity(4096), i * 4096);
            let (r, buf) = tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .expect("a read timed out");
            assert_eq!(r.unwrap(), 4096);
            assert!(buf.iter().all(|&b| b == 7));
        }
    });
    let after = aiofs::stats();
    let through_signalfd = after.signalfd_signals - before.signalfd_signals;
    let scanned = after.lost_signals - before.lost_signals;
    assert!(
        through_signalfd >= READS && scanned < READS,
        "signalfd +{through_signalfd}, found by scans +{scanned}: {after:?}"
    );
    // Nothing left pending on the process (the signals are read, not queued).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let pending = status
        .lines()
        .find_map(|l| l.strip_prefix("ShdPnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(
        pending & (1u64 << (signo - 1)),
        0,
        "the completion signal is still pending on the process ({status})"
    );
    println!(
        "signalfd_late: {READS} reads after block_completion_signal: signalfd +{through_signalfd}, \
         found by scans +{scanned}"
    );
}
