//! Forged completion signals: while thousands of real requests run, another
//! thread queues signals on the crate's signal number to our own process, the
//! way glibc does (`rt_sigqueueinfo`, `SI_ASYNCIO`) but with random values, with
//! stale tokens replayed from earlier real completions, with guesses at the
//! tokens of requests still in flight, and also with `sigqueue` (`SI_QUEUE`) and
//! `kill` (`SI_USER`).
//!
//! A token is only a hint: every result must still be right, nothing may crash
//! or hang, and afterwards nothing is left in flight. With the pipe notifier the
//! forged tokens must be seen and counted as stale.
//!
//! One test: it changes the process's signal action for a while. The notifier
//! and the signal number come from `AIOFS_NOTIFIER` and `AIOFS_SIGNAL`.

#![cfg(all(target_os = "linux", target_pointer_width = "64"))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiofs::File;
use support::{Rng, pattern_bytes, serial, settle};

const FILES: u64 = 4;
const FILE_LEN: u64 = 1 << 20;
/// Writes go here, of the bytes already there: the content never changes.
const SCRATCH: u64 = 768 << 10;
const MAX_LEN: u64 = 8192;
/// The long reads, one after another.
const SLOW_LEN: usize = 2 << 20;
const SLOW_READS: usize = 64;
/// More slots than the table ever uses here (in flight, queued and done).
const MAX_SLOTS: u64 = 4096;
/// Marks our forged `SI_ASYNCIO` signals (glibc sends `si_errno = 0`), so that
/// the capture below keeps real tokens only.
const FORGED_ERRNO: i32 = 0x5EED;

fn small() -> bool {
    std::env::var("AIOFS_TEST_SMALL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The crate's signal: `AIOFS_SIGNAL`, or its default `SIGRTMIN() + 6`.
fn signo() -> i32 {
    match std::env::var("AIOFS_SIGNAL") {
        Ok(v) => v.trim().parse().expect("AIOFS_SIGNAL is not a number"),
        Err(_) => libc::SIGRTMIN() + 6,
    }
}

fn pipe_notifier() -> bool {
    match std::env::var("AIOFS_NOTIFIER") {
        Ok(v) => matches!(v.trim().to_ascii_lowercase().as_str(), "" | "pipe"),
        Err(_) => true,
    }
}

fn base(k: u64) -> u64 {
    k << 40
}

// ---------------------------------------------------------------------------
// Forging.

/// Queues `signo` to our own process as glibc's AIO completion does:
/// `rt_sigqueueinfo` with `si_code = SI_ASYNCIO` and `value` in `si_value`.
/// (A process may send itself any negative `si_code`.) Returns false if the
/// signal could not be queued.
fn forge_asyncio(signo: i32, value: usize) -> bool {
    let mut info = siginfo(signo, libc::SI_ASYNCIO, value);
    // SAFETY: `info` is a valid, 8-byte aligned, 128-byte `siginfo_t` the kernel
    // only reads.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigqueueinfo,
            libc::getpid(),
            signo,
            info.as_mut_ptr(),
        )
    };
    ret == 0
}

/// The bytes of a `siginfo_t` (x86_64 / 64-bit Linux: 128 bytes; `si_signo` at
/// 0, `si_errno` at 4, `si_code` at 8, `si_pid` at 16, `si_uid` at 20,
/// `si_value` at 24).
fn siginfo(signo: i32, code: i32, value: usize) -> [u64; 16] {
    let mut words = [0u64; 16];
    let mut bytes = [0u8; 128];
    bytes[0..4].copy_from_slice(&signo.to_ne_bytes());
    bytes[4..8].copy_from_slice(&FORGED_ERRNO.to_ne_bytes());
    bytes[8..12].copy_from_slice(&code.to_ne_bytes());
    // SAFETY: plain getters.
    let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
    bytes[16..20].copy_from_slice(&pid.to_ne_bytes());
    bytes[20..24].copy_from_slice(&uid.to_ne_bytes());
    bytes[24..32].copy_from_slice(&value.to_ne_bytes());
    for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_ne_bytes(chunk.try_into().unwrap());
    }
    words
}

/// Our layout is the one `libc` reads.
#[test]
fn siginfo_layout_matches_libc() {
    assert_eq!(std::mem::size_of::<libc::siginfo_t>(), 128);
    let words = siginfo(40, libc::SI_ASYNCIO, 0xDEAD_BEEF_1234);
    // SAFETY: 128 initialised, 8-byte aligned bytes; `siginfo_t` is plain data.
    let info = unsafe { std::mem::transmute::<[u64; 16], libc::siginfo_t>(words) };
    assert_eq!(info.si_signo, 40);
    assert_eq!(info.si_errno, FORGED_ERRNO);
    assert_eq!(info.si_code, libc::SI_ASYNCIO);
    // SAFETY: the `_rt` member is the one we filled.
    unsafe {
        assert_eq!(info.si_pid(), libc::getpid());
        assert_eq!(info.si_uid(), libc::getuid());
        assert_eq!(info.si_value().sival_ptr as usize, 0xDEAD_BEEF_1234);
    }
}

