//! No call that can wait on the device runs on a runtime thread (issue 11,
//! item 8): `SeekFrom::End` used to call `fstat` inline, and the first
//! request on an `O_DIRECT` file `statx` (its alignment); for a cold inode
//! either can wait on the device while every task of that thread waits.
//! They must go through the blocking pool or AIO (as `tokio::fs` does).
//!
//! How it is observed: a seccomp filter on the runtime's thread (a
//! current-thread runtime, on a thread of its own) traps every call of the
//! `stat` family there (`fstat`, `newfstatat`, `statx`, and `stat`, `lstat`
//! where they exist) with `SIGSYS`, except a `statx` with
//! `AT_STATX_DONT_SYNC` on an open descriptor: that one is answered from the
//! in-memory inode and never asks a device or a server (measured right after
//! `drop_caches`: 3.6 to 7.4 µs for the first call, 0.6 µs after, where a
//! device read takes 100 µs or more here); the handler counts the traps of that
//! thread and makes the call fail with `ENOSYS`. Threads that existed before the
//! filter (the blocking pool's, started beforehand and kept alive; glibc's
//! AIO workers; aiofs's notifier) are not filtered.
//!
//! - `seek_from_end_makes_no_stat_call_on_the_runtime_thread`: `tokio::fs`
//!   first (none), then `aiofs::File::seek(SeekFrom::End(0))`: none, and
//!   the right position;
//! - `the_first_o_direct_request_makes_no_stat_call_on_the_runtime_thread`:
//!   the first `read_at` of an `O_DIRECT` file.
//!
//! Each ends by calling `std::fs::File::metadata` on the runtime thread,
//! which must trap: the filter works. A seccomp filter cannot be removed, and
//! `std` remembers a failed `statx`: each test runs in a child process of
//! this binary (`support::in_child`). Linux x86_64 and aarch64 only.

mod support;

use std::io::SeekFrom;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use support::{in_child, pattern_bytes, serial};
use tokio::io::AsyncSeekExt;

const LEN: usize = 64 * 1024;

/// The thread whose stat calls are counted.
static RUNTIME_TID: AtomicI64 = AtomicI64::new(-1);
/// Stat calls trapped on that thread, and on others (threads it started).
static RUNTIME_TRAPS: AtomicU64 = AtomicU64::new(0);
static OTHER_TRAPS: AtomicU64 = AtomicU64::new(0);

fn gettid() -> i64 {
    // SAFETY: `gettid` has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

extern "C" fn on_sigsys(_: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // Async-signal-safe: a syscall, atomics, and a register of the context.
    if gettid() == RUNTIME_TID.load(SeqCst) {
        RUNTIME_TRAPS.fetch_add(1, SeqCst);
    } else {
        OTHER_TRAPS.fetch_add(1, SeqCst);
    }
    // The trapped call was not made: it returns -ENOSYS.
    let uc = ctx.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes the interrupted thread's context, which the
    // handler may change; the return register is written back on return.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = -(libc::ENOSYS as i64);
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        (*uc).uc_mcontext.regs[0] = (-(libc::ENOSYS as i64)) as u64;
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = uc;
}

#[cfg(target_arch = "x86_64")]
const ARCH: Option<(u32, &[libc::c_long])> = Some((
    0xC000_003E, // AUDIT_ARCH_X86_64
    &[
        libc::SYS_fstat,
        libc::SYS_newfstatat,
        libc::SYS_stat,
        libc::SYS_lstat,
    ],
));
#[cfg(target_arch = "aarch64")]
const ARCH: Option<(u32, &[libc::c_long])> = Some((
    0xC000_00B7, // AUDIT_ARCH_AARCH64
    &[libc::SYS_fstat, libc::SYS_newfstatat],
));
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH: Option<(u32, &[libc::c_long])> = None;

/// Traps the stat calls of the calling thread (and of threads it starts
/// from now on) with `SIGSYS`, counted by [`on_sigsys`].
fn trap_stat_calls_on_this_thread() {
    let Some((arch, calls)) = ARCH else {
        unreachable!("checked by the caller");
    };
    // SAFETY: all-zero is a valid `sigaction`; the handler is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()),
            0,
            "sigaction(SIGSYS)"
        );
    }
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
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
    // `statx` traps unless its flags (args[2], whose low word is at offset
    // 32, little-endian) include AT_STATX_DONT_SYNC.
    let mut prog = vec![
        stmt(LD_W_ABS, 4),
        jump(arch, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
        stmt(LD_W_ABS, 0),
        jump(libc::SYS_statx as u32, 0, 5),
        stmt(LD_W_ABS, 32),
        stmt(AND_K, libc::AT_STATX_DONT_SYNC as u32),
        jump(0, 0, 1),
        stmt(RET_K, libc::SECCOMP_RET_TRAP),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    ];
    for &nr in calls {
        prog.push(jump(nr as u32, 0, 1));
        prog.push(stmt(RET_K, libc::SECCOMP_RET_TRAP));
    }
    prog.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    RUNTIME_TID.store(gettid(), SeqCst);
    // SAFETY: plain prctl calls; `fprog` points to a valid filter program that
    // lives across the call (the kernel copies it).
    unsafe {
        assert_eq!(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            0,
            "PR_SET_NO_NEW_PRIVS: {}",
            std::io::Error::last_os_error()
        );
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

/// Runs `body` on a current-thread runtime on a thread of its own, with that
/// thread's stat calls trapped once `body`'s setup future is done.
fn on_a_trapped_runtime_thread<S, B>(setup: S, body: B)
where
    S: std::future::Future<Output = ()> + Send + 'static,
    B: std::future::Future<Output = ()> + Send + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            // Idle blocking threads stay: none is started after the filter.
            .thread_keep_alive(Duration::from_secs(600))
            .build()
            .expect("runtime");
        rt.block_on(async {
            setup.await;
            // Start four blocking threads now, unfiltered.
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let barrier = barrier.clone();
                    tokio::task::spawn_blocking(move || {
                        barrier.wait();
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("blocking task");
            }
            trap_stat_calls_on_this_thread();
            body.await;
            // The filter works: std's metadata on this thread traps.
            let before = RUNTIME_TRAPS.load(SeqCst);
            let probe = std::fs::File::open("/proc/self/exe").expect("open");
            let res = probe.metadata();
            assert!(
                RUNTIME_TRAPS.load(SeqCst) > before && res.is_err(),
                "the filter does not trap stat calls on the runtime thread ({res:?})"
            );
        });
    })
    .join()
    .expect("the runtime thread panicked");
}

