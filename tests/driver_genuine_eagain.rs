//! A descriptor whose `pread` fails although `lseek` works (an `eventfd`):
//! glibc's AIO worker would fall back from `pread` to a plain `read` and
//! consume it (issue 10, item 2's case, found while writing its test). aiofs
//! refuses it before anything is submitted, as `pread` itself does, and leaves
//! its counter alone.
//!
//! (The `EAGAIN` of a read that really reaches glibc is covered by the unit
//! test `driver::tests::a_genuine_eagain_is_would_block_after_one_quiet_retry`:
//! no public path submits a request on such a descriptor.)

// The serial guard is held across awaits on purpose (one test at a time).
#![allow(clippy::await_holding_lock)]

mod support;

use std::io::{ErrorKind, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

use support::{aio_only, serial, settle};

/// A non-blocking eventfd holding `count`.
fn eventfd(count: u32) -> OwnedFd {
    // SAFETY: plain syscall with flags only.
    let fd = unsafe { libc::eventfd(count, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eventfd_is_refused_like_a_pipe_and_its_counter_is_kept() {
    aio_only();
    let _serial = serial();
    // What std does with the same descriptor: `pread` refuses it.
    let std_file = std::fs::File::from(eventfd(5));
    let err = std_file.read_at(&mut [0u8; 8], 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSeekable, "std: {err:?}");

    let fd = eventfd(5);
    let mut counter = std::fs::File::from(fd.try_clone().expect("dup"));
    let file = aiofs::File::from(fd);
    let before = aiofs::stats();
    let (res, buf) = file.read_at(Vec::with_capacity(8), 0).await;
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSeekable, "aiofs: {err:?}");
    assert!(buf.is_empty());
    let (res, _) = file.write_at(1u64.to_ne_bytes().to_vec(), 0).await;
    assert_eq!(res.unwrap_err().kind(), ErrorKind::NotSeekable);
    assert_eq!(
        aiofs::stats().submitted,
        before.submitted,
        "nothing submitted"
    );
    // The counter is still 5: nothing read it, nothing added to it.
    let mut value = [0u8; 8];
    counter.read_exact(&mut value).expect("read the counter");
    assert_eq!(u64::from_ne_bytes(value), 5);
    settle().await;
}
