//! Completion signals do not interrupt the application's blocking calls: aiofs's
//! action on its signal is `SA_RESTART`, so a thread blocked in `read` on an
//! empty pipe, or in `write` on a full one, while thousands of completions are
//! handled *on that very thread*, never sees `ErrorKind::Interrupted`; nor does
//! a thread doing many `std` file reads. And no aiofs call returns
//! `Interrupted`.
//!
//! To make the completions land on those threads, the main thread blocks the
//! signal before any other thread exists (every thread inherits the mask: the
//! runtime's, aiofs's; glibc's AIO threads block every signal) and only the
//! three test threads unblock it. A control at the end shows that the set-up
//! can see an interruption: with `SA_RESTART` taken off the action, the same
//! blocked `read` and `write` are interrupted.
//!
//! Process-wide state (signal mask, signal action): its own binary,
//! `harness = false`. The notifier and the signal number come from
//! `AIOFS_NOTIFIER` / `AIOFS_SIGNAL`.

mod support;

use std::fs::File as StdFile;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use support::workload::{self, Files, Progress};
use support::{bounded, idle};

/// Completions to handle while the test threads block.
const COMPLETIONS: u64 = 20_000;

/// `Interrupted` errors seen by the pipe reader, the pipe writer, the file reader.
static READ_EINTR: AtomicU64 = AtomicU64::new(0);
static WRITE_EINTR: AtomicU64 = AtomicU64::new(0);
static FILE_EINTR: AtomicU64 = AtomicU64::new(0);
/// Set once the test threads unblocked the signal.
static READY: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

/// aiofs's signal: `AIOFS_SIGNAL`, or its default `SIGRTMIN() + 6`.
fn signo() -> i32 {
    match std::env::var("AIOFS_SIGNAL") {
        Ok(v) => v.trim().parse().expect("AIOFS_SIGNAL is not a number"),
        Err(_) => libc::SIGRTMIN() + 6,
    }
}

fn signal_notifier() -> bool {
    std::env::var("AIOFS_NOTIFIER").is_ok_and(|v| v.trim().eq_ignore_ascii_case("signal"))
}

/// Blocks (`SIG_BLOCK`) or unblocks (`SIG_UNBLOCK`) `signo` in this thread.
fn mask(how: libc::c_int, signo: i32) {
    // SAFETY: plain libc calls on a local, initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        assert_eq!(libc::pthread_sigmask(how, &set, std::ptr::null_mut()), 0);
    }
}

/// A pipe: (read end, write end), blocking, close-on-exec.
fn pipe() -> (StdFile, StdFile) {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a valid array of two ints; on success both are open and
    // owned by nobody else.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (
            StdFile::from(OwnedFd::from_raw_fd(fds[0])),
            StdFile::from(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

/// Fills the pipe behind `wr` (shrunk to one page) so that the next write blocks.
fn fill(wr: &StdFile) {
    use std::os::fd::AsRawFd;
    let fd = wr.as_raw_fd();
    // SAFETY: fcntl on an open descriptor we own.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, 4096);
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
        let mut w = wr;
        while w.write(&[0u8; 512]).is_ok() {}
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags), 0);
    }
}

/// The test threads: each unblocks the signal, then sits in its blocking call
/// until told to stop, counting `Interrupted`.
fn spawn_blocked_threads(
    signo: i32,
    mut read_end: StdFile,
    mut write_end: StdFile,
    data: std::path::PathBuf,
) -> Vec<std::thread::JoinHandle<()>> {
    let reader = std::thread::spawn(move || {
        mask(libc::SIG_UNBLOCK, signo);
        READY.fetch_add(1, Relaxed);
        let mut byte = [0u8; 1];
        loop {
            match read_end.read(&mut byte) {
                Ok(_) => return, // the end: one byte, or EOF
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    READ_EINTR.fetch_add(1, Relaxed);
                }
                Err(e) => panic!("pipe read: {e}"),
            }
        }
    });
    let writer = std::thread::spawn(move || {
        mask(libc::SIG_UNBLOCK, signo);
        READY.fetch_add(1, Relaxed);
        loop {
            match write_end.write(&[1u8]) {
                Ok(_) if STOP.load(Relaxed) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    WRITE_EINTR.fetch_add(1, Relaxed);
                }
                Err(e) => panic!("pipe write: {e}"),
            }
        }
    });
    let file_reader = std::thread::spawn(move || {
        mask(libc::SIG_UNBLOCK, signo);
        READY.fetch_add(1, Relaxed);
        let mut file = StdFile::open(&data).expect("open");
        let mut buf = vec![0u8; 4096];
        for n in 0u64.. {
            if STOP.load(Relaxed) {
                break;
            }
            if n % 64 == 63 {
                // Leave the CPU to the load now and then.
                std::thread::sleep(Duration::from_micros(200));
            }
            match file.read(&mut buf) {
                Ok(0) => {
                    std::io::Seek::rewind(&mut file).expect("rewind");
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    FILE_EINTR.fetch_add(1, Relaxed);
                }
                Err(e) => panic!("file read: {e}"),
            }
        }
    });
    vec![reader, writer, file_reader]
}

