//! `block_completion_signal` when its `signalfd` cannot be opened (issue 10,
//! item 6, from the code).
//!
//! It used to block the signal in the calling thread first and open the
//! `signalfd` afterwards: when the open failed (`EMFILE`), it returned the
//! error but left the signal blocked, a mask every thread started from there
//! inherits, and completions then piled up unseen. It must open the
//! `signalfd` first and leave the mask untouched when that fails.
//!
//! `a_failed_block_completion_signal_leaves_the_signal_mask_untouched`: the
//! driver runs (pipe notifier), every descriptor number below
//! `RLIMIT_NOFILE` is taken, `block_completion_signal` is called: if it fails,
//! the calling thread's mask must not hold the completion signal (and
//! requests still complete); if it succeeds (a `signalfd` was open already),
//! completions must come through it.
//!
//! Process-wide state (a resource limit, signal masks, the `Config`): its own
//! binary, `harness = false`, so that no other thread of ours exists. It
//! installs `Notifier::Pipe` (`block_completion_signal` is for the pipe
//! notifier), so both of CI's runs cover it.

mod support;

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use aiofs::{Config, File, Notifier};
use support::process::set_soft_limit;

/// Whether the calling thread blocks `signo`.
fn blocked(signo: i32) -> bool {
    // SAFETY: an all-zero sigset is valid storage for `pthread_sigmask` to fill.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: SIG_BLOCK with a null set only reads the mask into `old`.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "pthread_sigmask");
    // SAFETY: `old` was filled above.
    unsafe { libc::sigismember(&old, signo) == 1 }
}

/// One request, from `futures::executor::block_on` (the pipe notifier needs no
/// runtime), bounded.
fn request(file: &File, tag: u8) {
    let (tx, rx) = std::sync::mpsc::channel();
    let fut = file.write_at(vec![tag; 512], 0);
    std::thread::scope(|s| {
        // A watchdog ends the process if the request hangs. It inherits this
        // thread's mask, so it changes nothing about where signals go.
        s.spawn(move || {
            if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                eprintln!(
                    "a request did not complete within 10 s: {:?}",
                    aiofs::stats()
                );
                std::process::exit(1);
            }
        });
        let (res, _) = futures::executor::block_on(fut);
        tx.send(()).expect("tell the watchdog");
        assert_eq!(res.expect("write_at"), 512);
    });
}

fn main() {
    let signo = libc::SIGRTMIN() + 6;
    Config::new()
        .notifier(Notifier::Pipe)
        .signal(signo)
        .install()
        .expect("install the Config");
    let file = File::from_std(tempfile::tempfile().expect("tempfile"));
    // The driver runs: the signalfd is opened by block_completion_signal.
    request(&file, 1);
    assert!(!blocked(signo), "precondition: the signal is not blocked");

    // Take every descriptor number below a lowered RLIMIT_NOFILE.
    let highest = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .expect("open descriptors");
    let old_limit = set_soft_limit(libc::RLIMIT_NOFILE, highest + 4);
    let mut fillers = Vec::new();
    loop {
        // SAFETY: a plain open of a constant path.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "open /dev/null: {e}");
            break;
        }
        // SAFETY: `fd` is new and ours.
        fillers.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let res = aiofs::block_completion_signal();
    let now_blocked = blocked(signo);
    drop(fillers);
    set_soft_limit(libc::RLIMIT_NOFILE, old_limit);

    match &res {
        Err(e) => {
            println!("block_completion_signal with no descriptor left: {e}");
            assert!(
                !now_blocked,
                "block_completion_signal failed ({e}) but left the completion signal blocked \
                 in the calling thread: completions would pile up unseen"
            );
            // Requests still complete (through the signal action).
            request(&file, 2);
        }
        Ok(()) => {
            // The signalfd was open already: completions come through it.
            assert!(
                now_blocked,
                "block_completion_signal succeeded but did not block"
            );
            let before = aiofs::stats().signalfd_signals;
            request(&file, 3);
            assert!(
                aiofs::stats().signalfd_signals > before,
                "block_completion_signal succeeded, but completions do not come through a \
                 signalfd: {:?}",
                aiofs::stats()
            );
        }
    }
    println!("test a_failed_block_completion_signal_leaves_the_signal_mask_untouched ... ok");
    println!("\ntest result: ok. 1 passed; 0 failed");
}
