//! The read-only open tried on the calling thread (`openat2` with
//! `RESOLVE_CACHED`, for `File::open`, read-only `OpenOptions` and
//! `aiofs::read`) must never make that thread wait (review 5, defect 3).
//!
//! `RESOLVE_CACHED` keeps the path lookup off the disk, but the open itself
//! could still wait: a FIFO for its writer, a file with a lease until the
//! lease is broken (up to `lease-break-time`, 45 s). On a current-thread
//! runtime that deadlocked a task that was to open the FIFO's writing end.
//!
//! How it is observed: the aiofs call runs on a current-thread runtime on a
//! thread of its own, first (the runtime polls the `block_on` future before
//! its tasks), with a second task that only reports that it ran. This thread
//! waits for that report for at most 2 s, then ends whatever the call waits
//! for (opens the FIFO's writing end, releases the lease), so a blocked call
//! always ends; the report must have come first.
//!
//! - `file_open_of_a_cached_fifo_leaves_the_runtime_thread_free`,
//!   `read_of_a_cached_fifo_leaves_the_runtime_thread_free`,
//!   `file_open_of_a_leased_file_leaves_the_runtime_thread_free`: the above;
//! - `read_of_a_fifo_whose_writer_waits_in_open_gets_its_data`: a writer
//!   already waiting in `open` is woken by the open that does not wait, and
//!   may write and close before the open on the blocking pool: the data must
//!   not be lost, nor the read wait for another writer;
//! - `file_open_of_a_fifo_returns_once_a_writer_opened_it`: as a blocking
//!   open, `File::open` of a FIFO ends when a writer opens it, even one that
//!   writes nothing yet;
//! - `read_of_files_that_cannot_seek_matches_tokio_fs_read`: a FIFO (with a
//!   writer), `/dev/null`, `/proc` files and `/dev/fd/N` of a pipe read as
//!   `tokio::fs::read` reads them (the FIFO failed with `NotSeekable` when its
//!   path was cached);
//! - `a_cached_regular_file_is_still_opened_inline_and_blocking`: a cached
//!   regular file still opens with no blocking-pool thread (the only one is
//!   kept busy), and its descriptor is not left `O_NONBLOCK` unless asked.

mod support;

use std::ffi::CString;
use std::future::Future;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::bounded;

/// How long the test waits for the runtime's other task before it ends the
/// call's wait itself.
const TICK_WAIT: Duration = Duration::from_secs(2);

fn mkfifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: `c` is a NUL-terminated path.
    let ret = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(ret, 0, "mkfifo: {}", io::Error::last_os_error());
    // The path is in the dentry cache from now on.
    std::fs::metadata(&path).expect("stat the FIFO");
    path
}

/// Opens the writing end of the FIFO once a reader has it open (without
/// waiting: `ENXIO` until then), within 10 s.
fn open_writer(path: &Path) -> std::fs::File {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => return f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("open the FIFO's writing end: {e}"),
        }
    }
}

/// Opens the writing end, writes `data` and closes it.
fn write_fifo(path: &Path, data: &[u8]) {
    let mut w = open_writer(path);
    w.write_all(data).expect("write into the FIFO");
}

/// Runs `call` on a current-thread runtime on a thread of its own, then
/// `unblock` on this thread once the runtime's other task ran, or after
/// [`TICK_WAIT`]. Returns whether that task ran first, and the call's output.
fn on_a_runtime_thread<F, Fut, T>(call: F, unblock: impl FnOnce()) -> (bool, T)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let (tick_tx, tick_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let out = rt.block_on(async move {
            tokio::spawn(async move {
                let _ = tick_tx.send(());
            });
            call().await
        });
        let _ = done_tx.send(out);
    });
    let ticked = tick_rx.recv_timeout(TICK_WAIT).is_ok();
    unblock();
    let out = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the call did not end within 20 s of being unblocked");
    (ticked, out)
}

#[test]
fn file_open_of_a_cached_fifo_leaves_the_runtime_thread_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = mkfifo(dir.path(), "fifo");
    let path = fifo.clone();
    let (ticked, opened) = on_a_runtime_thread(
        move || async move { aiofs::File::open(&path).await.map(drop) },
        || write_fifo(&fifo, b"hello"),
    );
    opened.expect("aiofs::File::open of the FIFO");
    assert!(
        ticked,
        "aiofs::File::open of a FIFO blocked the runtime thread until a writer came"
    );
}

