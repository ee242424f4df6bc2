//! Registering the driver's own descriptors (the self-pipe, the `signalfd`)
//! with a Tokio runtime's reactor.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A descriptor that stays open for the rest of the program.
#[derive(Debug)]
pub(crate) struct StaticFd(BorrowedFd<'static>);

impl AsRawFd for StaticFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

thread_local! {
    /// Set while this thread tries a registration that may panic.
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

/// Wraps the panic hook (once) so that the panic Tokio raises when the
/// runtime has no IO driver, while [`readable`] probes for one, is not
/// reported: every other panic goes to the hook installed before.
fn quiet_probe_panics() {
    static WRAP: Once = Once::new();
    WRAP.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !PROBING.get() {
                previous(info);
            }
        }));
    });
}

/// Registers `fd` for readability with the current runtime's reactor.
///
/// # Errors
///
/// When the current runtime has no IO driver (or there is no runtime), or the
/// registration fails; and whenever the probe cannot be made safely: while
/// this thread unwinds from a panic (a `File` dropped by a panicking task:
/// touching the panic hook then, or a second panic, aborts the process), or
/// when panics abort (`catch_unwind` cannot catch Tokio's). The caller then
/// goes without the registration (the notifier thread serves its requests).
pub(crate) fn readable(fd: BorrowedFd<'static>) -> io::Result<AsyncFd<StaticFd>> {
    if cfg!(panic = "abort") || std::thread::panicking() {
        return Err(io::Error::other(
            "aiofs: no reactor registration while panicking or under panic = \"abort\"",
        ));
    }
    // Tokio panics when the runtime has no IO driver (there is no other way
    // to ask): turn that into an error, without reporting the panic.
    quiet_probe_panics();
    PROBING.set(true);
    let res = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a `BorrowedFd<'static>` is open, and names the same file
        // description, for the rest of the program: longer than the `AsyncFd`.
        unsafe { AsyncFd::register_with_interest(StaticFd(fd), Interest::READABLE) }
    }));
    PROBING.set(false);
    match res {
        Ok(Ok(fd)) => Ok(fd),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(io::Error::other("aiofs: the runtime has no IO driver")),
    }
}
