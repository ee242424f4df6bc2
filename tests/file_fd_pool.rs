//! Descriptors on demand (issue 11, item 6).
//!
//! An `O_DIRECT` file used to take 8 descriptors at its first reads (its own
//! and 7 duplicates, kept while it lives) and every sequential stream reader
//! one more: under `ulimit -n 1024`, about 110 `O_DIRECT` files exhausted the
//! process. Duplicates must be opened when the queue depth needs them and
//! closed when idle, `EMFILE` on a duplicate must never fail a request, the
//! total of duplicates is bounded (by default `min(64, RLIMIT_NOFILE / 8)`),
//! and `stats().pool_fds` counts every duplicate open now.
//!
//! - `with_256_descriptors_150_o_direct_files_read_at_depth_and_a_file_still_opens`:
//!   with `RLIMIT_NOFILE` at 256 (in a child process of this binary), 150
//!   `O_DIRECT` files each with 8 aligned 4 KiB reads at once (all 150 at
//!   once) all succeed with the right data, the process can still open a
//!   plain file afterwards (the 150 files still open), and the duplicates
//!   stay within the bound.
//! - `read_ahead_duplicates_are_counted_in_pool_fds_and_given_back`: a
//!   sequential `AsyncRead` reader whose window widens opens a duplicate for
//!   its read-ahead: `pool_fds` counts it, as the descriptors under the
//!   file's directory show, and it comes back down once the `File` is gone.
//!
//! The notifier comes from `AIOFS_NOTIFIER`.

// `serial()` is held across awaits on purpose: the tests compare the
// process-wide gauge and descriptors, one at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use aiofs::buf::AlignedBuf;
use support::{in_child, open_fds_under, pattern_bytes, serial};
use tokio::io::AsyncReadExt;

const FILES: usize = 150;
const DEPTH: u64 = 8;
const BLOCK: usize = 4096;
const NOFILE: u64 = 256;
/// The default bound on duplicates: `min(64, RLIMIT_NOFILE / 8)`.
const POOL_BOUND: u64 = NOFILE / 8;

/// Whether `dir`'s filesystem takes `O_DIRECT` opens.
fn o_direct_works(dir: &Path) -> Result<(), std::io::Error> {
    let path = dir.join("probe");
    std::fs::write(&path, vec![0u8; BLOCK])?;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .map(drop)
}

#[test]
fn with_256_descriptors_150_o_direct_files_read_at_depth_and_a_file_still_opens() {
    let _serial = serial();
    let name = "with_256_descriptors_150_o_direct_files_read_at_depth_and_a_file_still_opens";
    if !in_child(name) {
        return;
    }
    // Before the driver and the runtime start.
    support::process::set_soft_limit(libc::RLIMIT_NOFILE, NOFILE);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    if let Err(e) = o_direct_works(dir.path()) {
        eprintln!("SKIPPED {name}: O_DIRECT is refused here: {e}");
        return;
    }
    let len = DEPTH as usize * BLOCK;
    let paths: Vec<_> = (0..FILES)
        .map(|k| {
            let path = dir.path().join(format!("f{k}"));
            std::fs::write(&path, pattern_bytes((k as u64) << 32, len)).expect("write");
            path
        })
        .collect();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let mut files = Vec::new();
            for path in &paths {
                let f = aiofs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(path)
                    .await
                    .expect("open O_DIRECT");
                files.push(f);
            }
            // 8 reads of each file at once, all files at once.
            let reads = files.iter().enumerate().flat_map(|(k, f)| {
                (0..DEPTH).map(move |i| async move {
                    let pos = i * BLOCK as u64;
                    let (res, buf) = f.read_at(AlignedBuf::new(BLOCK, BLOCK), pos).await;
                    match res {
                        Ok(BLOCK)
                            if buf[..] == pattern_bytes(((k as u64) << 32) + pos, BLOCK)[..] =>
                        {
                            Ok(())
                        }
                        Ok(BLOCK) => Err(format!("file {k}, read at {pos}: wrong data")),
                        other => Err(format!("file {k}, read at {pos}: {other:?}")),
                    }
                })
            });
            let results =
                support::bounded("1200 O_DIRECT reads", 60, futures::future::join_all(reads)).await;
            let failed: Vec<_> = results.into_iter().filter_map(Result::err).collect();
            // The 150 files are still open: the process can still open a file
            // (tried first: counting the descriptors needs one too).
            let plain = std::fs::File::open(&paths[0]);
            let s = aiofs::stats();
            println!(
                "{} of {} reads failed; opening a plain file: {:?}; {s:?}",
                failed.len(),
                FILES as u64 * DEPTH,
                plain.as_ref().map(drop)
            );
            assert!(
                failed.is_empty(),
                "{} reads failed with RLIMIT_NOFILE at {NOFILE}, e.g. {:?}",
                failed.len(),
                &failed[..failed.len().min(5)]
            );
            assert!(
                plain.is_ok(),
                "with {FILES} O_DIRECT files open after their reads, opening a plain file \
                 fails: {:?}: their duplicates took every descriptor left under \
                 RLIMIT_NOFILE = {NOFILE} (stats().pool_fds = {})",
                plain.err(),
                s.pool_fds
            );
            drop(plain);
            let under = open_fds_under(dir.path());
            assert!(
                under as u64 <= FILES as u64 + POOL_BOUND,
                "{under} descriptors name the files: more than their own {FILES} plus the \
                 default bound of {POOL_BOUND} duplicates"
            );
            assert!(
                s.pool_fds <= POOL_BOUND,
                "stats().pool_fds = {}: more duplicates open than the default bound \
                 min(64, {NOFILE} / 8) = {POOL_BOUND}",
                s.pool_fds
            );
            drop(files);
        });
}

