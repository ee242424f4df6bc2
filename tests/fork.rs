//! Children forked while requests are in flight: `std::process::Command`
//! (`posix_spawn`, and fork + exec when a `pre_exec` hook forces it) and raw
//! `libc::fork()` children that `_exit` or `execv`, hundreds of times while
//! thousands of reads run. Every child runs and exits as it should; every
//! request of the parent's completes with the right data; nothing is left in
//! flight; and no aiofs descriptor leaks into an exec'd child.
//!
//! Process-wide state (children, descriptors): its own binary. The notifier
//! comes from `AIOFS_NOTIFIER`.

mod support;

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use support::workload::{self, Files, Progress};
use support::{aio_only, bounded, idle, in_child, serial};

const CHILDREN: u64 = 200;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The requests in flight (and queued) seen at the forks: (forks, sum, max).
static AT_FORK: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// Reads the holder keeps going at once, on one descriptor.
const HOLD: usize = 2000;
const HOLD_LEN: usize = 16 << 10;

/// Keeps about `HOLD` reads of 16 KiB in flight or queued on one descriptor
/// (glibc runs them one at a time), round after round, until `stop`; checks them.
async fn hold(files: Arc<Files>, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let (file, content) = (&files.files[0], &files.content[0]);
    let mut bufs: Vec<Vec<u8>> = (0..HOLD).map(|_| Vec::with_capacity(HOLD_LEN)).collect();
    let mut rounds = 0u64;
    while !stop.load(Relaxed) {
        let reads = bufs.drain(..).enumerate().map(|(i, mut buf)| {
            buf.clear();
            let pos = (i as u64 * 65536 + rounds * 4096) % (workload::FILE_LEN - HOLD_LEN as u64);
            async move { (pos, file.read_at(buf, pos).await) }
        });
        for (pos, (res, buf)) in futures::future::join_all(reads).await {
            let n = res.map_err(|e| format!("held read at {pos}: {e}"))?;
            if n != HOLD_LEN || buf[..] != content[pos as usize..pos as usize + n] {
                return Err(format!(
                    "held read at {pos}: {n} bytes, wrong count or data"
                ));
            }
            bufs.push(buf);
        }
        rounds += 1;
    }
    Ok(rounds)
}

/// Waits (at most 5 s, spinning) until a thousand requests are in flight or
/// queued, so that the next fork happens with them.
fn wait_in_flight() {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = aiofs::stats();
        if s.in_flight > 0 && s.in_flight + s.queued >= 1000 {
            AT_FORK[0].fetch_add(1, Relaxed);
            AT_FORK[1].fetch_add(s.in_flight + s.queued, Relaxed);
            AT_FORK[2].fetch_max(s.in_flight + s.queued, Relaxed);
            return;
        }
        assert!(Instant::now() < deadline, "no request in flight: {s:?}");
        std::thread::yield_now();
    }
}

/// Runs `children` on a blocking thread while thousands of reads are in flight
/// or queued ([`hold`]) beside a load of reads, writes, batches and stream reads
/// (8 tasks of 64 requests); then checks every result and that nothing is left.
fn with_load(name: &str, children: impl FnOnce() -> u64 + Send + 'static) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let before = aiofs::stats();
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let spawned = rt.block_on(bounded(name, 60, async {
        let files = Files::create(dir.path(), 4).await;
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = workload::spawn(&files, 8, 64, 0xF0_4C, &stop, &progress);
        let holder = tokio::spawn(hold(Arc::clone(&files), Arc::clone(&stop)));
        let spawned = tokio::task::spawn_blocking(children).await;
        stop.store(true, Relaxed);
        for t in tasks {
            t.await.expect("load task");
        }
        let rounds = holder.await.expect("holder task").expect("held reads");
        assert!(rounds > 0);
        drop(files);
        idle().await;
        spawned.expect("the forking thread panicked")
    }));
    let after = aiofs::stats();
    let errors = progress.errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{name}: {} wrong results, e.g. {:#?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    assert!(after.queued == 0 && after.orphaned == 0, "{after:?}");
    let forks = AT_FORK[0].swap(0, Relaxed).max(1);
    println!(
        "{name}: {spawned} children, with {} requests in flight or queued on average (at most {}); \
         the load made {} requests ({} submitted, {} had to wait) in {:?}",
        AT_FORK[1].swap(0, Relaxed) / forks,
        AT_FORK[2].swap(0, Relaxed),
        progress.requests.load(Relaxed),
        after.submitted - before.submitted,
        after.waited - before.waited,
        started.elapsed()
    );
}

#[test]
fn commands_spawned_while_thousands_of_reads_are_in_flight() {
    // Reads must be in flight at each fork: no page-cache fast path.
    aio_only();
    let _serial = serial();
    with_load("Command", || {
        let mut spawned = 0;
        for i in 0..CHILDREN {
            wait_in_flight();
            match i % 4 {
                0 => {
                    let status = Command::new("true").status().expect("spawn true");
                    assert!(status.success(), "true #{i}: {status}");
                }
                1 => {
                    let out = Command::new("/bin/echo")
                        .arg(format!("child {i}"))
                        .output()
                        .expect("spawn echo");
                    assert!(out.status.success(), "echo #{i}: {}", out.status);
                    assert_eq!(out.stdout, format!("child {i}\n").as_bytes());
                }
                // A `pre_exec` hook makes std fork and exec itself rather than
                // use posix_spawn.
                2 => {
                    let mut cmd = Command::new("true");
                    // SAFETY: the hook does nothing (async-signal-safe).
                    unsafe { cmd.pre_exec(|| Ok(())) };
                    let status = cmd.status().expect("fork + exec true");
                    assert!(status.success(), "true (fork) #{i}: {status}");
                }
                _ => {
                    let mut cmd = Command::new("/bin/echo");
                    cmd.arg(format!("forked {i}"));
                    // SAFETY: as above.
                    unsafe { cmd.pre_exec(|| Ok(())) };
                    let out = cmd.output().expect("fork + exec echo");
                    assert!(out.status.success(), "echo (fork) #{i}: {}", out.status);
                    assert_eq!(out.stdout, format!("forked {i}\n").as_bytes());
                }
            }
            spawned += 1;
        }
        spawned
    });
}

/// Waits for `pid` (at most 10 s; then kills it and fails).
fn wait_child(pid: libc::pid_t, what: &str) -> libc::c_int {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut status = 0;
        // SAFETY: plain libc call on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return status;
        }
        assert!(
            r == 0,
            "{what}: waitpid: {}",
            std::io::Error::last_os_error()
        );
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{what}: the child did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn raw_fork_children_exit_or_exec_while_reads_are_in_flight() {
    // Reads must be in flight at each fork: no page-cache fast path.
    aio_only();
    let _serial = serial();
    let exited = Arc::new(AtomicU64::new(0));
    let execd = Arc::new(AtomicU64::new(0));
    let (e1, e2) = (Arc::clone(&exited), Arc::clone(&execd));
    with_load("libc::fork", move || {
        // Everything the child needs, made before the fork: after it, the child
        // (of a multi-threaded process) may only call async-signal-safe functions.
        let path = CString::new("/bin/true").unwrap();
        let argv = [path.as_ptr(), std::ptr::null()];
        for i in 0..CHILDREN {
            wait_in_flight();
            let exec = i % 2 == 1;
            // SAFETY: the child calls only `_exit` and `execv` (async-signal-safe)
            // on data prepared before the fork.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: the child, as above.
                unsafe {
                    if exec {
                        libc::execv(path.as_ptr(), argv.as_ptr());
                        libc::_exit(127);
                    }
                    libc::_exit(7);
                }
            }
            assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
            let status = std::process::ExitStatus::from_raw(wait_child(pid, "child"));
            if exec {
                assert_eq!(status.code(), Some(0), "exec'd child #{i}: {status}");
                e2.fetch_add(1, Relaxed);
            } else {
                assert_eq!(status.code(), Some(7), "exiting child #{i}: {status}");
                e1.fetch_add(1, Relaxed);
            }
        }
        CHILDREN
    });
    assert_eq!(exited.load(Relaxed), CHILDREN / 2);
    assert_eq!(execd.load(Relaxed), CHILDREN / 2);
}

