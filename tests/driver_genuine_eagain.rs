//! A genuine `EAGAIN` from the I/O itself (issue 10, item 2): it must reach the
//! caller as `ErrorKind::WouldBlock` after a bounded number of tries, as it
//! does through `std` and `tokio::fs`, instead of being resubmitted forever
//! (a spin: one request, resubmitted at every completion, for as long as the
//! process lives).
//!
//! The descriptor is a non-blocking `eventfd` whose counter is 0. `lseek` works
//! on it (`noop_llseek`), so aiofs takes it as seekable; `pread` fails with
//! `ESPIPE` and glibc's AIO worker then falls back to `read`, which fails with
//! `EAGAIN` for as long as nobody writes to the counter. That is the issue's
//! case (a seekable character device opened `O_NONBLOCK`); none of this
//! machine's devices gives it reliably: `/dev/hwrng` (virtio-rng) returns
//! data, `/dev/kmsg` refuses `lseek(SEEK_CUR)`, `/dev/net/tun`, `/dev/fuse` and
//! `/dev/ptmx` cannot seek.
//!
//! Today's code spins: the test runs in a child process of this binary
//! (`support::in_child`), so that a request left spinning dies with it.

mod support;

use std::io::{ErrorKind, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use support::{aio_only, in_child, serial, settle};
use tokio::io::AsyncReadExt;

/// A non-blocking eventfd with its counter at 0: every read fails with `EAGAIN`.
fn empty_eventfd() -> OwnedFd {
    // SAFETY: plain syscall with flags only.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[test]
fn genuine_eagain_from_the_io_is_would_block_not_a_spin() {
    let _serial = serial();
    if !in_child("genuine_eagain_from_the_io_is_would_block_not_a_spin") {
        return;
    }
    // The read must go through AIO (a page-cache read of an eventfd fails
    // before it, with ESPIPE, and goes to AIO anyway).
    aio_only();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // What std and tokio::fs do with the same descriptor.
        let mut std_file = std::fs::File::from(empty_eventfd());
        let err = std_file.read(&mut [0u8; 4096]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "std: {err:?}");
        let mut tokio_file = tokio::fs::File::from_std(std::fs::File::from(empty_eventfd()));
        let err = tokio_file.read(&mut [0u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "tokio::fs: {err:?}");

        let file = aiofs::File::from(empty_eventfd());
        let before = aiofs::stats();
        let started = Instant::now();
        let read = file.read_at(Vec::with_capacity(4096), 0);
        let (res, buf) = match tokio::time::timeout(Duration::from_secs(10), read).await {
            Ok(done) => done,
            Err(_) => {
                let s = aiofs::stats();
                panic!(
                    "a read that fails with a genuine EAGAIN did not finish within 10 s: \
                     resubmitted {} times meanwhile; {s:?}",
                    s.eagain_retries - before.eagain_retries
                )
            }
        };
        let took = started.elapsed();
        let s = aiofs::stats();
        println!(
            "aiofs: {res:?} after {took:?}; {} EAGAIN retries; {s:?}",
            s.eagain_retries - before.eagain_retries
        );
        match res {
            Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "aiofs: {e:?}"),
            Ok(n) => panic!("aiofs: read {n} bytes from an empty eventfd"),
        }
        assert!(buf.is_empty());
        // Nothing is left running.
        settle().await;
        let s = aiofs::stats();
        assert_eq!(s.in_flight, 0, "{s:?}");
    });
}
