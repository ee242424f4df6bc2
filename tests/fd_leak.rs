//! No descriptor leaks: rounds of every kind of workload (files opened and
//! closed every way, positioned and vectored requests, batches, the stream
//! with read-ahead and write-behind, descriptor pools, `O_DIRECT`, requests and
//! whole runtimes dropped in flight, `try_clone` / `into_std`, the data
//! functions, requests that fail) and, once everything is dropped and the
//! driver is idle, the process has exactly the descriptors it had before the
//! round.
//!
//! The descriptor count is process-wide: its own binary, one test. The notifier
//! comes from `AIOFS_NOTIFIER`.

mod support;

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiofs::buf::AlignedBuf;
use aiofs::{Batch, File};
use futures::StreamExt;
use support::{bounded, idle, open_fds, open_fds_under, open_rw, pattern_bytes, serial};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};

const LEN: usize = 4 << 20;

/// The process's descriptors and what they name.
fn fd_table() -> BTreeMap<u32, String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((n, target.display().to_string()))
        })
        .collect()
}

/// Waits (at most 10 s) until no request is in flight, no descriptor names a
/// file under `dir`, and the process has `baseline` descriptors (if given).
async fn wait_back(dir: &Path, baseline: Option<(usize, &BTreeMap<u32, String>)>, what: &str) {
    idle().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let under = open_fds_under(dir);
        let count_ok = baseline.is_none_or(|(n, _)| open_fds() == n);
        if under == 0 && count_ok {
            return;
        }
        if Instant::now() > deadline {
            let now = fd_table();
            let extra: Vec<_> = match baseline {
                Some((_, before)) => now
                    .iter()
                    .filter(|(n, t)| before.get(n) != Some(t))
                    .collect(),
                None => now
                    .iter()
                    .filter(|(_, t)| t.contains(&*dir.to_string_lossy()))
                    .collect(),
            };
            let gone: Vec<_> = match baseline {
                Some((_, before)) => before
                    .iter()
                    .filter(|(n, t)| now.get(n) != Some(t))
                    .collect(),
                None => Vec::new(),
            };
            panic!(
                "{what}: descriptors not back within 10 s: {under} under the test's directory, \
                 {} open (baseline {:?}); new: {extra:?}; gone: {gone:?}; {:?}",
                open_fds(),
                baseline.map(|(n, _)| n),
                aiofs::stats()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct Fixture {
    dir: PathBuf,
    data: PathBuf,
    content: Vec<u8>,
}

/// The most descriptors seen open during a round.
struct Peak(usize);

impl Peak {
    fn see(&mut self) {
        self.0 = self.0.max(open_fds());
    }
}

/// One round of every workload; everything it opens is dropped when it returns.
async fn round(fx: &Fixture, r: u64, peak: &mut Peak) {
    let dir = &fx.dir;
    let scratch = |name: &str| dir.join(format!("{name}-{r}"));

    // Files opened and closed every way.
    {
        let a = File::open(&fx.data).await.expect("open");
        let b = File::create(scratch("created")).await.expect("create");
        let c = File::create_new(scratch("new")).await.expect("create_new");
        let d = aiofs::OpenOptions::new()
            .append(true)
            .open(scratch("created"))
            .await
            .expect("open append");
        let e = File::from_std(std::fs::File::open(&fx.data).expect("std open"));
        let f = File::from(OwnedFd::from(
            std::fs::File::open(&fx.data).expect("std open"),
        ));
        let missing = File::open(dir.join("missing")).await;
        assert!(missing.is_err());
        peak.see();
        drop((a, b, c, d, e, f));
    }

    // Positioned requests, syncs and blocking-pool calls on one file.
    {
        let file = Arc::new(open_rw(&fx.data).await);
        let reads = (0..64u64).map(|i| file.read_at(Vec::with_capacity(8192), i * 65536));
        for (i, (res, buf)) in futures::future::join_all(reads)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(res.expect("read_at"), 8192);
            let at = i * 65536;
            assert!(buf[..] == fx.content[at..at + 8192]);
        }
        let at = LEN / 2;
        let (res, _) = file
            .write_all_at(fx.content[at..at + 100_000].to_vec(), at as u64)
            .await;
        res.expect("write_all_at");
        let (res, _) = file.read_exact_at(vec![0u8; 100_000], at as u64).await;
        res.expect("read_exact_at");
        file.sync_data().await.expect("sync_data");
        file.sync_all().await.expect("sync_all");
        assert_eq!(file.metadata().await.expect("metadata").len(), LEN as u64);
        let perm = file.metadata().await.expect("metadata").permissions();
        file.set_permissions(perm).await.expect("set_permissions");
        let other = File::create(scratch("len")).await.expect("create");
        other.set_len(12345).await.expect("set_len");
        peak.see();
    }

    // The stream: read-ahead over a whole file, lines, seeks, write-behind
    // flushed and not flushed, tokio::io::copy between two aiofs files.
    {
        let mut file = File::open(&fx.data).await.expect("open");
        let mut all = Vec::new();
        file.read_to_end(&mut all).await.expect("read_to_end");
        assert!(all == fx.content);
        peak.see();
        file.seek(SeekFrom::Start(1000)).await.expect("seek");
        let mut some = vec![0u8; 5000];
        file.read_exact(&mut some).await.expect("read_exact");
        drop(file);

        let mut out = File::create(scratch("written")).await.expect("create");
        for i in 0..300u32 {
            out.write_all(format!("line {i}\n").as_bytes())
                .await
                .expect("write");
        }
        out.write_all(&fx.content[..3 << 20]).await.expect("write");
        out.flush().await.expect("flush");
        drop(out);
        let mut lines = BufReader::new(File::open(scratch("written")).await.expect("open")).lines();
        let first = lines.next_line().await.expect("line");
        assert_eq!(first.as_deref(), Some("line 0"));
        drop(lines);

        // Dropped with unflushed data: written in the background.
        let mut unflushed = File::create(scratch("unflushed")).await.expect("create");
        unflushed
            .write_all(&fx.content[..3 << 20])
            .await
            .expect("write");
        drop(unflushed);

        let mut from = File::open(&fx.data).await.expect("open");
        let mut to = File::create(scratch("copied")).await.expect("create");
        let n = tokio::io::copy(&mut from, &mut to).await.expect("copy");
        assert_eq!(n, LEN as u64);
        to.shutdown().await.expect("shutdown");
        peak.see();
    }

    // Descriptor pools: reads over 8 descriptors; a pooled file dropped while
    // its reads are in flight. (Batches: their reads go to AIO, where the
    // pool is; a cached `read_at` is served on the polling thread.)
    {
        let file = File::open(&fx.data).await.expect("open");
        file.set_fd_pool(8);
        let mut batch = Batch::new();
        for i in 0..256u64 {
            batch.read_at(&file, Vec::with_capacity(16384), i * 16384);
        }
        for (res, _) in batch.submit().await {
            assert_eq!(res.expect("pooled read"), 16384);
        }
        peak.see();
        let file = File::open(&fx.data).await.expect("open");
        file.set_fd_pool(8);
        let mut batch = Batch::new();
        for i in 0..256u64 {
            batch.read_at(&file, Vec::with_capacity(65536), i * 8192);
        }
        let mut each = batch.submit_each();
        let _ = futures::poll!(futures::StreamExt::next(&mut each));
        peak.see();
        drop(file);
        drop(each);
    }

    // O_DIRECT (default pool of 8), if the file system takes it.
    match aiofs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&fx.data)
        .await
    {
        Ok(file) => {
            let reads = (0..64u64).map(|i| file.read_at(AlignedBuf::new(4096, 16384), i * 65536));
            for (res, _) in futures::future::join_all(reads).await {
                assert_eq!(res.expect("O_DIRECT read"), 16384);
            }
            peak.see();
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            if r == 0 {
                eprintln!("O_DIRECT skipped: the file system refuses it ({e})");
            }
        }
        Err(e) => panic!("open O_DIRECT: {e}"),
    }

    // Batches and vectored requests: submitted whole, yielded one by one and
    // dropped half-way, dropped after one poll.
    {
        let files = [
            open_rw(&fx.data).await,
            aiofs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .open(scratch("batch"))
                .await
                .expect("create read-write"),
            File::open(&fx.data).await.expect("open"),
        ];
        let mut batch = Batch::new();
        for i in 0..32u64 {
            batch.read_at(
                &files[if i % 2 == 0 { 0 } else { 2 }],
                Vec::with_capacity(4096),
                i * 4096,
            );
            batch.write_at(&files[1], vec![i as u8; 4096], i * 4096);
        }
        for (res, _) in batch.submit().await {
            res.expect("batch request");
        }
        let mut batch = Batch::new();
        for i in 0..64u64 {
            batch.read_at(&files[2], Vec::with_capacity(65536), i * 65536);
        }
        let mut each = batch.submit_each();
        let _ = each.next().await.expect("one result");
        drop(each);
        let mut batch = Batch::new();
        for i in 0..64u64 {
            batch.read_at(&files[0], Vec::with_capacity(65536), i * 65536);
        }
        let mut submit = Box::pin(batch.submit());
        let _ = futures::poll!(submit.as_mut());
        drop(submit);
        let bufs: Vec<Vec<u8>> = (0..4).map(|k| vec![k; 1000]).collect();
        let (res, _) = files[1].writev_at(bufs, 0).await;
        assert_eq!(res.expect("writev_at"), 4000);
        let bufs = (0..4).map(|_| Vec::with_capacity(1000)).collect();
        let (res, _) = files[1].readv_at(bufs, 0).await;
        assert_eq!(res.expect("readv_at"), 4000);
        peak.see();
    }

    // Requests dropped in flight (and queued), their file dropped first.
    {
        let file = open_rw(&fx.data).await;
        let mut reads: Vec<_> = (0..1500u64)
            .map(|i| Box::pin(file.read_at(Vec::with_capacity(16384), (i * 16384) % LEN as u64)))
            .collect();
        let mut write = Box::pin(file.write_all_at(fx.content[..65536].to_vec(), 0));
        let mut sync = Box::pin(file.sync_all());
        for read in &mut reads {
            let _ = futures::poll!(read.as_mut());
        }
        let _ = futures::poll!(write.as_mut());
        let _ = futures::poll!(sync.as_mut());
        peak.see();
        drop(sync); // it borrows the file
        drop(file);
        drop((reads, write));
    }

    // A whole runtime dropped with requests in flight, on a thread of its own.
    {
        let data = fx.data.clone();
        let dropped = tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let file = Arc::new(File::open(&data).await.expect("open"));
                for t in 0..4u64 {
                    let file = Arc::clone(&file);
                    let mut reads: Vec<_> = (0..100u64)
                        .map(|i| {
                            Box::pin(file.read_at(Vec::with_capacity(65536), (t * 100 + i) * 4096))
                        })
                        .collect();
                    for read in &mut reads {
                        let _ = futures::poll!(read.as_mut());
                    }
                    tokio::spawn(futures::future::join_all(reads));
                }
            });
            drop(rt);
        });
        dropped.await.expect("the runtime's thread");
    }

    // try_clone, into_std, try_into_std.
    {
        let file = open_rw(&fx.data).await;
        let clone = file.try_clone().await.expect("try_clone");
        let (res, _) = clone.read_at(Vec::with_capacity(10), 0).await;
        res.expect("read on the clone");
        let std = clone.into_std().await;
        drop(std);
        match file.try_into_std() {
            Ok(std) => drop(std),
            Err(file) => drop(file),
        }
    }

    // The data functions.
    {
        let data = aiofs::read(&fx.data).await.expect("read");
        assert_eq!(data.len(), LEN);
        aiofs::write(scratch("fn-written"), &data[..1 << 20])
            .await
            .expect("write");
        aiofs::write(scratch("text"), "some text")
            .await
            .expect("write");
        assert_eq!(
            aiofs::read_to_string(scratch("text")).await.expect("read"),
            "some text"
        );
        let n = aiofs::copy(&fx.data, scratch("fn-copied"))
            .await
            .expect("copy");
        assert_eq!(n, LEN as u64);
        assert!(aiofs::read(dir.join("missing")).await.is_err());
    }

    // Requests that fail: a write-only file read (EBADF), a pipe (ESPIPE).
    {
        let wo = aiofs::OpenOptions::new()
            .write(true)
            .open(scratch("created"))
            .await
            .expect("open write-only");
        let (res, _) = wo.read_at(Vec::with_capacity(10), 0).await;
        assert!(res.is_err());
        let mut fds = [-1; 2];
        // SAFETY: `fds` is a valid array of two ints; on success both are open and
        // owned by nobody else.
        let (rd, wr) = unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        let pipe = File::from(rd);
        let (res, _) = pipe.read_at(Vec::with_capacity(10), 0).await;
        assert_eq!(
            res.expect_err("read_at on a pipe").kind(),
            std::io::ErrorKind::NotSeekable
        );
        drop((pipe, wr));
    }
}