/// The signal's action flags, and sets them (same handler).
fn flags(signo: i32, set: Option<i32>) -> i32 {
    // SAFETY: `sigaction` with valid pointers; the handler is left as it is.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signo, std::ptr::null(), &mut act), 0);
        let old = act.sa_flags;
        if let Some(f) = set {
            act.sa_flags = f;
            assert_eq!(libc::sigaction(signo, &act, std::ptr::null_mut()), 0);
        }
        old
    }
}

fn completions_do_not_interrupt_blocking_calls_on_the_threads_that_handle_them(signo: i32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("std-data");
    std::fs::write(&data, vec![7u8; 1 << 20]).expect("write");
    let (read_end, mut feed) = pipe();
    let (mut drain, write_end) = pipe();
    fill(&write_end);
    let threads = spawn_blocked_threads(signo, read_end, write_end, data);
    while READY.load(Relaxed) < 3 {
        std::thread::yield_now();
    }

    // Created after the mask: the runtime's threads (and aiofs's, started from
    // them) block the signal.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let before = aiofs::stats();
    let progress = Arc::new(Progress::default());
    rt.block_on(bounded("the load", 60, async {
        let files = Files::create(dir.path(), 4).await;
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = workload::spawn(&files, 8, 64, 0xE1A7, &stop, &progress);
        while aiofs::stats().completed < before.completed + COMPLETIONS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.store(true, Relaxed);
        for t in tasks {
            t.await.expect("load task");
        }
        drop(files);
        idle().await;
    }));
    // A completion found by a safety-net scan may be counted a moment before
    // its signal is handled: let the signal count catch up (bounded).
    let behind = || {
        let s = aiofs::stats();
        !signal_notifier() && s.signals - before.signals < s.completed - before.completed
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while behind() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let after = aiofs::stats();
    let errors = progress.errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} wrong results, e.g. {:#?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    drop(errors);

    // aiofs's action restarts, and the completions were handled on the test
    // threads (nobody else can take the signal).
    let f = flags(signo, None);
    assert!(f & libc::SA_RESTART != 0, "no SA_RESTART: {f:#x}");
    let handled = after.signals - before.signals;
    if signal_notifier() {
        assert!(handled > 0, "no wake-up of the signal stream: {after:?}");
    } else {
        assert!(
            handled >= after.completed - before.completed,
            "fewer signals than completions: {before:?} → {after:?}"
        );
    }
    assert_eq!(READ_EINTR.load(Relaxed), 0, "the pipe read was interrupted");
    assert_eq!(
        WRITE_EINTR.load(Relaxed),
        0,
        "the pipe write was interrupted"
    );
    assert_eq!(FILE_EINTR.load(Relaxed), 0, "a file read was interrupted");
    println!(
        "  {} completions, {handled} signals handled on the blocked threads, no interruption",
        after.completed - before.completed
    );

    // The control: without SA_RESTART the same calls are interrupted by a
    // signal on the number (sent as the application would, `SI_QUEUE`: aiofs
    // ignores it, or scans).
    flags(signo, Some(f & !libc::SA_RESTART));
    let deadline = Instant::now() + Duration::from_secs(10);
    // The kernel keeps sending a process-wide signal to the same willing thread
    // (`curr_target`), so one of the two blocked calls may see them all: one
    // interrupted call shows the check works.
    while READ_EINTR.load(Relaxed) == 0 && WRITE_EINTR.load(Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "control: no interruption without SA_RESTART (read {}, write {})",
            READ_EINTR.load(Relaxed),
            WRITE_EINTR.load(Relaxed)
        );
        let value = libc::sigval {
            sival_ptr: std::ptr::null_mut(),
        };
        // SAFETY: plain libc calls on valid arguments.
        assert_eq!(unsafe { libc::sigqueue(libc::getpid(), signo, value) }, 0);
        std::thread::sleep(Duration::from_millis(1));
    }
    flags(signo, Some(f));

    STOP.store(true, Relaxed);
    feed.write_all(b"q").expect("wake the reader");
    let mut sink = vec![0u8; 8192];
    // Unblock the writer: drain until it has seen STOP and exited (it closes
    // the write end: EOF).
    while drain.read(&mut sink).expect("drain") > 0 {}
    for t in threads {
        t.join().expect("a test thread panicked");
    }
}

fn main() {
    let signo = signo();
    // Before any other thread exists: every thread inherits the blocked mask.
    mask(libc::SIG_BLOCK, signo);
    let started = Instant::now();
    println!("\nrunning 1 test");
    completions_do_not_interrupt_blocking_calls_on_the_threads_that_handle_them(signo);
    println!(
        "test completions_do_not_interrupt_blocking_calls_on_the_threads_that_handle_them ... ok"
    );
    println!(
        "\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        started.elapsed().as_secs_f64()
    );
}