/// Samples the duplicates of the one file under `dir`: `Some((gauge, seen))`
/// when `pool_fds` did not change while the descriptors were counted. A
/// duplicate closing between the count and the gauge could make them differ
/// for a moment: a difference is only kept if it lasts over a few tries.
fn sample(dir: &Path, base: u64) -> Option<(u64, u64)> {
    let mut last = None;
    for _ in 0..5 {
        let g1 = aiofs::stats().pool_fds;
        let seen = open_fds_under(dir).saturating_sub(1) as u64;
        let g2 = aiofs::stats().pool_fds;
        if g1 == g2 {
            let s = (g1.wrapping_sub(base), seen);
            if s.0 == s.1 {
                return Some(s);
            }
            last = Some(s);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_duplicates_are_counted_in_pool_fds_and_given_back() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let len = 16 << 20;
    std::fs::write(&path, pattern_bytes(0, len)).expect("write");
    let base = aiofs::stats().pool_fds;

    let mut file = aiofs::File::open(&path).await.expect("open");
    let mut buf = vec![0u8; 64 << 10];
    let mut read = 0;
    let mut samples = Vec::new();
    while read < len {
        let n = file.read(&mut buf).await.expect("read");
        assert!(n > 0, "early end of file at {read}");
        assert!(
            buf[..n] == pattern_bytes(read as u64, n)[..],
            "wrong bytes at {read}"
        );
        read += n;
        samples.extend(sample(dir.path(), base));
    }
    let dup_seen = samples.iter().map(|&(_, seen)| seen).max().unwrap_or(0);
    let wrong: Vec<_> = samples.iter().filter(|(g, seen)| g != seen).collect();
    println!(
        "{} samples, at most {dup_seen} duplicates seen; gauge differs from the descriptors in \
         {} samples, e.g. {:?}",
        samples.len(),
        wrong.len(),
        wrong.first()
    );
    assert!(
        dup_seen >= 1,
        "precondition: a sequential reader whose window widens reads ahead on a duplicate"
    );
    assert!(
        wrong.is_empty(),
        "stats().pool_fds does not count the read-ahead duplicates: (pool_fds - before, \
         duplicates open) = {:?}",
        &wrong[..wrong.len().min(5)]
    );

    drop(file);
    // Back down once the File is gone (its reads in flight finish first).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let under = open_fds_under(dir.path());
        let gauge = aiofs::stats().pool_fds;
        if under == 0 && gauge == base {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "10 s after the File was dropped: {under} descriptors on the file, \
             stats().pool_fds = {gauge} (was {base} before)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
