//! A task that wrote through `AsyncWrite` (bytes only buffered) and then
//! panics drops its `File` while unwinding. That drop may be the first
//! request of the runtime, whose first submission registers the driver's
//! descriptors with the runtime's reactor (a probe that catches Tokio's panic
//! for a runtime without IO): it must not panic again, which aborts the
//! process ("panic in a destructor during cleanup"). The buffered bytes still
//! land. Its own binary: it sees the process's first request and its panic hook.

use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[test]
fn a_file_dropped_while_its_task_unwinds_writes_its_bytes_without_aborting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let task_path = path.clone();
    let joined = rt.block_on(async move {
        tokio::spawn(async move {
            let mut f = aiofs::File::create(&task_path).await.unwrap();
            f.write_all(b"written before the panic").await.unwrap();
            panic!("the task panics with its bytes still buffered");
        })
        .await
    });
    assert!(joined.unwrap_err().is_panic());
    // The drop handed the bytes on; the runtime's shutdown waits for them.
    drop(rt);
    let got = std::fs::read(&path).unwrap();
    assert_eq!(got, b"written before the panic");
    // And aiofs still works in this process.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let got = tokio::time::timeout(Duration::from_secs(10), aiofs::read(&path))
            .await
            .expect("aiofs::read timed out")
            .unwrap();
        assert_eq!(got, b"written before the panic");
        let f = aiofs::File::open(&path).await.unwrap();
        let (res, buf) = f.read_at(Vec::with_capacity(7), 0).await;
        assert_eq!(res.unwrap(), 7);
        assert_eq!(buf, b"written");
    });
}