#[test]
fn seek_from_end_makes_no_stat_call_on_the_runtime_thread() {
    let _serial = serial();
    if ARCH.is_none() {
        eprintln!("SKIPPED: no seccomp filter for this architecture here");
        return;
    }
    if !in_child("seek_from_end_makes_no_stat_call_on_the_runtime_thread") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, LEN)).expect("write");
    let setup_path = path.clone();
    on_a_trapped_runtime_thread(
        async move {
            // The driver starts (its thread, glibc's AIO threads) unfiltered.
            let f = aiofs::File::open(&setup_path).await.expect("open");
            let (res, _) = f.read_at(Vec::with_capacity(4096), 0).await;
            res.expect("read");
        },
        async move {
            // tokio::fs: no stat call here.
            let mut t = tokio::fs::File::open(&path).await.expect("tokio open");
            let end = t.seek(SeekFrom::End(0)).await;
            let traps = RUNTIME_TRAPS.load(SeqCst);
            assert_eq!(end.expect("tokio seek"), LEN as u64);
            assert_eq!(traps, 0, "tokio::fs made a stat call on the runtime thread");

            let mut f = aiofs::File::open(&path).await.expect("open");
            let end = f.seek(SeekFrom::End(0)).await;
            let traps = RUNTIME_TRAPS.load(SeqCst);
            println!(
                "aiofs seek(End(0)): {end:?}; stat calls trapped on the runtime thread: \
                 {traps}, elsewhere: {}",
                OTHER_TRAPS.load(SeqCst)
            );
            assert_eq!(
                traps, 0,
                "seek(SeekFrom::End(0)) made {traps} stat call(s) on the runtime thread \
                 (it returned {end:?})"
            );
            assert_eq!(end.expect("aiofs seek"), LEN as u64);
        },
    );
}

#[test]
fn the_first_o_direct_request_makes_no_stat_call_on_the_runtime_thread() {
    let _serial = serial();
    if ARCH.is_none() {
        eprintln!("SKIPPED: no seccomp filter for this architecture here");
        return;
    }
    let name = "the_first_o_direct_request_makes_no_stat_call_on_the_runtime_thread";
    if !in_child(name) {
        return;
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, LEN)).expect("write");
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
    {
        eprintln!("SKIPPED {name}: O_DIRECT is refused here: {e}");
        return;
    }
    let other = dir.path().join("other");
    std::fs::write(&other, pattern_bytes(0, LEN)).expect("write");
    on_a_trapped_runtime_thread(
        async move {
            let f = aiofs::File::open(&other).await.expect("open");
            let (res, _) = f.read_at(Vec::with_capacity(4096), 0).await;
            res.expect("read");
        },
        async move {
            let f = aiofs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
                .await
                .expect("open O_DIRECT");
            let before = RUNTIME_TRAPS.load(SeqCst);
            let (res, buf) = f
                .read_at(aiofs::buf::AlignedBuf::new(4096, 4096), 8192)
                .await;
            let traps = RUNTIME_TRAPS.load(SeqCst) - before;
            println!(
                "first O_DIRECT read_at: {:?}; stat calls trapped on the runtime thread: \
                 {traps}, elsewhere: {}",
                res.as_ref().map(|n| *n),
                OTHER_TRAPS.load(SeqCst)
            );
            assert_eq!(
                traps, 0,
                "the first request on an O_DIRECT file made {traps} stat call(s) on the \
                 runtime thread"
            );
            assert_eq!(res.expect("O_DIRECT read_at"), 4096);
            assert!(buf[..] == pattern_bytes(8192, 4096)[..]);
        },
    );
}
