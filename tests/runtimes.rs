//! Many Tokio runtimes: one after another, side by side, one shut down with
//! requests in flight while another keeps going, and futures moving from one
//! runtime to another.
//!
//! With the signal notifier (`AIOFS_NOTIFIER=signal`) the task reading Tokio's
//! signal stream lives on one runtime, and when that runtime goes away another
//! must take over: these tests check that it does (`stats().listeners`). With
//! the pipe notifier no runtime is special. CI runs this binary under both.
//!
//! The tests assert on the process-wide counters: they run one at a time.

mod support;

use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use aiofs::File;
use support::{Rng, aio_only, in_child, open_fds_under, open_rw, pattern_bytes, serial, settle};
use tokio::runtime::{Builder, Runtime};

const LEN: u64 = 1 << 20;

fn signal_notifier() -> bool {
    std::env::var("AIOFS_NOTIFIER").is_ok_and(|v| v.trim().eq_ignore_ascii_case("signal"))
}

/// Whether each runtime that submits or waits starts a listener: under the
/// signal notifier (Tokio's stream), and under the pipe notifier with runtime
/// delivery (the default; `AIOFS_RUNTIME_DELIVERY=0` turns it off).
fn listening() -> bool {
    signal_notifier() || std::env::var("AIOFS_RUNTIME_DELIVERY").map_or(true, |v| v.trim() != "0")
}

fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn multi_thread(workers: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

fn listeners() -> u64 {
    aiofs::stats().listeners
}

/// A data file of `LEN` bytes of the pattern from `from`.
fn data_file(dir: &Path, name: &str, from: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pattern_bytes(from, LEN as usize)).expect("write");
    path
}

/// Writes `len` bytes that only this call writes (`tag`) at `pos`, reads them
/// back, compares.
async fn write_read(file: &File, pos: u64, len: usize, tag: u64) -> Result<(), String> {
    let data = pattern_bytes((tag << 40) | pos, len);
    let (res, _) = file.write_all_at(data.clone(), pos).await;
    res.map_err(|e| format!("write_all_at({len}, {pos}): {e}"))?;
    let (res, buf) = file.read_exact_at(Vec::with_capacity(len), pos).await;
    res.map_err(|e| format!("read_exact_at({len}, {pos}): {e}"))?;
    if buf != data {
        return Err(format!("read back at {pos} ({len} bytes): wrong data"));
    }
    Ok(())
}

/// Reads `len` bytes at `pos` of a file holding the pattern from `from`; checks.
async fn read_check(file: &File, pos: u64, len: usize, from: u64) -> Result<(), String> {
    let (res, buf) = file.read_at(Vec::with_capacity(len), pos).await;
    let n = res.map_err(|e| format!("read_at({len}, {pos}): {e}"))?;
    let avail = LEN.saturating_sub(pos) as usize;
    if n == 0 && avail > 0 || n > len.min(avail) || buf.len() != n {
        return Err(format!("read_at({len}, {pos}): count {n}"));
    }
    if buf != pattern_bytes(from + pos, n) {
        return Err(format!("read_at({len}, {pos}): wrong data"));
    }
    Ok(())
}

/// The driver is quiet: nothing in flight, queued or orphaned (bounded wait).
fn settle_all() {
    current_thread().block_on(settle());
    let s = aiofs::stats();
    assert_eq!(s.in_flight, 0, "{s:?}");
    assert_eq!(s.queued, 0, "{s:?}");
    assert_eq!(s.orphaned, 0, "{s:?}");
}

/// Runs `f` under a time limit, failing with the driver's counters.
async fn bounded<T>(what: &str, secs: u64, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done within {secs} s; {:?}", aiofs::stats()),
    }
}

#[test]
fn fifty_current_thread_runtimes_one_after_another() {
    aio_only();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = data_file(dir.path(), "data", 0);
    // Whatever an earlier test left, a runtime that did I/O and is gone.
    current_thread().block_on(async {
        let file = open_rw(&path).await;
        read_check(&file, 0, 4096, 0).await.expect("warm-up");
    });
    let before = aiofs::stats();
    let started = Instant::now();
    for i in 0..50u64 {
        let rt = current_thread();
        rt.block_on(bounded("one runtime's I/O", 10, async {
            let file = open_rw(&path).await;
            // One request, then nine at once, each in its own KiB.
            let at = i * 10240;
            write_read(&file, at, 1024, i).await.expect("write_read");
            let all = (1..10).map(|j| write_read(&file, at + j * 1024, 1024, i));
            for res in futures::future::join_all(all).await {
                res.expect("write_read");
            }
            read_check(&file, LEN - 100, 4096, 0)
                .await
                .expect("read at the end");
            file.sync_data().await.expect("sync_data");
        }));
        drop(rt);
    }
    let after = aiofs::stats();
    let took = listeners() - before.listeners;
    if listening() {
        // Each runtime read the stream while it lived; the next one took over.
        assert_eq!(took, 50, "{before:?} → {after:?}");
    } else {
        assert_eq!(took, 0, "{before:?} → {after:?}");
    }
    settle_all();
    let data = std::fs::read(&path).expect("read back");
    assert_eq!(data.len() as u64, LEN);
    for i in 0..50u64 {
        for j in 0..10 {
            let at = i * 10240 + j * 1024;
            let want = pattern_bytes((i << 40) | at, 1024);
            let got = &data[at as usize..at as usize + 1024];
            assert!(got == want, "runtime {i}'s write {j}");
        }
    }
    println!(
        "50 runtimes, {} requests, in {:?}",
        after.submitted - before.submitted,
        started.elapsed()
    );
}

