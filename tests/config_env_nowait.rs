//! `AIOFS_NOWAIT=0` turns the page-cache fast path off: every read is AIO.
//! Its own binary: the variable is read once, when the driver starts.

mod support;

use support::pattern_bytes;

#[tokio::test]
async fn aiofs_nowait_0_sends_every_read_through_aio() {
    // SAFETY: set before any thread of this binary could read the environment
    // (the runtime of this test has no other task; the driver starts below).
    unsafe { std::env::set_var("AIOFS_NOWAIT", "0") };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, pattern_bytes(0, 65536)).unwrap();
    let file = aiofs::File::open(&path).await.unwrap();
    for i in 0..100u64 {
        let (res, buf) = file
            .read_at(Vec::with_capacity(4096), (i % 16) * 4096)
            .await;
        assert_eq!(res.unwrap(), 4096);
        assert_eq!(buf, pattern_bytes((i % 16) * 4096, 4096));
    }
    let s = aiofs::stats();
    assert_eq!((s.nowait_reads, s.nowait_misses), (0, 0), "{s:?}");
    assert!(s.submitted >= 100, "{s:?}");
    // The driver started with the fast path off: turning it on now is refused.
    let err = aiofs::Config::new().nowait(true).install().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
}
