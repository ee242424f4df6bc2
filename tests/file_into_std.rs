//! `into_std` with a lazy future outstanding (issue 11, item 5).
//!
//! A positioned future takes a reference to the descriptor when it is
//! created, before its first poll, and `into_std` waited for every reference:
//! `let f = file.read_at(buf, 0); file.into_std().await;` never finished.
//! `into_std` must wait only for requests actually submitted; a future
//! created and never polled does not hold it up, and polling it afterwards
//! returns an error: it never touches the file that got the same descriptor
//! number since.
//!
//! `into_std_does_not_wait_for_a_lazy_future_and_the_future_then_fails`: lazy
//! `write_at`, `read_at`, `write_all_at` and `read_exact_at` futures are
//! created, and `into_std` must finish within 5 s; the `std::fs::File` is
//! dropped and another file is put on the same descriptor number (`dup2`);
//! then the futures are polled: each fails, and neither file changed.
//!
//! `a_lazy_future_polled_after_into_std_leaves_the_clones_seekable` (review of
//! d56b616, defect 4): the lazy future's first poll used to check the
//! descriptor (`lseek`) before finding the file closed; with a pipe on the
//! number by then, it failed with `ESPIPE` and marked the open file
//! description, shared with the file's clones, as not seekable: a clone made
//! before `into_std` (`try_clone`), a regular file, then failed every
//! positioned request. A lazy `read_at` is polled after `into_std` with a
//! pipe on the number (`dup2`): it fails, the pipe keeps its bytes, and the
//! clone still reads, writes and streams.
//!
//! The tests close a descriptor and put another file on its number: they run
//! one at a time (`serial`, taken before each builds its runtime, which opens
//! descriptors), so that neither takes the number the other freed.
//! The notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use support::{bounded, open_rw, pattern_bytes, serial};
use tokio::io::AsyncReadExt;

const LEN: usize = 64 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn into_std_does_not_wait_for_a_lazy_future_and_the_future_then_fails() {
    let _serial = serial();
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, pattern_bytes(0, LEN)).expect("write a");
        std::fs::write(&b, pattern_bytes(1 << 40, LEN)).expect("write b");

        let file = open_rw(&a).await;
        let number = file.as_raw_fd();
        // Created, never polled.
        let lazy_write = file.write_at(b"XXXX".to_vec(), 0);
        let lazy_read = file.read_at(Vec::with_capacity(4096), 0);
        let lazy_write_all = file.write_all_at(b"YYYY".to_vec(), 8);
        let lazy_read_exact = file.read_exact_at(Vec::with_capacity(4096), 0);
        let std = bounded(
            "into_std with lazy positioned futures outstanding",
            5,
            file.into_std(),
        )
        .await;
        assert_eq!(std.as_raw_fd(), number);
        drop(std);

        // Another file on the same descriptor number.
        let other = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&b)
            .expect("open b");
        // `open` takes the lowest free number, likely `number` itself; if not,
        // dup2 puts `b` there.
        let reused = if other.as_raw_fd() == number {
            None
        } else {
            // SAFETY: `number` is closed (the std file was dropped); dup2 makes it
            // a new descriptor for `b`, owned below.
            let rc = unsafe { libc::dup2(other.as_raw_fd(), number) };
            assert_eq!(rc, number, "dup2: {}", std::io::Error::last_os_error());
            // SAFETY: `number` is the descriptor dup2 just made, owned by nobody else.
            Some(unsafe { OwnedFd::from_raw_fd(number) })
        };

        let (res, _) = bounded("the lazy write_at, polled after into_std", 5, lazy_write).await;
        assert!(
            res.is_err(),
            "a write_at created before into_std succeeded after it ({res:?}): it wrote through \
         a descriptor number that names another file now"
        );
        let (res, buf) = bounded("the lazy read_at, polled after into_std", 5, lazy_read).await;
        assert!(
            res.is_err(),
            "a read_at created before into_std succeeded after it ({res:?}, {} bytes): it read \
         through a descriptor number that names another file now",
            buf.len()
        );
        let (res, _) = bounded(
            "the lazy write_all_at, polled after into_std",
            5,
            lazy_write_all,
        )
        .await;
        assert!(
            res.is_err(),
            "a write_all_at created before into_std succeeded after it"
        );
        let (res, _) = bounded(
            "the lazy read_exact_at, polled after into_std",
            5,
            lazy_read_exact,
        )
        .await;
        assert!(
            res.is_err(),
            "a read_exact_at created before into_std succeeded after it"
        );
        drop(reused);
        drop(other);
        assert!(
            std::fs::read(&b).expect("read b") == pattern_bytes(1 << 40, LEN),
            "the file that got the descriptor number changed"
        );
        assert!(
            std::fs::read(&a).expect("read a") == pattern_bytes(0, LEN),
            "the converted file changed"
        );
    });
}

