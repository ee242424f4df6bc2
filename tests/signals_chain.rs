//! The application's own signal handling keeps working beside aiofs:
//!
//! - a handler the application installed with `sigaction` on aiofs's signal
//!   number *before* aiofs started is still called for every signal on that
//!   number that is not aiofs's (the pipe notifier's action, and Tokio's with the
//!   signal notifier, chain it through `signal-hook-registry`);
//! - a Tokio signal stream for `SIGUSR1` receives every raise while aiofs I/O
//!   runs;
//! - meanwhile no aiofs call returns `ErrorKind::Interrupted`, though every
//!   thread is hit by thousands of signals.
//!
//! Process-wide state (signal actions): its own binary, `harness = false`, so
//! that the application's handler is the first thing the process installs. The
//! notifier and the signal number come from `AIOFS_NOTIFIER` / `AIOFS_SIGNAL`.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use support::workload::{self, Files, Progress};
use support::{bounded, idle};
use tokio::signal::unix::{SignalKind, signal};

/// The application's own signals on aiofs's number: `SI_QUEUE`, this tag in the
/// high half of the value, the index in the low half.
const TAG: usize = 0xA99 << 32;
const APP_SIGNALS: usize = 4000;
const USR1_RAISES: u64 = 100;

/// How often the application's handler saw each of its own signals.
static APP_SEEN: [AtomicU8; APP_SIGNALS] = [const { AtomicU8::new(0) }; APP_SIGNALS];
/// Other signals the application's handler saw (aiofs's completions, after aiofs
/// chained it).
static APP_OTHER: AtomicU64 = AtomicU64::new(0);

/// aiofs's signal: `AIOFS_SIGNAL`, or its default `SIGRTMIN() + 6`.
fn signo() -> i32 {
    match std::env::var("AIOFS_SIGNAL") {
        Ok(v) => v.trim().parse().expect("AIOFS_SIGNAL is not a number"),
        Err(_) => libc::SIGRTMIN() + 6,
    }
}

