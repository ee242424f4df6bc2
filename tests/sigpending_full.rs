//! The signal queue is full: glibc replaces a finished request's result with
//! -1/EAGAIN and sends no signal. The driver must find those requests (its safety
//! net scans), treat the outcome as unknown, resubmit them, and never show EAGAIN.
//!
//! Process-wide state (signal mask, RLIMIT_SIGPENDING): its own binary, one test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aiofs::{Config, File};

const LIMIT: u64 = 8;
const REQUESTS: u64 = 64;

fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(131) ^ (i >> 9)) as u8
}

// `harness = false`: the test must run on the main thread, before any other thread
// exists, so that every thread inherits the blocked signal mask.
fn main() {
    full_signal_queue_results_are_resubmitted_never_shown();
    println!("test full_signal_queue_results_are_resubmitted_never_shown ... ok");
}

fn full_signal_queue_results_are_resubmitted_never_shown() {
    let signo = libc::SIGRTMIN() + 6;
    // SAFETY: plain libc calls on valid, local arguments; no other thread runs yet,
    // so every thread created from here on inherits the blocked mask.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut lim), 0);
        lim.rlim_cur = LIMIT;
        assert_eq!(libc::setrlimit(libc::RLIMIT_SIGPENDING, &lim), 0);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
    // More in flight than signals can be queued. The notifier comes from
    // AIOFS_NOTIFIER, so CI runs this under both.
    Config::new()
        .signal(signo)
        .max_in_flight(REQUESTS as usize)
        .nowait(false)
        .install()
        .unwrap();

    let mut std_file = tempfile::tempfile().unwrap();
    let data: Vec<u8> = (0..REQUESTS * 4096).map(pattern).collect();
    std::io::Write::write_all(&mut std_file, &data).unwrap();
    let file = Arc::new(File::from_std(std_file));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handles: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let file = Arc::clone(&file);
            rt.spawn(async move { file.read_exact_at(Vec::with_capacity(4096), i * 4096).await })
        })
        .collect();

    // Every thread blocks the signal: at most LIMIT completions can be queued, the
    // rest come back as -1/EAGAIN. Wait (bounded) until the driver has seen some.
    let deadline = Instant::now() + Duration::from_secs(30);
    while aiofs::stats().eagain_retries == 0 {
        assert!(
            Instant::now() < deadline,
            "no EAGAIN result seen: {:?}",
            aiofs::stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the queued signals be delivered (to this thread) so the queue drains.
    // SAFETY: as above.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
    rt.block_on(async {
        for (i, h) in handles.into_iter().enumerate() {
            let (res, buf) = tokio::time::timeout(Duration::from_secs(60), h)
                .await
                .expect("request stranded")
                .unwrap();
            res.unwrap_or_else(|e| panic!("request {i}: {e}"));
            let start = i * 4096;
            assert_eq!(&buf[..], &data[start..start + 4096], "request {i}");
        }
    });
    let s = aiofs::stats();
    assert!(s.eagain_retries > 0, "{s:?}");
    assert_eq!(s.in_flight, 0, "{s:?}");
    eprintln!("{s:?}");
}
