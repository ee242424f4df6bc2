//! A child forked without `exec` that uses aiofs (issue 10, item 6, from the
//! code): it has no notifier thread and a copy of glibc's AIO state, so its
//! first request used to hang; and its copy of the signal action writes into
//! the pipe it shares with the parent. The first aiofs request in such a
//! child must fail at once with `ErrorKind::Unsupported` (the message naming
//! `fork`), and nothing the child does may reach the parent's driver (its
//! `stats().stale_tokens` does not grow).
//!
//! `a_forked_child_gets_unsupported_and_the_parent_sees_nothing_of_it` and
//! `a_child_forked_after_glibc_threads_left_gets_unsupported_and_the_parent_sees_nothing_of_it`:
//! the parent runs reads and forks, at once or after 1.5 s without a request
//! (glibc's idle AIO threads have left by then, so glibc starts a new one in
//! the child and the child's request runs); the child makes one read (from
//! `futures::executor::block_on`, no runtime to build after the fork) and
//! `_exit`s with a code saying what it got. The parent waits at most 10 s
//! (and kills a child that hangs), checks its stale tokens, and goes on with
//! verified reads.
//!
//! Children and process-wide counters: the test runs in a child process of
//! this binary (`support::in_child`). Reads go through AIO; the notifier comes
//! from `AIOFS_NOTIFIER`.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aiofs::File;
use support::{aio_only, in_child, open_rw, pattern_bytes, serial, settle};

const BLOCK: usize = 4096;

/// The child's exit codes.
const GOT_UNSUPPORTED: i32 = 0;
const GOT_DATA: i32 = 1;
const GOT_OTHER_ERROR: i32 = 2;
const GOT_UNSUPPORTED_WITHOUT_FORK: i32 = 3;

/// The forked child: one read, then `_exit` with what it got. Never returns.
fn child(file: &File) -> ! {
    let (res, _) = futures::executor::block_on(file.read_at(Vec::with_capacity(BLOCK), 0));
    let code = match res {
        Ok(_) => GOT_DATA,
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            if e.to_string().to_ascii_lowercase().contains("fork") {
                GOT_UNSUPPORTED
            } else {
                GOT_UNSUPPORTED_WITHOUT_FORK
            }
        }
        Err(_) => GOT_OTHER_ERROR,
    };
    // SAFETY: ends the forked child at once, without running the parent's
    // exit handlers.
    unsafe { libc::_exit(code) }
}

/// Waits for `pid` for at most `limit`; kills it if it is still running then.
/// `Ok(exit code)`, or `Err` saying what happened.
fn wait_child(pid: libc::pid_t, limit: Duration) -> Result<i32, String> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is valid for writes.
        let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(got >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if got == pid {
            if libc::WIFEXITED(status) {
                return Ok(libc::WEXITSTATUS(status));
            }
            return Err(format!("the child ended with wait status {status:#x}"));
        }
        if Instant::now() >= deadline {
            // SAFETY: `pid` is our child, still running.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return Err(format!(
                "the child's first aiofs request hung: still running after {limit:?} (killed)"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

async fn read_check(file: &File, pos: u64) {
    let (res, buf) = file.read_at(Vec::with_capacity(BLOCK), pos).await;
    assert_eq!(res.expect("read"), BLOCK, "parent read at {pos}");
    assert!(buf == pattern_bytes(pos, BLOCK), "parent read at {pos}");
}

/// Forked right after the parent's reads, while glibc's AIO threads wait
/// for work (they leave after 1 s idle): the child's request is queued for
/// threads that do not exist in the child.
#[test]
fn a_forked_child_gets_unsupported_and_the_parent_sees_nothing_of_it() {
    let _serial = serial();
    if !in_child("a_forked_child_gets_unsupported_and_the_parent_sees_nothing_of_it") {
        return;
    }
    fork_and_check(Duration::ZERO);
}

/// Forked after 1.5 s without a request, when glibc's idle AIO threads have
/// left: glibc starts a new one in the child, the read runs, and the child's
/// copy of the signal action handles its completion signal.
#[test]
fn a_child_forked_after_glibc_threads_left_gets_unsupported_and_the_parent_sees_nothing_of_it() {
    let _serial = serial();
    if !in_child(
        "a_child_forked_after_glibc_threads_left_gets_unsupported_and_the_parent_sees_nothing_of_it",
    ) {
        return;
    }
    fork_and_check(Duration::from_millis(1500));
}

fn fork_and_check(quiet: Duration) {
    aio_only();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, 1 << 20)).expect("write");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let file = Arc::new(open_rw(&path).await);
        for i in 0..64 {
            read_check(&file, i * BLOCK as u64).await;
        }
        settle().await;
        tokio::time::sleep(quiet).await;
        let before = aiofs::stats();

        // SAFETY: the child only makes the request under test and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            child(&file);
        }
        let outcome = tokio::task::spawn_blocking(move || wait_child(pid, Duration::from_secs(10)))
            .await
            .expect("wait task");
        // Let the parent's notifier read anything the child may have written
        // into the pipe they share (it reads every 250 ms at the latest).
        tokio::time::sleep(Duration::from_millis(600)).await;
        let after = aiofs::stats();

        // The parent keeps working.
        for i in 0..64 {
            read_check(&file, (64 + i) * BLOCK as u64).await;
        }
        settle().await;

        let what = match outcome {
            Ok(GOT_UNSUPPORTED) => None,
            Ok(GOT_DATA) => Some("the child's read succeeded".to_owned()),
            Ok(GOT_OTHER_ERROR) => Some("the child got an error of another kind".to_owned()),
            Ok(GOT_UNSUPPORTED_WITHOUT_FORK) => {
                Some("the child got Unsupported without a word of fork".to_owned())
            }
            Ok(code) => Some(format!("the child exited with {code}")),
            Err(e) => Some(e),
        };
        let stale = after.stale_tokens - before.stale_tokens;
        println!("child: {what:?}; parent's stale tokens meanwhile: +{stale}; {after:?}");
        assert!(
            what.is_none(),
            "a child forked without exec: {} (want ErrorKind::Unsupported naming fork); \
             the parent saw {stale} stale tokens meanwhile",
            what.unwrap_or_default()
        );
        assert_eq!(
            stale, 0,
            "the child's signal action wrote into the parent's pipe: {after:?}"
        );
    });
}
