//! Whether the read-only open may be tried on the calling thread (`openat2`
//! with `RESOLVE_CACHED`) is a process-wide switch; a caller's own open must
//! not turn it off (review 5, defect 8).
//!
//! It was turned off for the whole process by the first open `openat2`
//! refused with `EINVAL` or `EPERM`, whatever the reason: `O_TMPFILE` asked
//! read-only, `O_DIRECT` where the filesystem refuses it, `O_NOATIME` on
//! another user's file. Every later open then took the blocking pool.
//!
//! How "on the calling thread" is observed: the runtime has one blocking
//! thread, kept busy; an open that needs it cannot finish within 2 s.
//!
//! - `an_open_openat2_refuses_leaves_the_cached_open_on`: after a read-only
//!   `O_TMPFILE` open (refused, `EINVAL`), a cached path still opens inline;
//! - `a_filter_refusing_openat2_sends_opens_to_the_blocking_pool`: under a
//!   seccomp filter that refuses `openat2` (`EPERM`, as container policies
//!   do), opens and `aiofs::read` still work, on the blocking pool.
//!
//! Each runs in a child process of this binary (`support::in_child`): the
//! switch, and a seccomp filter, last as long as the process.

mod support;

use std::path::Path;
use std::time::Duration;

use support::in_child;

/// Runs `body` on a current-thread runtime whose only blocking thread is
/// kept busy meanwhile; `body` gets the time an inline call may take.
fn with_the_blocking_pool_busy<F, Fut, T>(body: F) -> T
where
    F: FnOnce(Duration) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (release, parked) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let busy = tokio::task::spawn_blocking(move || {
            let _ = started_tx.send(());
            let _ = parked.recv_timeout(Duration::from_secs(30));
        });
        started.await.expect("the blocking thread started");
        let out = body(Duration::from_secs(2)).await;
        release.send(()).expect("release the blocking thread");
        busy.await.expect("the blocking task");
        out
    })
}

/// Whether `File::open(path)` finishes without a blocking-pool thread.
async fn opens_inline(path: &Path, within: Duration) -> bool {
    match tokio::time::timeout(within, aiofs::File::open(path)).await {
        Ok(opened) => {
            opened.expect("File::open");
            true
        }
        Err(_) => false,
    }
}

#[test]
fn an_open_openat2_refuses_leaves_the_cached_open_on() {
    let name = "an_open_openat2_refuses_leaves_the_cached_open_on";
    if !in_child(name) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, b"data").expect("write");
    // First, the control: inline before anything was refused.
    if !with_the_blocking_pool_busy(|within| opens_inline(&path, within)) {
        eprintln!("SKIPPED {name}: openat2 with RESOLVE_CACHED is not done inline here");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Read-only O_TMPFILE: refused by openat2 (and by open(2)) with EINVAL.
    let refused = rt.block_on(
        aiofs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_TMPFILE)
            .open(dir.path()),
    );
    let err = refused.expect_err("a read-only O_TMPFILE open");
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    drop(rt);

    let (opened, read) = with_the_blocking_pool_busy(|within| async move {
        let opened = opens_inline(&path, within).await;
        let read = tokio::time::timeout(within, aiofs::read(&path)).await;
        (opened, read.map(|r| r.expect("aiofs::read")))
    });
    assert!(
        opened,
        "after an open openat2 refused, File::open of a cached path took the blocking pool"
    );
    assert_eq!(
        read.expect(
            "after an open openat2 refused, aiofs::read of a cached path took the blocking pool"
        ),
        b"data"
    );
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: Option<u32> = Some(0xC000_003E);
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: Option<u32> = Some(0xC000_00B7);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: Option<u32> = None;

/// Makes `openat2` fail with `EPERM` on the calling thread and the threads it
/// starts from now on.
fn refuse_openat2(arch: u32) {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k, jt, jf| libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    };
    // struct seccomp_data { int nr; __u32 arch; ... }
    let mut prog = [
        stmt(LD_W_ABS, 4),
        jump(arch, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
        stmt(LD_W_ABS, 0),
        jump(libc::SYS_openat2 as u32, 0, 1),
        stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; `fprog` points to a valid filter program that
    // lives across the call (the kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &fprog as *const libc::sock_fprog,
            ),
            0,
            "PR_SET_SECCOMP: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn a_filter_refusing_openat2_sends_opens_to_the_blocking_pool() {
    let name = "a_filter_refusing_openat2_sends_opens_to_the_blocking_pool";
    let Some(arch) = AUDIT_ARCH else {
        eprintln!("SKIPPED {name}: no seccomp filter for this architecture here");
        return;
    };
    if !in_child(name) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, b"data").expect("write");
    // Before any runtime or aiofs thread exists: every thread inherits it.
    refuse_openat2(arch);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for _ in 0..2 {
            let f = aiofs::File::open(&path).await.expect("File::open");
            let (res, buf) = f.read_at(Vec::with_capacity(4), 0).await;
            res.expect("read_at");
            assert_eq!(buf, b"data");
            assert_eq!(aiofs::read(&path).await.expect("aiofs::read"), b"data");
            let err = aiofs::File::open(dir.path().join("missing"))
                .await
                .expect_err("File::open of a missing file");
            assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
        }
    });
    drop(rt);
    // And none of it inline: the filter is there.
    with_the_blocking_pool_busy(|within| async move {
        assert!(
            !opens_inline(&path, within).await,
            "File::open was done inline although openat2 is refused"
        );
    });
}
