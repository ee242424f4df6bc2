//! `block_completion_signal`: once every thread blocks the completion signal,
//! completions are read from the notifier's `signalfd` (no thread interrupted);
//! once one thread stops blocking it, they take the signal action in that
//! thread again. Nothing is lost either way. Process-wide signal masks: its own
//! binary, without the test harness (whose threads would not block it).

mod support;

use std::sync::Arc;

use support::{aio_only, pattern_bytes};

const READS: u64 = 2000;

fn main() {
    aio_only();
    let signal_notifier =
        std::env::var("AIOFS_NOTIFIER").is_ok_and(|v| v.trim().eq_ignore_ascii_case("signal"));
    if signal_notifier {
        let err = aiofs::block_completion_signal().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        println!("signalfd: refused under the signal notifier, as documented: {err}");
        return;
    }
    // First thing: this thread, and every thread started from it, blocks it.
    aiofs::block_completion_signal().expect("block the completion signal");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(|| aiofs::block_completion_signal().expect("block in a worker"))
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, 1 << 20)).unwrap();
    let file = Arc::new(rt.block_on(aiofs::File::open(&path)).unwrap());

    // Phase 1: every thread blocks the signal.
    let before = aiofs::stats();
    rt.block_on(reads(&file));
    let after = aiofs::stats();
    let signals = after.signals - before.signals;
    let via_signalfd = after.signalfd_signals - before.signalfd_signals;
    let completed = after.completed - before.completed;
    println!("all blocked: {completed} completed, {signals} signals, {via_signalfd} via signalfd");
    assert!(completed >= READS, "{after:?}");
    assert!(
        signals >= completed,
        "a completion without its signal: {after:?}"
    );
    assert_eq!(
        via_signalfd, signals,
        "with every thread blocking it, every signal must come through the signalfd: {after:?}"
    );

    // Phase 2: one thread unblocks it and waits: the kernel delivers there.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let receiver = std::thread::spawn(move || {
        // SAFETY: an all-zero sigset is valid storage for sigemptyset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is valid; the completion signal is SIGRTMIN() + 6 by default.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGRTMIN() + 6);
            assert_eq!(
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()),
                0
            );
        }
        ready_tx.send(()).unwrap();
        // Blocks in a restartable wait until told to stop.
        let _ = rx.recv();
    });
    ready_rx.recv().unwrap();
    let before = aiofs::stats();
    rt.block_on(reads(&file));
    let after = aiofs::stats();
    drop(tx);
    receiver.join().unwrap();
    let signals = after.signals - before.signals;
    let via_signalfd = after.signalfd_signals - before.signalfd_signals;
    let completed = after.completed - before.completed;
    println!(
        "one thread unblocked: {completed} completed, {signals} signals, {via_signalfd} via signalfd"
    );
    assert!(completed >= READS, "{after:?}");
    assert!(
        signals - via_signalfd > 0,
        "no signal reached the thread that does not block it: {after:?}"
    );
    assert_eq!(after.in_flight, 0, "{after:?}");
    println!("signalfd: ok");
}

async fn reads(file: &Arc<aiofs::File>) {
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let file = Arc::clone(file);
        tasks.push(tokio::spawn(async move {
            for i in 0..READS / 16 {
                let pos = ((t * 131 + i * 17) % 256) * 4096;
                let (res, buf) = file.read_at(Vec::with_capacity(4096), pos).await;
                assert_eq!(res.unwrap(), 4096);
                assert_eq!(buf, pattern_bytes(pos, 4096));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