#[test]
fn two_multi_thread_runtimes_at_once_then_one_goes_away() {
    aio_only();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = data_file(dir.path(), "shared", 7 << 40);
    let (path_a, path_b) = (data_file(dir.path(), "a", 0), data_file(dir.path(), "b", 0));
    let before = aiofs::stats();
    let barrier = Arc::new(Barrier::new(2));
    let a_gone = Arc::new(AtomicBool::new(false));
    let a_listeners = Arc::new(AtomicU64::new(0));
    const TASKS: u64 = 16;

    // One runtime's work: TASKS tasks, each writing and reading back its own
    // region of `own` and reading the shared file, for `rounds`, then until
    // `until` says stop.
    fn work(
        rt: &Runtime,
        own: PathBuf,
        shared: PathBuf,
        rounds: u64,
        until: impl Fn(u64) -> bool + Send + Sync + 'static,
    ) -> u64 {
        let until = Arc::new(until);
        rt.block_on(bounded("a runtime's I/O", 20, async move {
            let own = Arc::new(open_rw(&own).await);
            let shared = Arc::new(open_rw(&shared).await);
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let (own, shared, until) = (own.clone(), shared.clone(), until.clone());
                    tokio::spawn(async move {
                        let mut rng = Rng::new(t);
                        let mut n = 0;
                        while n < rounds || !until(n) {
                            let at = t * (LEN / TASKS) + rng.below(LEN / TASKS - 4096);
                            let len = 1 + rng.below(4096) as usize;
                            write_read(&own, at, len, n).await.expect("write_read");
                            let pos = rng.below(LEN);
                            read_check(&shared, pos, 8192, 7 << 40)
                                .await
                                .expect("read shared");
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("task");
            }
            total
        }))
    }

    let a = {
        let (barrier, a_gone, a_listeners) = (barrier.clone(), a_gone.clone(), a_listeners.clone());
        let (own, shared) = (path_a.clone(), shared.clone());
        std::thread::spawn(move || {
            let rt = multi_thread(2);
            // A does I/O first: with the signal notifier it reads the stream.
            rt.block_on(async {
                let file = open_rw(&own).await;
                read_check(&file, 0, 4096, 0).await.expect("A's first read");
            });
            a_listeners.store(listeners(), Relaxed);
            barrier.wait();
            let n = work(&rt, own, shared, 25, |_| true);
            drop(rt);
            a_gone.store(true, Relaxed);
            n
        })
    };
    let b = {
        let (barrier, a_gone, a_listeners) = (barrier.clone(), a_gone.clone(), a_listeners.clone());
        std::thread::spawn(move || {
            barrier.wait();
            let rt = multi_thread(2);
            let gone_at = Arc::new(Mutex::new(None::<u64>));
            let n = work(&rt, path_b, shared, 25, move |n| {
                // Go on until A is gone and, with the signal notifier, this
                // runtime took over the stream; then 20 more.
                if !a_gone.load(Relaxed) || listening() && listeners() <= a_listeners.load(Relaxed)
                {
                    return false;
                }
                let mut at = gone_at.lock().unwrap();
                n >= *at.get_or_insert(n) + 20
            });
            drop(rt);
            n
        })
    };
    let na = a.join().expect("runtime A's thread");
    let nb = b.join().expect("runtime B's thread");
    assert_eq!(na, TASKS * 25);
    assert!(nb >= TASKS * 25, "{nb}");
    let after = aiofs::stats();
    if listening() {
        // A read the stream first, B took over when A went away.
        assert_eq!(
            a_listeners.load(Relaxed),
            before.listeners + 1,
            "A did not start a listener: {before:?}"
        );
        assert!(
            after.listeners >= before.listeners + 2,
            "{before:?} → {after:?}"
        );
    } else {
        assert_eq!(after.listeners, before.listeners, "{after:?}");
    }
    settle_all();
    println!("A: {na} rounds, B: {nb} rounds");
}

#[derive(Debug, Clone, Copy)]
enum Shutdown {
    /// `Runtime::shutdown_background` of a multi-thread runtime.
    Background,
    /// Dropping a multi-thread runtime.
    Drop,
    /// Dropping a current-thread runtime whose tasks wait, unpolled, with their
    /// requests in flight.
    DropCurrentThread,
}

/// One of R1's requests on its two files, whose content is `content`: a read
/// (checked), a write of the bytes already there, or a sync. Cheap on the CPU,
/// so that R1's tasks mostly wait for requests in flight.
async fn r1_request(files: &[File], content: &[Vec<u8>], seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let k = rng.below(2) as usize;
    let (file, content) = (&files[k], &content[k]);
    match rng.below(8) {
        0..=3 => {
            let pos = rng.below(LEN) as usize;
            let (res, buf) = file.read_at(Vec::with_capacity(16 << 10), pos as u64).await;
            let n = res.map_err(|e| format!("R1 read at {pos}: {e}"))?;
            if n == 0 || buf.len() != n || buf[..] != content[pos..pos + n] {
                return Err(format!("R1 read at {pos}: {n} bytes, wrong count or data"));
            }
            Ok(())
        }
        4..=5 => {
            let pos = (LEN / 2 + rng.below(LEN / 2 - 65536)) as usize;
            let data = content[pos..pos + 65536].to_vec();
            let (res, _) = file.write_all_at(data, pos as u64).await;
            res.map_err(|e| format!("R1 write: {e}"))
        }
        _ => file.sync_data().await.map_err(|e| format!("R1 sync: {e}")),
    }
}

/// A runtime shut down with requests in flight while another keeps going.
fn shut_down_with_requests_in_flight(kind: Shutdown) {
    let dir = tempfile::tempdir().expect("tempdir");
    let r1_paths: Vec<_> = (0..2)
        .map(|k| data_file(dir.path(), &format!("r1-{k}"), (k + 1) << 40))
        .collect();
    let r2_path = data_file(dir.path(), "r2", 0);
    let before = aiofs::stats();
    let r1_busy = Arc::new(AtomicU64::new(0));
    let stop_r1 = Arc::new(AtomicBool::new(false));
    let r1_gone = Arc::new(AtomicBool::new(false));
    let r1_listeners = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));

    // R1: 64 tasks keep requests in flight on two files, forever.
    let r1 = {
        let (busy, stop, gone, l) = (
            r1_busy.clone(),
            stop_r1.clone(),
            r1_gone.clone(),
            r1_listeners.clone(),
        );
        let errors = errors.clone();
        std::thread::spawn(move || {
            let rt = match kind {
                Shutdown::DropCurrentThread => current_thread(),
                _ => multi_thread(2),
            };
            rt.block_on(async {
                let mut files = Vec::new();
                for p in &r1_paths {
                    files.push(open_rw(p).await);
                }
                let files = Arc::new(files);
                let content: Arc<Vec<_>> = Arc::new(
                    (1..=2u64)
                        .map(|k| pattern_bytes(k << 40, LEN as usize))
                        .collect(),
                );
                for t in 0..64u64 {
                    let (files, busy, errors) = (files.clone(), busy.clone(), errors.clone());
                    let content = content.clone();
                    tokio::spawn(async move {
                        let mut rng = Rng::new(t);
                        loop {
                            // Four at once: most wait in glibc's queue of their
                            // descriptor (behind a sync of dirty pages, say).
                            let ops = (0..4).map(|_| r1_request(&files, &content, rng.next_u64()));
                            for res in futures::future::join_all(ops).await {
                                if let Err(e) = res {
                                    errors.lock().unwrap().push(e);
                                }
                            }
                            busy.fetch_add(4, Relaxed);
                        }
                    });
                }
                // Run until told to stop (a current-thread runtime's tasks only
                // run in here).
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Relaxed) {
                    assert!(Instant::now() < deadline, "R1 was never told to stop");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                l.store(listeners(), Relaxed);
                // A last burst, so that requests are surely in flight when the
                // runtime goes: 128 long reads queued on one descriptor (glibc
                // runs them one at a time), each submitted by one poll, then
                // awaited by a task.
                let submitted = Arc::new(tokio::sync::Notify::new());
                let done = submitted.clone();
                tokio::spawn(async move {
                    let mut reads: Vec<_> = (0..128u64)
                        .map(|i| Box::pin(files[0].read_at(Vec::with_capacity(1 << 20), i * 4096)))
                        .collect();
                    for read in &mut reads {
                        assert!(futures::poll!(read.as_mut()).is_pending());
                    }
                    done.notify_one();
                    futures::future::join_all(reads).await;
                });
                submitted.notified().await;
            });
            // Every request, R2's included.
            let in_flight = aiofs::stats().in_flight;
            match kind {
                Shutdown::Background => rt.shutdown_background(),
                Shutdown::Drop | Shutdown::DropCurrentThread => drop(rt),
            }
            gone.store(true, Relaxed);
            in_flight
        })
    };

    // R2 starts once R1 is busy (and so reads the stream with the signal
    // notifier), and goes on until R1 is gone, and (signal notifier) it has
    // its own listener (each runtime that submits reads the stream), and 100
    // more requests after that.
    let deadline = Instant::now() + Duration::from_secs(10);
    while r1_busy.load(Relaxed) < 200 {
        assert!(
            Instant::now() < deadline,
            "R1 made no progress: {:?}",
            aiofs::stats()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let r2_listeners = listeners();
    let rt2 = multi_thread(2);
    let r2_done = rt2.block_on(bounded("R2's I/O", 20, async {
        let file = Arc::new(open_rw(&r2_path).await);
        let done = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..8u64)
            .map(|t| {
                let (file, done) = (file.clone(), done.clone());
                let gone = r1_gone.clone();
                tokio::spawn(async move {
                    let mut rng = Rng::new(100 + t);
                    let mut after_gone = None;
                    for n in 0.. {
                        let at = t * (LEN / 8) + rng.below(LEN / 8 - 8192);
                        let len = 1 + rng.below(8192) as usize;
                        write_read(&file, at, len, n).await.expect("R2 write_read");
                        done.fetch_add(1, Relaxed);
                        let took_over = !listening() || listeners() > r2_listeners;
                        if gone.load(Relaxed) && took_over {
                            let first = *after_gone.get_or_insert(n);
                            if n >= first + 100 / 8 {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        // Both run side by side for a while, then R1 goes.
        while done.load(Relaxed) < 100 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop_r1.store(true, Relaxed);
        for t in tasks {
            t.await.expect("R2 task");
        }
        done.load(Relaxed)
    }));
    let in_flight_at_shutdown = r1.join().expect("R1's thread");
    drop(rt2);
    settle_all();
    // R1's tasks were dropped, and the requests they left behind freed: no
    // descriptor of R1's (or R2's) files is open.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_fds_under(dir.path()) > 0 {
        assert!(
            Instant::now() < deadline,
            "{kind:?}: {} descriptors of the test's files still open: {:?}",
            open_fds_under(dir.path()),
            aiofs::stats()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let after = aiofs::stats();
    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "{kind:?}: R1's requests: {errors:?}");
    // Only R1's futures can have been dropped in flight.
    assert!(
        after.cancelled > before.cancelled,
        "{kind:?}: no request was in flight when R1 went away: {before:?} → {after:?}"
    );
    if listening() {
        assert_eq!(
            r2_listeners,
            before.listeners + 1,
            "{kind:?}: R1 read the stream"
        );
        assert!(
            after.listeners >= before.listeners + 2,
            "{kind:?}: {after:?}"
        );
    } else {
        assert_eq!(after.listeners, before.listeners, "{kind:?}: {after:?}");
    }
    // R1's files hold exactly what they held.
    for k in 0..2u64 {
        let data = std::fs::read(dir.path().join(format!("r1-{k}"))).expect("read back");
        assert!(
            data == pattern_bytes((k + 1) << 40, LEN as usize),
            "{kind:?}: r1-{k} changed"
        );
    }
    println!(
        "{kind:?}: R1 made {} requests, {in_flight_at_shutdown} in flight (R2's included) when it \
         went, {} dropped in flight; R2 made {r2_done}",
        r1_busy.load(Relaxed),
        after.cancelled - before.cancelled
    );
}

#[test]
fn runtime_shut_down_in_the_background_with_requests_in_flight() {
    aio_only();
    let _serial = serial();
    shut_down_with_requests_in_flight(Shutdown::Background);
}

#[test]
fn runtime_dropped_with_requests_in_flight() {
    aio_only();
    let _serial = serial();
    shut_down_with_requests_in_flight(Shutdown::Drop);
}

#[test]
fn current_thread_runtime_dropped_with_requests_in_flight() {
    aio_only();
    let _serial = serial();
    shut_down_with_requests_in_flight(Shutdown::DropCurrentThread);
}

type Read = Pin<Box<dyn Future<Output = aiofs::BufResult<usize, Vec<u8>>> + Send>>;

/// Reads of 64 KiB at `i * 65536`, created (and, if `poll`, submitted) here.
async fn make_reads(file: &Arc<File>, n: u64, poll: bool) -> Vec<(u64, Read)> {
    let mut reads = Vec::new();
    for i in 0..n {
        let pos = (i * 65536) % LEN;
        let mut read: Read = Box::pin(file.read_at(Vec::with_capacity(65536), pos));
        if poll {
            assert!(futures::poll!(read.as_mut()).is_pending());
        }
        reads.push((pos, read));
    }
    reads
}

async fn await_reads(reads: Vec<(u64, Read)>, what: &str) {
    let all = futures::future::join_all(reads.into_iter().map(|(pos, read)| async move {
        let (res, buf) = read.await;
        let n = res.unwrap_or_else(|e| panic!("{what}: read at {pos}: {e}"));
        assert!(n > 0 && buf.len() == n, "{what}: read at {pos}: {n} bytes");
        assert!(
            buf == pattern_bytes(pos, n),
            "{what}: read at {pos}: wrong data"
        );
    }));
    bounded(what, 10, all).await;
}

#[test]
fn futures_move_from_one_runtime_to_another() {
    aio_only();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = data_file(dir.path(), "data", 0);
    let file = Arc::new(current_thread().block_on(open_rw(&path)));
    let before = aiofs::stats();

    // Created in one runtime, not polled, awaited in another.
    let rt1 = current_thread();
    let reads = rt1.block_on(make_reads(&file, 16, false));
    drop(rt1);
    current_thread().block_on(await_reads(reads, "unpolled, first runtime gone"));

    // Submitted in one runtime, which then goes away; awaited in another.
    let rt1 = current_thread();
    let reads = rt1.block_on(make_reads(&file, 64, true));
    drop(rt1);
    multi_thread(2).block_on(await_reads(reads, "submitted, first runtime gone"));

    // Submitted in a current-thread runtime that stays, idle (with the signal
    // notifier it may hold the stream without reading it); awaited in a runtime
    // on another thread.
    let rt1 = current_thread();
    let reads = rt1.block_on(make_reads(&file, 64, true));
    let idle_took = std::thread::spawn(move || {
        multi_thread(2).block_on(async {
            let started = Instant::now();
            await_reads(reads, "submitted, first runtime idle").await;
            started.elapsed()
        })
    })
    .join()
    .expect("second runtime's thread");
    drop(rt1);

    // Submitted in a task of a busy multi-thread runtime, sent over a channel,
    // awaited in a task of another one; both keep running.
    let rt1 = multi_thread(2);
    let rt2 = multi_thread(2);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<(u64, Read)>>(4);
    let f1 = file.clone();
    let sender = rt1.spawn(async move {
        for _ in 0..8 {
            let reads = make_reads(&f1, 16, true).await;
            tx.send(reads).await.expect("send");
            // Keep this runtime busy with I/O of its own.
            read_check(&f1, 4096, 65536, 0).await.expect("own read");
        }
    });
    let receiver = rt2.spawn(async move {
        let mut n = 0;
        while let Some(reads) = rx.recv().await {
            await_reads(reads, "sent to another runtime").await;
            n += 1;
        }
        n
    });
    rt1.block_on(bounded("sender", 10, sender))
        .expect("sender task");
    let batches = rt2
        .block_on(bounded("receiver", 10, receiver))
        .expect("receiver task");
    assert_eq!(batches, 8);
    drop(rt1);
    drop(rt2);

    drop(file);
    settle_all();
    let after = aiofs::stats();
    assert_eq!(
        after.submitted - before.submitted,
        16 + 64 + 64 + 8 * (16 + 1),
        "every read submitted exactly once: {after:?}"
    );
    println!("awaiting 64 reads submitted on an idle runtime took {idle_took:?}");
}

/// A runtime that listens and is still alive but idle (a current-thread
/// runtime between two `block_on` calls) never holds up the requests of
/// another runtime: each runtime that submits or waits has its own listener.
/// (With a single listener, 20 reads one after another took about 5 s: each
/// finished only at a 250 ms safety-net scan.)
#[test]
fn an_idle_runtime_holding_the_stream_does_not_slow_the_others() {
    aio_only();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = data_file(dir.path(), "data", 0);
    let file = Arc::new(current_thread().block_on(open_rw(&path)));
    let idle = current_thread();
    idle.block_on(read_check(&file, 0, 4096, 0)).expect("read");
    let f = file.clone();
    let took = std::thread::spawn(move || {
        multi_thread(2).block_on(async {
            let started = Instant::now();
            for i in 0..20 {
                read_check(&f, i * 4096, 4096, 0).await.expect("read");
            }
            started.elapsed()
        })
    })
    .join()
    .expect("thread");
    drop(idle);
    assert!(
        took < Duration::from_secs(1),
        "20 reads one after another took {took:?}: {:?}",
        aiofs::stats()
    );
    settle_all();
}

/// Requests from tasks of a `LocalSet`: `!Send` futures holding an `Rc<File>`,
/// on a current-thread runtime and inside a multi-thread runtime's `block_on`
/// (beside `tokio::spawn`ed tasks); then a `LocalSet` dropped with its tasks'
/// requests in flight.
#[test]
fn local_set_tasks_with_an_rc_file() {
    aio_only();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = data_file(dir.path(), "data", 0);
    let shared = data_file(dir.path(), "shared", 3 << 40);
    let before = aiofs::stats();

    // spawn_local tasks sharing an Rc<File>: each writes its own 4 KiB regions
    // and reads them back, and reads the shared file.
    async fn local_tasks(path: &Path, shared: &Path, tag: u64) {
        let file = Rc::new(open_rw(path).await);
        let shared = Rc::new(open_rw(shared).await);
        let tasks: Vec<_> = (0..32u64)
            .map(|t| {
                let (file, shared) = (Rc::clone(&file), Rc::clone(&shared));
                tokio::task::spawn_local(async move {
                    let mut rng = Rng::new(tag << 8 | t);
                    for r in 0..4u64 {
                        let at = (t * 4 + r) * 8192;
                        let len = 1 + rng.below(8192) as usize;
                        write_read(&file, at, len, tag).await?;
                        read_check(&shared, rng.below(LEN), 4096, 3 << 40).await?;
                    }
                    Ok::<_, String>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("local task").expect("local task's I/O");
        }
    }

    let rt = current_thread();
    tokio::task::LocalSet::new().block_on(
        &rt,
        bounded("LocalSet on a current-thread runtime", 10, async {
            local_tasks(&path, &shared, 1).await;
        }),
    );
    drop(rt);

    let rt = multi_thread(2);
    rt.block_on(bounded(
        "LocalSet inside a multi-thread runtime",
        10,
        async {
            let spawned = {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let file = open_rw(&shared).await;
                    for i in 0..64 {
                        read_check(&file, i * 8192, 8192, 3 << 40).await?;
                    }
                    Ok::<_, String>(())
                })
            };
            tokio::task::LocalSet::new()
                .run_until(local_tasks(&path, &shared, 2))
                .await;
            spawned.await.expect("spawned task").expect("spawned I/O");
        },
    ));
    drop(rt);

    // A LocalSet dropped while its tasks wait for 64 reads of 1 MiB submitted
    // (one poll each) on one descriptor: glibc runs them one at a time.
    let rt = current_thread();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let file = Rc::new(open_rw(&shared).await);
        let submitted = Rc::new(tokio::sync::Notify::new());
        let done = Rc::clone(&submitted);
        tokio::task::spawn_local(async move {
            let mut reads: Vec<_> = (0..64u64)
                .map(|i| Box::pin(file.read_at(Vec::with_capacity(1 << 20), i * 4096)))
                .collect();
            for read in &mut reads {
                assert!(futures::poll!(read.as_mut()).is_pending());
            }
            done.notify_one();
            futures::future::join_all(reads).await;
        });
        submitted.notified().await;
    });
    drop(local);
    drop(rt);
    settle_all();
    wait_no_fds_under(dir.path());

    let after = aiofs::stats();
    assert!(
        after.cancelled > before.cancelled,
        "no request was in flight when the LocalSet went: {before:?} → {after:?}"
    );
    // write_read checked every write by reading it back; the file kept its length.
    assert_eq!(std::fs::metadata(&path).expect("metadata").len(), LEN);
}

/// Waits (at most 5 s) until no descriptor of a file under `dir` is open.
fn wait_no_fds_under(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_fds_under(dir) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} descriptors of the test's files still open: {:?}",
            open_fds_under(dir),
            aiofs::stats()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[derive(Debug, Clone, Copy)]
enum Flavor {
    CurrentThread,
    MultiThread,
    LocalSet,
}

/// 200 runtimes one after another, current-thread, multi-thread and `LocalSet`
/// in turn, each opening its files, writing and reading back its own region of a
/// file and reading a file shared by all (the same `Arc<File>`); one in four
/// goes away with requests in flight. With the signal notifier each one takes
/// over the stream from the one before.
#[test]
fn two_hundred_runtimes_of_every_flavor_one_after_another() {
    aio_only();
    const RUNTIMES: u64 = 200;
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = data_file(dir.path(), "data", 0);
    let shared = Arc::new(current_thread().block_on(open_rw(&data_file(dir.path(), "shared", 0))));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut started_listeners = Vec::new();
    let before = aiofs::stats();
    let started = Instant::now();

    for i in 0..RUNTIMES {
        let flavor = [Flavor::CurrentThread, Flavor::MultiThread, Flavor::LocalSet][i as usize % 3];
        let leave_in_flight = i % 4 == 3;
        let (shared, errors) = (Arc::clone(&shared), Arc::clone(&errors));
        let path = path.clone();
        let work = async move {
            let file = open_rw(&path).await;
            // 4 KiB of its own, written in one request then as 4 at once.
            let at = i * 4096;
            write_read(&file, at, 4096, i).await.expect("write_read");
            let all = (0..4).map(|j| write_read(&file, at + j * 1024, 1024, i));
            for res in futures::future::join_all(all).await {
                res.expect("write_read");
            }
            let reads = (0..8).map(|j| read_check(&shared, (i * 8 + j) * 4093 % LEN, 4096, 0));
            for res in futures::future::join_all(reads).await {
                res.expect("shared read");
            }
            if leave_in_flight {
                // Submitted here, awaited by a task the runtime drops.
                let reads = make_reads(&shared, 16, true).await;
                let task = async move {
                    for (pos, read) in reads {
                        let (res, buf) = read.await;
                        let ok = res.is_ok_and(|n| n > 0 && buf == pattern_bytes(pos, n));
                        if !ok {
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("runtime {i}: read at {pos}"));
                        }
                    }
                };
                match flavor {
                    Flavor::LocalSet => drop(tokio::task::spawn_local(task)),
                    _ => drop(tokio::spawn(task)),
                }
            }
        };
        let what = format!("runtime {i} ({flavor:?})");
        let listeners_before = listeners();

        match flavor {
            Flavor::CurrentThread => current_thread().block_on(bounded(&what, 10, work)),
            Flavor::MultiThread => multi_thread(2).block_on(bounded(&what, 10, work)),
            Flavor::LocalSet => {
                let rt = current_thread();
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, bounded(&what, 10, work));
                drop(local);
            }
        }
        started_listeners.push((i, leave_in_flight, listeners() - listeners_before));
    }
    let took = started.elapsed();
    let after = aiofs::stats();
    drop(shared);
    settle_all();
    wait_no_fds_under(dir.path());
    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    // With the signal notifier every runtime took over the stream. One that went
    // away idle started exactly one listener; one shut down while its tasks
    // were still polled may start more on its way out (each dropped at once).
    for &(i, in_flight, n) in &started_listeners {
        if !listening() {
            assert_eq!(n, 0, "runtime {i}: {after:?}");
        } else if in_flight {
            assert!(n >= 1, "runtime {i} did not take over the stream");
        } else {
            assert_eq!(n, 1, "runtime {i}: listeners started");
        }
    }
    let extra: u64 = started_listeners
        .iter()
        .map(|&(_, _, n)| n.saturating_sub(1))
        .sum();
    assert!(
        after.cancelled > before.cancelled,
        "no runtime went away with a request in flight: {before:?} → {after:?}"
    );
    let data = std::fs::read(&path).expect("read back");
    for i in 0..RUNTIMES {
        for j in 0..4 {
            let at = (i * 4096 + j * 1024) as usize;
            let want = pattern_bytes((i << 40) | at as u64, 1024);
            assert!(data[at..at + 1024] == want[..], "runtime {i}'s write {j}");
        }
    }
    println!(
        "{RUNTIMES} runtimes in {took:?}, {} requests, {} dropped in flight, {extra} listeners \
         started by runtimes on their way out",
        after.submitted - before.submitted,
        after.cancelled - before.cancelled
    );
}

/// A runtime dropped with requests in flight and more queued (over the
/// in-flight limit), with no other runtime in the process: with the signal
/// notifier nobody reads the stream any more. The driver must still collect
/// every orphan (its safety net) and close the files.
#[test]
fn runtime_dropped_with_requests_in_flight_and_no_runtime_left() {
    aio_only();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = data_file(dir.path(), "data", 0);
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
        let before = aiofs::stats();
        let rt = match flavor {
            Flavor::MultiThread => multi_thread(2),
            _ => current_thread(),
        };
        // Dirty pages for a sync to write out: the reads below queue behind it
        // in glibc (one request per descriptor at a time), so that they are
        // surely in flight when the runtime goes.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.write_all_at(&vec![0x5A; 64 << 20], LEN))
            .expect("dirty the page cache");
        let polled = rt.block_on(bounded("submitting", 10, async {
            let file = Arc::new(open_rw(&path).await);
            let mut sync = Box::pin({
                let file = Arc::clone(&file);
                async move { file.sync_all().await.expect("sync_all") }
            });
            assert!(futures::poll!(sync.as_mut()).is_pending());
            tokio::spawn(sync);
            // 2,000 reads of 64 KiB, over the default limit (at most 1024).
            let mut polled = 0;
            for _ in 0..8 {
                let reads = make_reads(&file, 250, true).await;
                polled += reads.len();
                // Awaited without checking: a poll of the worker running a task
                // is not cut short by the shutdown, so keep it cheap.
                tokio::spawn(futures::future::join_all(reads.into_iter().map(|(_, r)| r)));
            }
            polled
        }));
        let at_drop = aiofs::stats();
        drop(rt);
        let dropped = Instant::now();
        // No runtime exists any more: watch from this plain thread.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = aiofs::stats();
            if s.in_flight == 0 && s.queued == 0 && s.orphaned == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{flavor:?}: orphans not collected within 10 s without a runtime: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        wait_no_fds_under(dir.path());
        let after = aiofs::stats();
        assert_eq!(polled, 2000);
        assert!(
            at_drop.in_flight > 0 || at_drop.queued > 0,
            "{flavor:?}: nothing in flight when the runtime went: {at_drop:?}"
        );
        assert!(
            after.cancelled > before.cancelled,
            "{flavor:?}: {before:?} → {after:?}"
        );
        println!(
            "{flavor:?}: {} in flight and {} queued when the runtime went; {} dropped in flight, \
             all collected {:?} after",
            at_drop.in_flight,
            at_drop.queued,
            after.cancelled - before.cancelled,
            dropped.elapsed()
        );
    }
}

/// Positioned requests of every kind awaited with `futures::executor::block_on`
/// on four plain threads at once, more of them than the in-flight limit. In a
/// child process: no runtime may exist. With the pipe notifier they work; with
/// the signal notifier (documented to need a Tokio runtime) each fails at once
/// with an error that says so, nothing submitted, the buffers back: no hang.
#[test]
fn positioned_requests_from_block_on_on_plain_threads() {
    if in_child("positioned_requests_from_block_on_on_plain_threads") {
        // A small limit, so that the 1,200 reads at once of each thread surely
        // wait for a place; AIO only, so that they are really in flight.
        aiofs::Config::new()
            .nowait(false)
            .max_in_flight(16)
            .install()
            .expect("install the child's Config");
        block_on_on_plain_threads();
    }
}

fn block_on_on_plain_threads() {
    use futures::executor::block_on;

    assert!(tokio::runtime::Handle::try_current().is_err());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = data_file(dir.path(), "data", 0);
    let std_file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open");
    let signal = signal_notifier();
    if !signal {
        // Dirty pages for the syncs to write out (see `one_thread`).
        std_file
            .write_all_at(&vec![0x5A; 16 << 20], LEN)
            .expect("dirty the page cache");
    }
    let file = Arc::new(aiofs::File::from_std(std_file));
    let (tx, rx) = std::sync::mpsc::channel();
    for t in 0..4u64 {
        let (file, tx) = (Arc::clone(&file), tx.clone());
        std::thread::spawn(move || {
            let res = block_on(one_thread(&file, t, signal));
            tx.send((t, res)).expect("send");
        });
    }
    drop(tx);
    for _ in 0..4 {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok((t, res)) => res.unwrap_or_else(|e| panic!("thread {t}: {e}")),
            Err(e) => panic!(
                "a block_on thread did not finish within 20 s ({e}): {:?}",
                aiofs::stats()
            ),
        }
    }
    let s = aiofs::stats();
    if signal {
        assert_eq!(s.submitted, 0, "{s:?}");
        assert!(std::fs::read(&path).expect("read") == pattern_bytes(0, LEN as usize));
        return;
    }
    // Nothing left behind (watched from this plain thread).
    let deadline = Instant::now() + Duration::from_secs(5);
    while aiofs::stats().in_flight > 0 {
        assert!(Instant::now() < deadline, "{:?}", aiofs::stats());
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(s.waited > 0, "never over the in-flight limit: {s:?}");
}

/// One thread's requests: a sync and 1,200 reads at once, then writes, vectored
/// requests and a batch in its own quarter of the file. With the signal notifier,
/// checks that each fails clearly instead.
async fn one_thread(file: &File, t: u64, signal: bool) -> Result<(), String> {
    let quarter = LEN / 4;
    let base = t * quarter;
    let clear = |what: &str, e: std::io::Error| {
        if signal && e.to_string().contains("Tokio") {
            Ok(())
        } else {
            Err(format!("{what}: {e}"))
        }
    };
    let expect_err = |what: &str| -> Result<(), String> {
        if signal {
            Err(format!("{what}: succeeded without a runtime"))
        } else {
            Ok(())
        }
    };

    let reads = (0..1200u64).map(|i| {
        let pos = base + (i * 4099) % (quarter - 4096);
        async move { (pos, file.read_at(Vec::with_capacity(4096), pos).await) }
    });
    // A sync first, then the reads: on the same descriptor they wait behind it
    // in glibc, so the four threads' reads go over the in-flight limit.
    let (synced, reads) = futures::join!(file.sync_data(), futures::future::join_all(reads));
    match synced {
        Ok(()) => expect_err("sync_data")?,
        Err(e) => clear("sync_data", e)?,
    }
    for (pos, (res, buf)) in reads {
        match res {
            Ok(n) => {
                expect_err("read_at")?;
                if n != 4096 || buf != pattern_bytes(pos, n) {
                    return Err(format!("read_at({pos}): {n} bytes, wrong count or data"));
                }
            }
            Err(e) => {
                clear("read_at", e)?;
                if buf.capacity() < 4096 || !buf.is_empty() {
                    return Err("read_at: the buffer did not come back".into());
                }
            }
        }
    }

    // Writes (of the bytes already there, shifted by the tag) and read-back.
    let tag = (t + 1) << 40;
    let at = base + 8192;
    let data = pattern_bytes(tag, 8192);
    match file.write_all_at(data.clone(), at).await {
        (Ok(()), _) => {
            expect_err("write_all_at")?;
            let (res, buf) = file.read_exact_at(Vec::with_capacity(8192), at).await;
            res.map_err(|e| format!("read_exact_at: {e}"))?;
            if buf != data {
                return Err("read_exact_at: wrong data".into());
            }
        }
        (Err(e), buf) => {
            clear("write_all_at", e)?;
            if buf != data {
                return Err("write_all_at: the buffer did not come back".into());
            }
        }
    }

    let at = base + 65536;
    let bufs: Vec<Vec<u8>> = (0..4).map(|k| pattern_bytes(tag + 100 * k, 1000)).collect();
    match file.writev_at(bufs.clone(), at).await {
        (Ok(n), _) => {
            expect_err("writev_at")?;
            if n != 4000 {
                return Err(format!("writev_at: {n} bytes"));
            }
            let (res, back) = file
                .readv_at((0..4).map(|_| Vec::with_capacity(1000)).collect(), at)
                .await;
            if res.map_err(|e| format!("readv_at: {e}"))? != 4000 || back != bufs {
                return Err("readv_at: wrong count or data".into());
            }
        }
        (Err(e), back) => {
            clear("writev_at", e)?;
            if back != bufs {
                return Err("writev_at: the buffers did not come back".into());
            }
        }
    }

    let mut batch = aiofs::Batch::new();
    for k in 0..16u64 {
        batch.read_at(file, Vec::with_capacity(512), base + 131072 + k * 512);
    }
    for (k, (res, buf)) in batch.submit().await.into_iter().enumerate() {
        let pos = base + 131072 + k as u64 * 512;
        match res {
            Ok(n) => {
                expect_err("batch read")?;
                if n != 512 || buf != pattern_bytes(pos, 512) {
                    return Err(format!("batch read at {pos}: wrong count or data"));
                }
            }
            Err(e) => clear("batch read", e)?,
        }
    }

    Ok(())
}

/// With the signal notifier, a multi-thread runtime shutting down while its
/// tasks still poll aiofs futures must not restart the listener on itself: its
/// own listener task is dropped first (every waiting future is woken), and the
/// futures its workers poll next must not start a new one on the dying
/// runtime (which would drop it at once and wake everyone again, in a loop:
/// up to 62 listeners from one runtime were seen before the fix).
#[test]
fn a_runtime_shutting_down_starts_no_listener() {
    aio_only();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = Arc::new(current_thread().block_on(open_rw(&data_file(dir.path(), "data", 0))));
    let mut extra = Vec::new();
    for i in 0..20 {
        let rt = multi_thread(2);
        rt.block_on(async {
            read_check(&file, 0, 4096, 0).await.expect("read");
            for _ in 0..4 {
                let reads = make_reads(&file, 64, true).await;
                tokio::spawn(futures::future::join_all(reads.into_iter().map(|(_, r)| r)));
            }
        });
        let before = listeners();
        drop(rt);
        let n = listeners() - before;
        if n > 0 {
            extra.push((i, n));
        }
    }
    settle_all();
    assert!(
        extra.is_empty(),
        "(runtime, listeners started while it shut down): {extra:?}"
    );
}