#[test]
fn a_lazy_future_polled_after_into_std_leaves_the_clones_seekable() {
    let _serial = serial();
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        std::fs::write(&a, pattern_bytes(0, LEN)).expect("write a");

        let file = open_rw(&a).await;
        // Made before into_std: it shares the open file description.
        let mut clone = file.try_clone().await.expect("try_clone");
        let number = file.as_raw_fd();
        // Created, never polled.
        let lazy = file.read_at(Vec::with_capacity(4096), 0);
        let std = bounded(
            "into_std with a lazy read_at outstanding",
            5,
            file.into_std(),
        )
        .await;
        drop(std);

        // A pipe on the same descriptor number, with bytes in it.
        let (reader, mut writer) = std::io::pipe().expect("pipe");
        let on_number = if reader.as_raw_fd() == number {
            OwnedFd::from(reader)
        } else {
            // SAFETY: `number` is closed (the std file was dropped); dup2 makes it
            // a new descriptor for the pipe's read end, owned below.
            let rc = unsafe { libc::dup2(reader.as_raw_fd(), number) };
            assert_eq!(rc, number, "dup2: {}", std::io::Error::last_os_error());
            drop(reader);
            // SAFETY: `number` is the descriptor dup2 just made, owned by nobody else.
            unsafe { OwnedFd::from_raw_fd(number) }
        };
        std::io::Write::write_all(&mut writer, b"pipe").expect("write into the pipe");

        let (res, buf) = bounded("the lazy read_at, polled after into_std", 5, lazy).await;
        assert!(
            res.is_err(),
            "a read_at created before into_std succeeded after it ({res:?}, {} bytes): it read \
         through a descriptor number that names a pipe now",
            buf.len()
        );
        let lazy_err = res.err();

        // The pipe still holds its bytes.
        let mut pipe = std::fs::File::from(on_number);
        let mut got = [0u8; 4];
        std::io::Read::read_exact(&mut pipe, &mut got).expect("read the pipe");
        assert_eq!(&got, b"pipe", "the lazy future read from the pipe");

        // The clone, a regular file, is still seekable.
        let (res, buf) = bounded(
            "the clone's read_at",
            5,
            clone.read_at(Vec::with_capacity(LEN), 0),
        )
        .await;
        assert!(
            matches!(res, Ok(n) if n == LEN) && buf == pattern_bytes(0, LEN),
            "after a lazy read_at polled after into_std (it failed: {lazy_err:?}) met a pipe on \
         the descriptor number, a clone made before into_std cannot read at a position: \
         {res:?}"
        );
        let (res, _) = bounded(
            "the clone's write_all_at",
            5,
            clone.write_all_at(b"clone".to_vec(), 8),
        )
        .await;
        res.unwrap_or_else(|e| {
            panic!(
                "after the lazy future met the pipe, the clone cannot write at a position: {e:?}"
            )
        });
        let mut head = [0u8; 16];
        bounded("the clone's read_exact", 5, clone.read_exact(&mut head))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "after the lazy future met the pipe, the clone cannot read its stream: {e:?}"
                )
            });
        let mut want = pattern_bytes(0, 16);
        want[8..13].copy_from_slice(b"clone");
        assert_eq!(head.to_vec(), want, "the clone's stream read other bytes");
        drop(clone);
        drop(writer);
        drop(pipe);
    });
}