fn forge_sigqueue(signo: i32, value: usize) -> bool {
    let value = libc::sigval {
        sival_ptr: value as *mut libc::c_void,
    };
    // SAFETY: plain libc call on valid arguments.
    unsafe { libc::sigqueue(libc::getpid(), signo, value) == 0 }
}

fn forge_kill(signo: i32) -> bool {
    // SAFETY: plain libc call on valid arguments.
    unsafe { libc::kill(libc::getpid(), signo) == 0 }
}

// ---------------------------------------------------------------------------
// Capturing real tokens, to replay them later as stale ones.

const SEEN_LEN: usize = 1024;
static SEEN: [AtomicUsize; SEEN_LEN] = [const { AtomicUsize::new(0) }; SEEN_LEN];
static SEEN_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The action we wrapped (the crate's, or Tokio's with the signal notifier).
static PREV: AtomicUsize = AtomicUsize::new(0);

type SigAction = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Records the `si_value` of real completion signals, then runs the wrapped
/// action. Async-signal-safe: atomics only; `errno` untouched.
extern "C" fn capture(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` action;
    // `si_value` is filled for queued signals (and harmless to read otherwise).
    unsafe {
        if let Some(info) = info.as_ref()
            && info.si_code == libc::SI_ASYNCIO
            && info.si_errno != FORGED_ERRNO
        {
            let i = SEEN_COUNT.fetch_add(1, Relaxed);
            SEEN[i % SEEN_LEN].store(info.si_value().sival_ptr as usize, Relaxed);
        }
    }
    let prev = PREV.load(Relaxed);
    if prev != 0 {
        // SAFETY: `prev` is the `sa_sigaction` of an `SA_SIGINFO` action, saved by
        // `Capture::install`.
        let prev = unsafe { std::mem::transmute::<usize, SigAction>(prev) };
        prev(sig, info, ctx);
    }
}

/// Wraps the signal's current action with [`capture`]; restores it on drop.
struct Capture {
    signo: i32,
    old: libc::sigaction,
}

impl Capture {
    fn install(signo: i32) -> Capture {
        // SAFETY: `sigaction` with valid pointers; the new action chains to the
        // old one, which stays registered.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(signo, std::ptr::null(), &mut old), 0);
            assert!(
                old.sa_flags & libc::SA_SIGINFO != 0
                    && old.sa_sigaction != libc::SIG_DFL
                    && old.sa_sigaction != libc::SIG_IGN,
                "signal {signo} has no SA_SIGINFO action installed by the driver"
            );
            PREV.store(old.sa_sigaction, Relaxed);
            let mut new = old;
            new.sa_sigaction = capture as SigAction as usize;
            assert_eq!(libc::sigaction(signo, &new, std::ptr::null_mut()), 0);
            Capture { signo, old }
        }
    }

    /// The newest real token seen, or 0.
    fn newest() -> usize {
        match SEEN_COUNT.load(Relaxed) {
            0 => 0,
            count => SEEN[(count - 1) % SEEN_LEN].load(Relaxed),
        }
    }

    /// A real token seen earlier, if any.
    fn seen(rng: &mut Rng) -> Option<usize> {
        let n = SEEN_COUNT.load(Relaxed).min(SEEN_LEN);
        (n > 0).then(|| SEEN[rng.below(n as u64) as usize].load(Relaxed))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: puts back the action saved by `install`.
        unsafe {
            libc::sigaction(self.signo, &self.old, std::ptr::null_mut());
        }
    }
}

// ---------------------------------------------------------------------------
// The forger thread.

#[derive(Default, Debug)]
struct Forged {
    sent: AtomicU64,
    failed: AtomicU64,
    /// `SI_ASYNCIO` signals queued (each must reach the pipe as a token).
    asyncio: AtomicU64,
    /// `SI_ASYNCIO` signals whose value names no slot that can exist.
    surely_stale: AtomicU64,
    replayed: AtomicU64,
    guessed: AtomicU64,
}

fn forger(signo: i32, target: u64, forged: Arc<Forged>, stop: Arc<AtomicBool>) {
    let mut rng = Rng::new(0xF0F0);
    let half = usize::BITS / 2;
    while forged.sent.load(Relaxed) < target && !stop.load(Relaxed) {
        // Bursts of 25, then a pause: well below the signal queue's limit.
        for _ in 0..25 {
            let (ok, asyncio, surely_stale) = match rng.below(20) {
                // A real token from an earlier completion: stale by now (or, if
                // its signal is still on its way, an early but true completion).
                0..=5 => {
                    let v = Capture::seen(&mut rng).unwrap_or(0);
                    forged.replayed.fetch_add(1, Relaxed);
                    (forge_asyncio(signo, v), true, false)
                }
                // A guess at a live token. The table hands out generations one
                // per submission and reuses the most recently freed slot first:
                // in a chain of requests one after another (the long reads), the
                // next request has the slot of the newest completion seen and the
                // next generation. Otherwise, try a generation just above the
                // newest seen with a random slot.
                6..=9 => {
                    let newest = Capture::newest();
                    let generation = newest >> half;
                    let index = if rng.below(2) == 0 {
                        newest & ((1 << half) - 1)
                    } else {
                        rng.below(MAX_SLOTS) as usize
                    };
                    let j = 1 + rng.below(2) as usize;
                    forged.guessed.fetch_add(1, Relaxed);
                    (
                        forge_asyncio(signo, ((generation + j) << half) | index),
                        true,
                        false,
                    )
                }
                // Random values whose index part no slot can have.
                10..=12 => {
                    let v = rng.next_u64() as usize | (1 << 24);
                    (forge_asyncio(signo, v), true, true)
                }
                13 => {
                    let v = [0, usize::MAX, 1 << half, (1 << half) - 1][rng.below(4) as usize];
                    (forge_asyncio(signo, v), true, v == 0 || v == usize::MAX)
                }
                // Not glibc's `si_code`: the pipe notifier must ignore them; the
                // signal notifier just scans.
                14..=16 => {
                    let v = Capture::seen(&mut rng).unwrap_or(rng.next_u64() as usize);
                    (forge_sigqueue(signo, v), false, false)
                }
                _ => (forge_kill(signo), false, false),
            };
            if ok {
                forged.sent.fetch_add(1, Relaxed);
                forged.asyncio.fetch_add(asyncio as u64, Relaxed);
                forged.surely_stale.fetch_add(surely_stale as u64, Relaxed);
            } else {
                forged.failed.fetch_add(1, Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------
// The real requests.

/// One random request, checked. `Err` describes a wrong result.
async fn request(files: &[File], rng: &mut Rng) -> Result<(), String> {
    let k = rng.below(FILES);
    let file = &files[k as usize];
    let len = 1 + rng.below(MAX_LEN) as usize;
    match rng.below(10) {
        0..=6 => {
            let pos = rng.below(FILE_LEN + MAX_LEN);
            let (res, buf) = file.read_at(Vec::with_capacity(len), pos).await;
            let n = res.map_err(|e| format!("read_at({len}, {pos}) on file {k}: {e}"))?;
            let avail = FILE_LEN.saturating_sub(pos) as usize;
            if n > len.min(avail) || buf.len() != n || (avail > 0 && n == 0) {
                return Err(format!(
                    "read_at({len}, {pos}) on file {k}: count {n}, buffer {} bytes, {avail} left",
                    buf.len()
                ));
            }
            if buf != pattern_bytes(base(k) + pos, n) {
                return Err(format!("read_at({len}, {pos}) on file {k}: wrong data"));
            }
        }
        7..=8 => {
            let pos = rng.below(FILE_LEN - len as u64 + 1);
            let (res, buf) = file.read_exact_at(Vec::with_capacity(len), pos).await;
            res.map_err(|e| format!("read_exact_at({len}, {pos}) on file {k}: {e}"))?;
            if buf != pattern_bytes(base(k) + pos, len) {
                return Err(format!(
                    "read_exact_at({len}, {pos}) on file {k}: wrong data"
                ));
            }
        }
        _ => {
            let pos = SCRATCH + rng.below(FILE_LEN - SCRATCH - len as u64 + 1);
            let (res, _) = file
                .write_all_at(pattern_bytes(base(k) + pos, len), pos)
                .await;
            res.map_err(|e| format!("write_all_at({len}, {pos}) on file {k}: {e}"))?;
        }
    }
    Ok(())
}

#[test]
fn forged_completion_signals_are_ignored() {
    let _serial = serial();
    let signo = signo();
    let concurrent: u64 = if small() { 200 } else { 2_000 };
    let target: u64 = if small() { 2_000 } else { 20_000 };
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files = Vec::new();
        for k in 0..FILES {
            let path = dir.path().join(format!("data{k}"));
            std::fs::write(&path, pattern_bytes(base(k), FILE_LEN as usize)).expect("write");
            let file = File::options()
                .read(true)
                .write(true)
                .open(&path)
                .await
                .expect("open");
            files.push(file);
        }
        let files = Arc::new(files);
        let slow_want = Arc::new(pattern_bytes(base(FILES), SLOW_LEN));
        let slow_path = dir.path().join("slow");
        std::fs::write(&slow_path, &slow_want[..]).expect("write");
        let slow = Arc::new(File::open(&slow_path).await.expect("open"));

        // The driver (and its signal action) starts with the first request: only
        // then may we send the signal, whose default action kills the process.
        request(&files, &mut Rng::new(7))
            .await
            .expect("first request");
        let capture = Capture::install(signo);
        let before = aiofs::stats();

        let forged = Arc::new(Forged::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (forged, stop) = (Arc::clone(&forged), Arc::clone(&stop));
            std::thread::spawn(move || forger(signo, target, forged, stop))
        };

        // Rounds of `concurrent` requests at once, and rounds of long reads, until
        // the forger is done.
        let errors = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut rounds = 0u64;
        let deadline = Instant::now() + Duration::from_secs(if small() { 120 } else { 20 });
        while rounds == 0 || !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "not done in time: {rounds} rounds, {forged:?}, {:?}",
                aiofs::stats()
            );
            let tasks: Vec<_> = if rounds.is_multiple_of(2) {
                // Many requests of every kind.
                (0..concurrent)
                    .map(|i| {
                        let files = Arc::clone(&files);
                        let errors = Arc::clone(&errors);
                        let mut rng = Rng::new((rounds << 32) | i);
                        tokio::spawn(async move {
                            if let Err(e) = request(&files, &mut rng).await {
                                errors.lock().unwrap().push(e);
                            }
                        })
                    })
                    .collect()
            } else {
                // Long reads one after another: each stays in progress for a
                // while, under a token that is easy to guess.
                let (slow, want) = (Arc::clone(&slow), Arc::clone(&slow_want));
                let errors = Arc::clone(&errors);
                vec![tokio::spawn(async move {
                    for _ in 0..SLOW_READS {
                        let (res, buf) = slow.read_at(Vec::with_capacity(SLOW_LEN), 0).await;
                        match res {
                            Ok(n) if n > 0 && buf.len() == n && buf[..] == want[..n] => {}
                            Ok(n) => errors
                                .lock()
                                .unwrap()
                                .push(format!("long read: {n} bytes, wrong count or data")),
                            Err(e) => errors.lock().unwrap().push(format!("long read: {e}")),
                        }
                    }
                })]
            };
            let all = futures::future::join_all(tasks);
            let Ok(results) = tokio::time::timeout(Duration::from_secs(20), all).await else {
                stop.store(true, Relaxed);
                panic!(
                    "round {rounds}: {concurrent} requests not done within 20 s; {forged:?}, {:?}",
                    aiofs::stats()
                );
            };
            for r in results {
                r.expect("request task panicked");
            }
            rounds += 1;
        }
        stop.store(true, Relaxed);
        thread.join().expect("forger thread");
        // Let the last forged signals arrive before the counters are read.
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop((files, slow));
        settle().await;
        drop(capture);

        let after = aiofs::stats();
        let errors = errors.lock().unwrap();
        assert!(
            errors.is_empty(),
            "{} wrong results, e.g.: {:#?}",
            errors.len(),
            &errors[..errors.len().min(10)]
        );
        assert_eq!(after.in_flight, 0, "{after:?}");
        assert_eq!(after.queued, 0, "{after:?}");
        assert_eq!(after.orphaned, 0, "{after:?}");

        let sent = forged.sent.load(Relaxed);
        assert!(
            sent >= target,
            "only {sent} of {target} forged signals sent: {forged:?}"
        );
        assert!(
            SEEN_COUNT.load(Relaxed) > 0,
            "no real completion signal was seen"
        );
        let stale = after.stale_tokens - before.stale_tokens;
        let overflows = after.pipe_overflows - before.pipe_overflows;
        // Every signal on the number runs the action, under either notifier.
        assert!(
            after.signals - before.signals >= sent,
            "{sent} forged, {before:?} → {after:?}"
        );
        assert!(stale > 0, "no stale token seen: {before:?} → {after:?}");
        if overflows == 0 {
            // Each forged SI_ASYNCIO value went through the pipe; those that
            // name no possible slot were all found stale.
            let asyncio = forged.asyncio.load(Relaxed);
            assert!(
                after.tokens - before.tokens >= asyncio,
                "{asyncio} forged tokens, {before:?} → {after:?}"
            );
            let surely = forged.surely_stale.load(Relaxed);
            assert!(
                stale >= surely,
                "{surely} surely stale tokens forged, {stale} counted: {after:?}"
            );
        }
        if !pipe_notifier() {
            assert!(
                after.stream_wakeups > before.stream_wakeups,
                "{before:?} → {after:?}"
            );
        }
        println!(
            "{rounds} rounds of {concurrent} requests; {forged:?}; {stale} stale tokens, \
             {overflows} pipe overflows, {} scans, in {:?}",
            after.scans - before.scans,
            started.elapsed()
        );
    });
}
