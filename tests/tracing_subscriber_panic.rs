//! A `tracing` subscriber that panics on one of aiofs's events must not cost
//! any request its wake-up: a finished request is never scanned again, so a
//! lost wake-up is a future that never resumes.
//!
//! Process-wide state (the global subscriber, the environment): its own
//! binary, run only with `--features tracing`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Whether the next event panics.
static ARMED: AtomicBool = AtomicBool::new(false);

struct PanicOnce;

impl Subscriber for PanicOnce {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {
        if ARMED.swap(false, Ordering::SeqCst) {
            panic!("a subscriber that panics once (a println! to a closed stdout)");
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn main() {
    // SAFETY: single-threaded here, before any other thread exists.
    unsafe { std::env::set_var("AIOFS_SLOW_MS", "0") }; // every request an event
    tracing::subscriber::set_global_default(PanicOnce).expect("subscriber");
    aiofs::Config::new()
        .nowait(false)
        .install()
        .expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    std::fs::write(&path, vec![1u8; 4096]).expect("write");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let woken = rt.block_on(async {
        let file = aiofs::File::open(&path).await.expect("open");
        ARMED.store(true, Ordering::SeqCst);
        // Not `tokio::time::timeout`: it polls the read once more when it
        // fires, which would find the result a lost wake-up never announced.
        tokio::select! {
            biased;
            _ = tokio::time::sleep(Duration::from_secs(5)) => None,
            (res, _) = file.read_at(vec![0u8; 4096], 0) => Some(res),
        }
    });
    assert!(!ARMED.load(Ordering::SeqCst), "no event was emitted");
    match woken {
        Some(res) => assert_eq!(res.expect("read"), 4096),
        None => panic!("the read was never woken (5 s) after one subscriber panic"),
    }
    println!("tracing_subscriber_panic: ok (the read was woken after the subscriber panicked)");
}