#[test]
fn read_of_a_cached_fifo_leaves_the_runtime_thread_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = mkfifo(dir.path(), "fifo");
    let path = fifo.clone();
    let (ticked, read) = on_a_runtime_thread(
        move || async move { aiofs::read(&path).await },
        || write_fifo(&fifo, b"hello"),
    );
    assert!(
        ticked,
        "aiofs::read of a FIFO blocked the runtime thread until a writer came \
         (it returned {read:?})"
    );
    assert_eq!(read.expect("aiofs::read of the FIFO"), b"hello");
}

#[test]
fn file_open_of_a_leased_file_leaves_the_runtime_thread_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("leased");
    std::fs::write(&path, b"data").expect("write");
    let holder = std::fs::File::open(&path).expect("open");
    // The lease break is announced with a signal to the holder: SIGURG, which
    // is ignored by default (SIGIO would end the process).
    // SAFETY: plain fcntl calls on an open descriptor.
    unsafe {
        assert_eq!(libc::fcntl(holder.as_raw_fd(), F_SETSIG, libc::SIGURG), 0);
        if libc::fcntl(holder.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) != 0 {
            eprintln!("SKIPPED: no lease here: {}", io::Error::last_os_error());
            return;
        }
    }
    let opened_path = path.clone();
    let (ticked, opened) = on_a_runtime_thread(
        move || async move {
            let f = aiofs::File::open(&opened_path).await?;
            let (res, buf) = f.read_at(Vec::with_capacity(4), 0).await;
            res.map(|_| buf)
        },
        // SAFETY: a plain fcntl call on an open descriptor.
        || unsafe {
            assert_eq!(
                libc::fcntl(holder.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK),
                0
            );
        },
    );
    assert_eq!(opened.expect("aiofs::File::open and read_at"), b"data");
    assert!(
        ticked,
        "aiofs::File::open of a leased file blocked the runtime thread until the lease \
         was released"
    );
}

/// `fcntl(F_SETSIG)` (`asm-generic/fcntl.h`), which the libc crate lacks.
const F_SETSIG: libc::c_int = 10;

/// Runs `call` on a runtime on a thread of its own, for at most 10 s. If it
/// takes longer, a writer is opened (and closed) on the FIFO to end any wait
/// for one, and the test fails naming `what`.
fn within_10_s<F, Fut, T>(what: &str, fifo: &Path, call: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let _ = done_tx.send(rt.block_on(call()));
    });
    match done_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(out) => out,
        Err(_) => {
            drop(open_writer(fifo));
            panic!("{what} did not end within 10 s");
        }
    }
}

/// The kernel thread id of the calling thread.
fn gettid() -> i64 {
    // SAFETY: `gettid` has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// Whether thread `tid` of this process is inside `openat` now.
fn in_openat(tid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok())
        == Some(libc::SYS_openat)
}

#[test]
fn read_of_a_fifo_whose_writer_waits_in_open_gets_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = mkfifo(dir.path(), "fifo");
    for round in 0..20 {
        // A writer that waits in a blocking open for a reader, then writes
        // and closes at once.
        let (tid_tx, tid_rx) = mpsc::channel();
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            tid_tx.send(gettid()).expect("send the tid");
            let mut w = std::fs::OpenOptions::new()
                .write(true)
                .open(&writer_path)
                .expect("open the writing end");
            w.write_all(b"hello").expect("write");
        });
        let tid = tid_rx.recv().expect("the writer's tid");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !in_openat(tid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let path = fifo.clone();
        let read = within_10_s(
            &format!("round {round}: aiofs::read"),
            &fifo,
            move || async move { aiofs::read(&path).await },
        );
        writer.join().expect("the writer panicked");
        assert_eq!(
            read.unwrap_or_else(|e| panic!("round {round}: aiofs::read of the FIFO: {e}")),
            b"hello",
            "round {round}"
        );
    }
}