/// The descriptors of process `pid` (the numbers in `/proc/<pid>/fd`), with
/// what they name.
fn fds_of(pid: u32) -> Vec<(u32, String)> {
    let mut fds: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the child's fd directory")
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((n, target.display().to_string()))
        })
        .collect();
    fds.sort();
    fds
}

/// Waits (at most 5 s) until `pid` sits in `read(0, ...)` (the exec'd `cat`
/// waiting for its input), so that its descriptors are the ones it inherited.
fn wait_reading_stdin(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        let mut fields = syscall.split_whitespace();
        if fields.next() == Some("0") && fields.next() == Some("0x0") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the child never waited on its input: {syscall:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The descriptors of this process that an exec'd child inherits (no
/// `FD_CLOEXEC`: `O_CLOEXEC` is bit `02000000` of `flags` in `fdinfo`).
fn inheritable_fds() -> BTreeSet<u32> {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|n: &u32| {
            let info =
                std::fs::read_to_string(format!("/proc/self/fdinfo/{n}")).unwrap_or_default();
            info.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .is_some_and(|flags| flags & 0o2000000 == 0)
        })
        .collect()
}

/// In a child process of its own, so that the descriptors it inherited (from
/// cargo, say) can be listed before aiofs starts.
#[test]
fn an_execd_child_inherits_no_aiofs_descriptor() {
    // Reads must be in flight at each fork: no page-cache fast path.
    aio_only();
    if !in_child("an_execd_child_inherits_no_aiofs_descriptor") {
        return;
    }
    assert_eq!(aiofs::stats().submitted, 0, "aiofs started already");
    let inherited = inheritable_fds();
    let allowed: BTreeSet<u32> = inherited.iter().copied().chain([0, 1, 2]).collect();
    with_load("descriptors", move || {
        // Files (with read-ahead descriptors) open and requests in flight: the
        // load's. Two children, one per spawn path: each inherits its standard
        // streams and what this process inherited, nothing of aiofs's.
        let mut checked = 0;
        for fork in [false, true] {
            wait_in_flight();
            let mut cmd = Command::new("cat");
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if fork {
                // SAFETY: the hook does nothing (async-signal-safe).
                unsafe { cmd.pre_exec(|| Ok(())) };
            }
            let parent = support::open_fds();
            let mut child = cmd.spawn().expect("spawn cat");
            wait_reading_stdin(child.id());
            let fds = fds_of(child.id());
            drop(child.stdin.take());
            let status = child.wait().expect("wait for cat");
            assert!(status.success(), "cat: {status}");
            let extra: Vec<_> = fds.iter().filter(|(n, _)| !allowed.contains(n)).collect();
            assert!(
                extra.is_empty(),
                "the child (fork + exec: {fork}) inherited {extra:?}; all: {fds:?}; \
                 inherited by this process: {inherited:?}"
            );
            println!(
                "  fork + exec: {fork}: the parent had {parent} descriptors, the child {:?}",
                fds.iter().map(|(n, _)| n).collect::<Vec<_>>()
            );
            checked += 1;
        }
        checked
    });
}
