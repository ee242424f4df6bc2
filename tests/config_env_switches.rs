//! The driver's switches from the environment: `AIOFS_LISTIO=0` (queued
//! requests start one by one), `AIOFS_READ_AHEAD=0` (the stream reads exactly
//! what is asked), and a bad value refused naming the variable. Each case runs
//! in its own child process: the environment is read once, at the driver's
//! start.

mod support;

use std::sync::Arc;

use support::{in_child, pattern_bytes};

fn set(vars: &[(&str, &str)]) {
    for (k, v) in vars {
        // SAFETY: the child process runs this test alone, before the driver
        // starts and before any other thread reads the environment.
        unsafe { std::env::set_var(k, v) };
    }
}

#[test]
fn listio_0_starts_queued_requests_one_by_one_and_read_ahead_0_reads_exactly() {
    if !in_child("listio_0_starts_queued_requests_one_by_one_and_read_ahead_0_reads_exactly") {
        return;
    }
    set(&[
        ("AIOFS_LISTIO", "0"),
        ("AIOFS_READ_AHEAD", "0"),
        ("AIOFS_NOWAIT", "0"),
    ]);
    // A small limit so that requests queue; the switches come from the
    // environment (fields a Config leaves unset).
    aiofs::Config::new().max_in_flight(2).install().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, pattern_bytes(0, 1 << 20)).unwrap();
        let file = Arc::new(aiofs::File::open(&path).await.unwrap());

        let before = aiofs::stats();
        // Submitted back to back in one poll: all but two wait in the queue.
        let reads = (0..64u64).map(|i| {
            let file = Arc::clone(&file);
            async move {
                let (res, buf) = file.read_at(Vec::with_capacity(4096), i * 4096).await;
                assert_eq!(res.unwrap(), 4096);
                assert_eq!(buf, pattern_bytes(i * 4096, 4096));
            }
        });
        futures::future::join_all(reads).await;
        let after = aiofs::stats();
        assert!(after.waited > before.waited, "nothing queued: {after:?}");
        assert_eq!(
            after.listio_calls, before.listio_calls,
            "AIOFS_LISTIO=0, yet lio_listio was called: {after:?}"
        );

        // The stream: 8 KiB reads of a 1 MiB file, each one request.
        let mut f = aiofs::File::open(&path).await.unwrap();
        let before = aiofs::stats();
        let mut sink = Vec::new();
        let n = tokio::io::copy(&mut f, &mut sink).await.unwrap();
        assert_eq!(n, 1 << 20);
        assert_eq!(sink, pattern_bytes(0, 1 << 20));
        let after = aiofs::stats();
        assert_eq!(
            after.submitted - before.submitted,
            (1 << 20) / 8192 + 1,
            "AIOFS_READ_AHEAD=0: one exact read per 8 KiB, and one at the end: {after:?}"
        );
        assert_eq!(
            after.pool_fds_opened, before.pool_fds_opened,
            "no read-ahead descriptor"
        );
    });
}

#[test]
fn with_read_ahead_on_the_same_stream_reads_in_large_chunks() {
    if !in_child("with_read_ahead_on_the_same_stream_reads_in_large_chunks") {
        return;
    }
    set(&[("AIOFS_NOWAIT", "0")]);
    aiofs::Config::new().max_in_flight(2).install().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, pattern_bytes(0, 1 << 20)).unwrap();
        let mut f = aiofs::File::open(&path).await.unwrap();
        let before = aiofs::stats();
        let mut sink = Vec::new();
        assert_eq!(tokio::io::copy(&mut f, &mut sink).await.unwrap(), 1 << 20);
        let after = aiofs::stats();
        assert!(
            after.submitted - before.submitted < 32,
            "read-ahead should read in large chunks: {after:?}"
        );
    });
}

#[test]
fn a_bad_read_ahead_variable_is_refused_naming_it() {
    if !in_child("a_bad_read_ahead_variable_is_refused_naming_it") {
        return;
    }
    set(&[("AIOFS_READ_AHEAD", "lots")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let file = aiofs::File::from_std(tempfile::tempfile().unwrap());
        let (res, _) = file.read_at(Vec::with_capacity(4), 0).await;
        let err = res.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("AIOFS_READ_AHEAD"), "{err}");
    });
}

#[test]
fn a_bad_listio_variable_is_refused_naming_it() {
    if !in_child("a_bad_listio_variable_is_refused_naming_it") {
        return;
    }
    set(&[("AIOFS_LISTIO", "maybe")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let file = aiofs::File::from_std(tempfile::tempfile().unwrap());
        let (res, _) = file.read_at(Vec::with_capacity(4), 0).await;
        let err = res.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("AIOFS_LISTIO"), "{err}");
    });
}
