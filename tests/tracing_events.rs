//! The `tracing` feature (issue 13): an operator sees the recovery at work.
//! With `RLIMIT_SIGPENDING = 0` every completion signal is lost: a read emits
//! "lost a result" (it runs again, quietly) and "a recovery scan found"; with
//! `AIOFS_SLOW_MS=0` every request is reported as slow; reads at depth on a
//! file whose pool may grow report the growth.
//!
//! Process-wide state (the rlimit, the environment, the global subscriber):
//! its own binary, run only with `--features tracing`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every event's message.
static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static NEXT_SPAN: AtomicU64 = AtomicU64::new(1);

struct Collect;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(NEXT_SPAN.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        MESSAGES.lock().unwrap().push(m.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn seen(part: &str) -> usize {
    MESSAGES
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.contains(part))
        .count()
}

/// Waits (10 s at most) until `part` was seen `n` times. A request's event is
/// emitted once the driver's lock is released, and its caller may already
/// have seen it finished (a `Batch` polled for another of its reads).
fn wait_seen(part: &str, n: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = seen(part);
        if got >= n || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn main() {
    // SAFETY: single-threaded here, before any other thread exists.
    unsafe { std::env::set_var("AIOFS_SLOW_MS", "0") };
    tracing::subscriber::set_global_default(Collect).expect("subscriber");
    aiofs::Config::new()
        .nowait(false)
        .install()
        .expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, vec![7u8; 1 << 20]).expect("write");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let file = aiofs::File::open(&path).await.expect("open");
        // Slow requests (every one, at 0 ms); pool growth (reads at depth on
        // a file that spreads its reads).
        file.set_fd_pool(4);
        let mut batch = aiofs::Batch::new();
        for i in 0..64u64 {
            batch.read_at(&file, vec![0u8; 4096], i * 4096);
        }
        for (res, _) in batch.submit().await {
            assert_eq!(res.expect("read"), 4096);
        }
        assert!(
            wait_seen("longer than AIOFS_SLOW_MS", 64) >= 64,
            "{:?}",
            MESSAGES.lock().unwrap()
        );
        assert!(
            wait_seen("descriptor pool grew", 1) >= 1,
            "{:?}",
            MESSAGES.lock().unwrap()
        );

        // Every signal lost from now on.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid, writable rlimit.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut lim) },
            0
        );
        lim.rlim_cur = 0;
        // SAFETY: as above.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_SIGPENDING, &lim) }, 0);
        let (res, buf) = file.read_at(Vec::with_capacity(4096), 8192).await;
        assert_eq!(res.expect("read with the signal lost"), 4096);
        assert!(buf.iter().all(|&b| b == 7));
    });
    assert!(
        wait_seen("lost a result", 1) >= 1,
        "{:?}",
        MESSAGES.lock().unwrap()
    );
    assert!(
        wait_seen("recovery scan found", 1) >= 1,
        "{:?}",
        MESSAGES.lock().unwrap()
    );
    let messages = MESSAGES.lock().unwrap().clone();
    println!("tracing_events: ok ({} events)", messages.len());
}
