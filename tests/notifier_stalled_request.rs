//! One request that stays in the OS for long (a stalled NFS or FUSE server, a
//! hung device) must not make the notifier thread wake hundreds of times a
//! second. While runtimes' listeners read the completions, the thread looks
//! for completions they leave unread every 5 ms, backing off (to 160 ms) while
//! nothing waits and nothing new is submitted.
//!
//! The stall: a read whose buffer is registered with `userfaultfd` for missing
//! pages and never served, so the kernel's copy into it blocks glibc's worker
//! for good. Needs root (or `vm.unprivileged_userfaultfd = 1`), as CI runs.
//! The read never ends: the runtime is leaked and the process exits with it.
//!
//! Before the back-off: 380 wake-ups in 2 s (the 5 ms look); after: about 25
//! (the 200 ms recovery timer and the back-off's first steps).

use std::time::Duration;

/// Voluntary context switches of the thread that runs the recovery timer
/// (`aiofs-notifier`, or `aiofs-watchdog` under the signal notifier).
fn timer_thread_wakeups() -> u64 {
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if matches!(comm.trim(), "aiofs-notifier" | "aiofs-watchdog") {
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            return status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("voluntary_ctxt_switches");
        }
    }
    panic!("no aiofs-notifier or aiofs-watchdog thread");
}

/// A `Vec` whose memory faults forever: registered with `userfaultfd` for
/// missing pages, and nobody serves the faults. Leaked (the read never ends).
fn stalled_buffer(len: usize) -> Vec<u8> {
    // SAFETY: plain syscalls and ioctls on a descriptor and a mapping made
    // here; the `Vec` owns a fresh anonymous mapping of `len` bytes, length 0.
    unsafe {
        let uffd = libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) as i32;
        assert!(
            uffd >= 0,
            "userfaultfd (needs root or vm.unprivileged_userfaultfd=1): {}",
            std::io::Error::last_os_error()
        );
        // struct uffdio_api { api = UFFD_API, features, ioctls }
        let mut api = [0xAAu64, 0, 0];
        let uffdio_api = 0xc018_aa3f_u64;
        assert_eq!(libc::ioctl(uffd, uffdio_api as _, api.as_mut_ptr()), 0);
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        // struct uffdio_register { range { start, len }, mode = MISSING, ioctls }
        let mut reg = [p as u64, len as u64, 1, 0];
        let uffdio_register = 0xc020_aa00_u64;
        assert_eq!(
            libc::ioctl(uffd, uffdio_register as _, reg.as_mut_ptr()),
            0,
            "UFFDIO_REGISTER: {}",
            std::io::Error::last_os_error()
        );
        Vec::from_raw_parts(p.cast(), 0, len)
    }
}

#[test]
fn one_stalled_request_does_not_make_the_notifier_spin() {
    // Every read through AIO (the fast path would copy on the runtime thread).
    aiofs::Config::new().nowait(false).install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (wakeups, in_flight) = rt.block_on(async {
        let path = dir.path().join("f");
        let file = aiofs::File::create(&path).await.unwrap();
        let (res, _) = file.write_at(vec![1u8; 4096], 0).await;
        res.unwrap();
        file.sync_all().await.unwrap();
        assert!(aiofs::stats().listeners > 0, "a runtime listens");
        let stalled = aiofs::File::open(&path).await.unwrap();
        let read = tokio::spawn(async move { stalled.read_at(stalled_buffer(4096), 0).await.0 });
        // Let the read start and the notifier settle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = timer_thread_wakeups();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let wakeups = timer_thread_wakeups() - before;
        assert!(!read.is_finished(), "the stalled read finished");
        std::mem::forget(read);
        (wakeups, aiofs::stats().in_flight)
    });
    std::mem::forget(rt);
    std::mem::forget(dir);
    println!("in flight: {in_flight}; the recovery timer's thread woke {wakeups} times in 2 s");
    assert!(in_flight >= 1, "the stalled read is in flight");
    // 2 s of the 200 ms timer is 10; the 5 ms look alone would be 400.
    assert!(
        wakeups < 100,
        "the notifier woke {wakeups} times in 2 s for one stalled request"
    );
}