#[test]
fn file_open_of_a_fifo_returns_once_a_writer_opened_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = mkfifo(dir.path(), "fifo");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // A writer that came first and writes nothing.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            let w = std::fs::OpenOptions::new()
                .write(true)
                .open(&writer_path)
                .expect("open the writing end");
            // Kept open until the test is done (or 20 s).
            let _ = rx.recv_timeout(Duration::from_secs(20));
            drop(w);
        });
        let opened = bounded(
            "File::open with a silent writer",
            10,
            aiofs::File::open(&fifo),
        )
        .await;
        opened.expect("File::open of the FIFO");
        tx.send(()).expect("release the writer");
        writer.join().expect("the writer panicked");

        // A writer that comes later and writes nothing.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let w = open_writer(&writer_path);
            let _ = rx.recv_timeout(Duration::from_secs(20));
            drop(w);
        });
        let opened = bounded(
            "File::open, then a silent writer",
            10,
            aiofs::File::open(&fifo),
        )
        .await;
        opened.expect("File::open of the FIFO");
        tx.send(()).expect("release the writer");
        writer.join().expect("the writer panicked");
    });
}

#[test]
fn read_of_files_that_cannot_seek_matches_tokio_fs_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = mkfifo(dir.path(), "fifo");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Character devices and procfs. (Not /dev/zero: neither read ends.)
        for path in ["/dev/null", "/proc/version", "/proc/self/cmdline"] {
            let tokio = tokio::fs::read(path).await.map_err(|e| e.kind());
            let aiofs = bounded(path, 10, aiofs::read(path))
                .await
                .map_err(|e| e.kind());
            assert_eq!(aiofs, tokio, "aiofs::read({path}) against tokio::fs::read");
        }

        // `/dev/fd/N` of a pipe, one pipe for each.
        let mut got = Vec::new();
        for aiofs in [false, true] {
            let (r, mut w) = std::io::pipe().expect("pipe");
            w.write_all(b"from the pipe").expect("write");
            drop(w);
            let path = format!("/dev/fd/{}", r.as_raw_fd());
            let read = if aiofs {
                bounded("aiofs::read of a pipe", 10, aiofs::read(&path)).await
            } else {
                tokio::fs::read(&path).await
            };
            got.push(read.map_err(|e| e.kind()));
        }
        assert_eq!(got[0], Ok(b"from the pipe".to_vec()), "tokio::fs::read");
        assert_eq!(got[1], got[0], "aiofs::read of /dev/fd/N");
    });

    // A FIFO, its writer on a thread of its own.
    let mut got = Vec::new();
    for aiofs in [false, true] {
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || write_fifo(&writer_path, b"from the FIFO"));
        let path = fifo.clone();
        let read = if aiofs {
            within_10_s("aiofs::read of a FIFO", &fifo, || async move {
                aiofs::read(&path).await
            })
        } else {
            within_10_s("tokio::fs::read of a FIFO", &fifo, || async move {
                tokio::fs::read(&path).await
            })
        };
        writer.join().expect("the writer panicked");
        got.push(read.map_err(|e| (e.kind(), e.to_string())));
    }
    assert_eq!(got[0], Ok(b"from the FIFO".to_vec()), "tokio::fs::read");
    assert_eq!(got[1], got[0], "aiofs::read of a FIFO");
}

/// The file status flags of `fd`.
fn status_flags(fd: &impl AsRawFd) -> i32 {
    // SAFETY: `F_GETFL` only reads the flags of an open descriptor.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL: {}", io::Error::last_os_error());
    flags
}

#[test]
fn a_cached_regular_file_is_still_opened_inline_and_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    std::fs::write(&path, b"regular").expect("write");
    // One blocking thread, kept busy: an open that needs it cannot finish.
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
        let inline = Duration::from_secs(2);

        let opened = tokio::time::timeout(inline, aiofs::File::open(&path)).await;
        let file = opened
            .expect("File::open of a cached regular file waited for the blocking pool")
            .expect("File::open");
        let std_file = file.try_into_std().expect("try_into_std");
        assert_eq!(
            status_flags(&std_file) & libc::O_NONBLOCK,
            0,
            "File::open left the descriptor O_NONBLOCK"
        );

        let opened = tokio::time::timeout(
            inline,
            aiofs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path),
        )
        .await;
        let file = opened
            .expect("an O_NONBLOCK open of a cached regular file waited for the blocking pool")
            .expect("open O_NONBLOCK");
        let std_file = file.try_into_std().expect("try_into_std");
        assert_ne!(
            status_flags(&std_file) & libc::O_NONBLOCK,
            0,
            "the O_NONBLOCK asked for was cleared"
        );

        let read = tokio::time::timeout(inline, aiofs::read(&path)).await;
        assert_eq!(
            read.expect("aiofs::read of a cached file waited for the blocking pool")
                .expect("aiofs::read"),
            b"regular"
        );
        release.send(()).expect("release the blocking thread");
        busy.await.expect("the blocking task");
    });
}
