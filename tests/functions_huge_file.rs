//! No allocation the caller did not ask for may abort the process (issue 11,
//! item 4): `aiofs::read` reserved the file's length up front, so an 8 TiB
//! sparse file ended in "memory allocation of 8796093022209 bytes failed"
//! and `SIGABRT`. `std::fs::read` and `tokio::fs::read` return an error; so
//! must `aiofs::read` and `aiofs::read_to_string` (`ErrorKind::OutOfMemory`,
//! as `std`).
//!
//! `reading_an_8_tib_sparse_file_is_out_of_memory_not_an_abort` runs in a
//! child process of this binary (`support::in_child`): today the child aborts.
//! It is skipped where the filesystem refuses an 8 TiB file, or where memory
//! overcommit is unlimited (`vm.overcommit_memory = 1`: the allocation could
//! succeed, and the read would then take hours). The notifier comes from
//! `AIOFS_NOTIFIER`.

mod support;

use std::io::ErrorKind;

use support::{in_child, serial};

const SIZE: u64 = 8 << 40;

#[test]
fn reading_an_8_tib_sparse_file_is_out_of_memory_not_an_abort() {
    let _serial = serial();
    let name = "reading_an_8_tib_sparse_file_is_out_of_memory_not_an_abort";
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if overcommit.trim() == "1" {
        eprintln!("SKIPPED {name}: vm.overcommit_memory = 1, an 8 TiB allocation may succeed");
        return;
    }
    if !in_child(name) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sparse");
    let f = std::fs::File::create(&path).expect("create");
    if let Err(e) = f.set_len(SIZE) {
        eprintln!("SKIPPED {name}: the filesystem refuses an 8 TiB file: {e}");
        return;
    }
    drop(f);

    // What std and tokio::fs do.
    let e = std::fs::read(&path).expect_err("std::fs::read of 8 TiB");
    println!("std::fs::read: {e} ({:?})", e.kind());
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "std::fs::read: {e:?}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let e = tokio::fs::read(&path)
            .await
            .expect_err("tokio::fs::read of 8 TiB");
        println!("tokio::fs::read: {e} ({:?})", e.kind());

        let e = aiofs::read(&path).await.expect_err("aiofs::read of 8 TiB");
        println!("aiofs::read: {e} ({:?})", e.kind());
        assert_eq!(e.kind(), ErrorKind::OutOfMemory, "aiofs::read: {e:?}");
        let e = aiofs::read_to_string(&path)
            .await
            .expect_err("aiofs::read_to_string of 8 TiB");
        println!("aiofs::read_to_string: {e} ({:?})", e.kind());
        assert_eq!(
            e.kind(),
            ErrorKind::OutOfMemory,
            "aiofs::read_to_string: {e:?}"
        );
    });
}