#[test]
fn descriptors_return_to_the_baseline_after_every_workload() {
    let _serial = serial();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bounded("four rounds", 60, async {
        // Not /tmp, which may be a tmpfs (no O_DIRECT).
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let content = pattern_bytes(0, LEN);
        let data = tmp.path().join("data");
        std::fs::write(&data, &content).expect("write");
        let fx = Fixture {
            dir: tmp.path().to_owned(),
            data,
            content,
        };
        let before_any = open_fds();
        let stats_before = aiofs::stats();

        // The first round starts what lives as long as the process (the
        // driver's pipe and thread, Tokio's signal pipe); after it, every round
        // must leave exactly what was there.
        let mut peak = Peak(0);
        round(&fx, 0, &mut peak).await;
        wait_back(&fx.dir, None, "round 0").await;
        let baseline = open_fds();
        let table = fd_table();
        // What lives as long as the process: the pipe's two ends, the
        // notifier thread's epoll descriptor and its eventfd (to wake it
        // early), and with the pipe notifier the registry's clone of the
        // epoll descriptor (for a signalfd registered later).
        assert!(
            baseline <= before_any + 5,
            "the first round left {} descriptors open: {table:?}",
            baseline - before_any
        );
        for r in 1..=3 {
            let mut peak = Peak(0);
            round(&fx, r, &mut peak).await;
            assert!(
                peak.0 > baseline + 8,
                "round {r}: the workloads opened few descriptors ({} at most, baseline {baseline})",
                peak.0
            );
            wait_back(&fx.dir, Some((baseline, &table)), &format!("round {r}")).await;
            println!(
                "round {r}: up to {} descriptors, back to {baseline}",
                peak.0
            );
        }
        let after = aiofs::stats();
        assert!(
            after.pool_fds_opened > stats_before.pool_fds_opened,
            "no descriptor pool was used: {after:?}"
        );
        assert!(
            after.cancelled > stats_before.cancelled,
            "nothing dropped in flight: {after:?}"
        );
        println!(
            "{before_any} descriptors before the first round, {baseline} after it; {} pool \
             descriptors made, {} requests dropped in flight",
            after.pool_fds_opened - stats_before.pool_fds_opened,
            after.cancelled - stats_before.cancelled
        );
    }));
}