type SigAction = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// The application's handler: counts its own signals. Async-signal-safe
/// (atomics only).
extern "C" fn app_handler(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` action;
    // `si_value` is filled for queued signals.
    let (code, value) = unsafe {
        match info.as_ref() {
            Some(info) => (info.si_code, info.si_value().sival_ptr as usize),
            None => return,
        }
    };
    if code == libc::SI_QUEUE && value & !0xFFFF_FFFF == TAG && value & 0xFFFF_FFFF < APP_SIGNALS {
        APP_SEEN[value & 0xFFFF_FFFF].fetch_add(1, Relaxed);
    } else {
        APP_OTHER.fetch_add(1, Relaxed);
    }
}

/// The signal's current action (`sa_sigaction`, `sa_flags`).
fn action(signo: i32) -> (usize, i32) {
    // SAFETY: `sigaction` with a null new action only reads into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signo, std::ptr::null(), &mut old), 0);
        (old.sa_sigaction, old.sa_flags)
    }
}

fn install_app_handler(signo: i32) {
    // SAFETY: a valid `sigaction` whose handler is async-signal-safe.
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = app_handler as SigAction as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut new.sa_mask);
        assert_eq!(libc::sigaction(signo, &new, std::ptr::null_mut()), 0);
    }
}

fn sigqueue(signo: i32, value: usize) -> bool {
    let value = libc::sigval {
        sival_ptr: value as *mut libc::c_void,
    };
    // SAFETY: plain libc call on valid arguments.
    unsafe { libc::sigqueue(libc::getpid(), signo, value) == 0 }
}

fn seen(i: usize) -> u8 {
    APP_SEEN[i].load(Relaxed)
}

/// Waits (at most 10 s) until the application's handler saw signals `..upto`.
fn wait_seen(upto: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while (0..upto).any(|i| seen(i) == 0) {
        let missing: Vec<_> = (0..upto).filter(|&i| seen(i) == 0).take(10).collect();
        assert!(
            Instant::now() < deadline,
            "the application's handler never saw its signals {missing:?} (of {upto}): {:?}",
            aiofs::stats()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits (at most 10 s) until aiofs completed `n` more requests: the signals
/// are spread over the load.
fn wait_completions(n: u64) {
    let target = aiofs::stats().completed + n;
    let deadline = Instant::now() + Duration::from_secs(10);
    while aiofs::stats().completed < target {
        assert!(
            Instant::now() < deadline,
            "no I/O progress: {:?}",
            aiofs::stats()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs the load (on a multi-thread runtime: `tasks` tasks of 64 requests at
/// once) while `during` runs beside it; checks every result of the load.
fn with_load<T>(name: &str, tasks: u64, during: impl Future<Output = T>) -> T {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(bounded(name, 30, async {
        let files = Files::create(dir.path(), 4).await;
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let tasks = workload::spawn(&files, tasks, 64, 0x516, &stop, &progress);
        let out = during.await;
        stop.store(true, Relaxed);
        for t in tasks {
            t.await.expect("load task");
        }
        drop(files);
        idle().await;
        let errors = progress.errors.lock().unwrap();
        assert!(
            errors.is_empty(),
            "{name}: {} wrong results, e.g. {:#?}",
            errors.len(),
            &errors[..errors.len().min(10)]
        );
        let requests = progress.requests.load(Relaxed);
        assert!(requests > 0, "{name}: the load made no request");
        println!("  ({requests} requests of the load, all right)");
        out
    }))
}

fn an_earlier_handler_on_our_signal_still_sees_signals_not_ours(signo: i32) {
    // Before aiofs starts: the application's handler alone.
    assert!(sigqueue(signo, TAG));
    wait_seen(1);

    // The first request starts aiofs (with the signal notifier, Tokio's stream
    // for the number): the action on the number is no longer the application's.
    runtime().block_on(async {
        let file = aiofs::File::from_std(tempfile::tempfile().expect("tempfile"));
        let (res, _) = file.write_all_at(b"start".to_vec(), 0).await;
        res.expect("first request");
    });
    let (handler, flags) = action(signo);
    assert_ne!(
        handler, app_handler as SigAction as usize,
        "aiofs did not install an action on signal {signo}"
    );
    assert!(flags & libc::SA_RESTART != 0, "no SA_RESTART: {flags:#x}");
    let before = aiofs::stats();
    let other_before = APP_OTHER.load(Relaxed);

    // The application queues its own signals on the number, in bursts (well
    // under RLIMIT_SIGPENDING), from a thread of its own, while the load runs.
    with_load("the application's signals", 8, async move {
        let sender = tokio::task::spawn_blocking(move || {
            for burst in (1..APP_SIGNALS).step_by(100) {
                for i in burst..(burst + 100).min(APP_SIGNALS) {
                    assert!(sigqueue(signo, TAG | i), "sigqueue {i}");
                }
                wait_seen((burst + 100).min(APP_SIGNALS));
                wait_completions(100);
            }
        });
        sender.await.expect("the sender thread");
    });
    // Every one exactly once.
    for i in 0..APP_SIGNALS {
        assert_eq!(seen(i), 1, "the application's signal {i}");
    }
    let after = aiofs::stats();
    assert!(
        after.completed - before.completed > 1000,
        "too little I/O during the signals: {before:?} → {after:?}"
    );
    println!(
        "  {APP_SIGNALS} signals of the application's, each seen once; its handler also saw {} \
         of aiofs's; {} aiofs requests meanwhile",
        APP_OTHER.load(Relaxed) - other_before,
        after.completed - before.completed
    );
}

fn a_tokio_stream_for_sigusr1_gets_every_raise_during_io() {
    let before = aiofs::stats();
    // Each raise waits for the stream to see the one before: a standard signal
    // is not queued, two raises before a delivery would be one.
    let got = with_load("SIGUSR1 raises", 4, async {
        let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 stream");
        let mut got = 0u64;
        for i in 0..USR1_RAISES {
            // SAFETY: plain libc calls.
            assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) }, 0);
            let what = format!("SIGUSR1 raise {i}");
            if bounded(&what, 10, usr1.recv()).await.is_some() {
                got += 1;
            }
            let completed = aiofs::stats().completed;
            bounded("10 completions", 10, async {
                while aiofs::stats().completed < completed + 10 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
        }
        got
    });
    assert_eq!(got, USR1_RAISES);
    let after = aiofs::stats();
    println!(
        "  {got} SIGUSR1 raises received; {} aiofs requests meanwhile",
        after.completed - before.completed
    );
}

fn main() {
    let signo = signo();
    // The first thing the process does.
    install_app_handler(signo);
    let started = Instant::now();
    println!("\nrunning 2 tests");
    let t = Instant::now();
    let name = "an_earlier_handler_on_our_signal_still_sees_signals_not_ours";
    an_earlier_handler_on_our_signal_still_sees_signals_not_ours(signo);
    println!("test {name} ... ok ({:.2?})", t.elapsed());
    let t = Instant::now();
    let name = "a_tokio_stream_for_sigusr1_gets_every_raise_during_io";
    a_tokio_stream_for_sigusr1_gets_every_raise_during_io();
    println!("test {name} ... ok ({:.2?})", t.elapsed());
    println!(
        "\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        started.elapsed().as_secs_f64()
    );
}
