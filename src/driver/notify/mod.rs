//! What wakes the driver. Every path ends in [`Driver::on_wake`], the one
//! completion path; the notifiers only differ in how they are woken.
//!
//! - The signal action (`sys::signal`) writes each completion's token into a
//!   self-pipe, under both notifiers.
//! - **Pipe notifier** ([`pipe`]): the `aiofs-notifier` thread polls that pipe
//!   (and, once the application blocks the signal, a `signalfd`) with `mio`.
//! - **Signal notifier** ([`signal`]): a task on each runtime that submits or
//!   waits reads Tokio's signal stream and drains the pipe when it wakes.
//! - **The recovery timer**: the `aiofs-notifier` thread's poll timeout, or the
//!   `aiofs-watchdog` thread under the signal notifier (which also drains the
//!   pipe while no runtime listens). It wakes at least every
//!   [`SCAN_EVERY`](super::completion::SCAN_EVERY), sooner when the recovery
//!   rule asks (quiet requests), and can be woken early (`Driver::kick`).
//! - **Unread completions**: while runtimes' listeners read the pipe (and the
//!   `signalfd`), a request may be credited to a runtime that nobody drives
//!   right now (`Handle::block_on` from another thread, a current_thread
//!   runtime between `block_on` calls). So while requests are in flight the
//!   same thread looks every [`UNREAD_EVERY`] (backing off to [`UNREAD_MAX`]
//!   while nothing waits and nothing new is submitted: a request stalled in
//!   the OS): completions still unread, with no listener having drained since
//!   it last looked, are read there ([`Unread`]). A driven listener drains
//!   within microseconds, so this never takes its work.

mod listen;
mod pipe;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

pub(super) use listen::{Kind, Listeners};
pub use pipe::{block_completion_signal, prepare_runtime};
#[cfg(any(target_os = "linux", target_os = "android"))]
use pipe::{drain_signalfd, signalfd, signalfd_raw};

/// The signalfd, where there is none.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn signalfd() -> Option<std::os::fd::BorrowedFd<'static>> {
    None
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn drain_signalfd(_: &Driver, _: &mut Vec<usize>) -> bool {
    false
}

use super::completion::{
    UNREAD_BACKED_OFF, UNREAD_EVERY, UNREAD_HOT, UNREAD_KICK_FROM, UNREAD_MAX,
};
use super::config::{Notifier, Settings};
use super::stats::{self, TOKENS};
use super::{Driver, wait};
use crate::sys;

const PIPE: Token = Token(0);
const KICK: Token = Token(1);
#[cfg(any(target_os = "linux", target_os = "android"))]
const SIGNALFD: Token = Token(2);

const TOKEN_SIZE: usize = std::mem::size_of::<usize>();

/// What the driver keeps of its notifier.
pub(super) struct Started {
    pub(super) token_pipe: OwnedFd,
    pub(super) kick: mio::Waker,
}

/// Installs the signal action and the self-pipe, and starts the thread that
/// runs the recovery timer (and, for the pipe notifier, reads the pipe).
pub(super) fn start(settings: &Settings) -> io::Result<Started> {
    let (rd, wr) = sys::pipe::pipe()?;
    // The write end lives as long as the process: the handler may run at any time.
    let wr_raw = wr.as_raw_fd();
    std::mem::forget(wr);
    sys::signal::register_pipe_action(settings.signal, wr_raw)?;

    let poll = Poll::new()?;
    let kick = mio::Waker::new(poll.registry(), KICK)?;
    let reads_pipe = settings.notifier == Notifier::Pipe;
    let name = if reads_pipe {
        "aiofs-notifier"
    } else {
        "aiofs-watchdog"
    };
    let signo = settings.signal;
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // This thread reads the signals that every thread blocks from the
            // signalfd; it must not take them itself. (Under the signal
            // notifier, Tokio's stream needs them delivered to some thread, and
            // this one has nothing to do with them either.)
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let blocked = sys::signalfd::block_in_this_thread(signo);
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            let blocked = io::Result::Ok(());
            let ok = blocked.is_ok();
            let _ = started_tx.send(blocked);
            if ok && let Some(driver) = wait() {
                run(driver, poll, reads_pipe);
            }
        })?;
    started_rx.recv().unwrap_or_else(|_| {
        Err(io::Error::other(
            "aiofs: the notifier thread died at its start",
        ))
    })?;
    Ok(Started {
        token_pipe: rd,
        kick,
    })
}

/// The notifier thread: waits for tokens (pipe notifier) or for the recovery
/// timer, and hands everything to the one completion path.
fn run(driver: &'static Driver, mut poll: Poll, reads_pipe: bool) {
    let mut events = Events::with_capacity(8);
    let mut drain = Drain::new();
    let mut sources = Sources::default();
    let mut unread = Unread::default();
    loop {
        // A panic in code run from here (a waker, a buffer's `Drop`) must not
        // stop the thread every later completion depends on.
        let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            turn(
                driver,
                &mut poll,
                reads_pipe,
                &mut events,
                &mut drain,
                &mut sources,
                &mut unread,
            )
        }));
        if turn.is_err() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// One wake-up of the notifier thread.
fn turn(
    driver: &'static Driver,
    poll: &mut Poll,
    reads_pipe: bool,
    events: &mut Events,
    drain: &mut Drain,
    sources: &mut Sources,
    unread: &mut Unread,
) {
    // Read the pipe (and the signalfd) here unless runtimes listen for
    // them and no request from outside a listening runtime waits.
    let here = driver.listeners.as_ref().is_none_or(Listeners::none)
        || driver.external.load(Ordering::Acquire) > 0;
    sources.update(driver, poll, here);
    let watch = (!here).then(|| unread.watch());
    if let Err(e) = poll.poll(events, Some(driver.timer_timeout(watch)))
        && e.kind() != io::ErrorKind::Interrupted
    {
        // Nothing sensible to do but keep the recovery timer going.
        std::thread::sleep(super::completion::SCAN_EVERY);
    }
    let mut signalled = false;
    if here {
        // (Under the signal notifier: nobody else reads the pipe now.)
        signalled |= drain.run(driver, &driver.token_pipe);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if reads_pipe && here {
        signalled |= drain_signalfd(driver, &mut drain.tokens);
    }
    if !here {
        signalled |= unread.check(driver, drain);
    } else {
        // Read here now: no look needed, but a hot window survives (the
        // undriven runtime's next request comes after this one).
        *unread = Unread {
            hot_until: unread.hot_until,
            ..Unread::default()
        };
        UNREAD_BACKED_OFF.store(false, Ordering::Relaxed);
    }
    if !signalled {
        // The timer (or a kick): the recovery rule decides what to check.
        driver.on_wake(&[], false);
    }
}

/// Whether tokens (or signals on the `signalfd`) wait to be read.
pub(super) fn tokens_waiting(driver: &Driver) -> bool {
    let pipe = driver.token_pipe.as_fd();
    match signalfd() {
        Some(sfd) => sys::pipe::any_readable(&[pipe, sfd]),
        None => sys::pipe::any_readable(&[pipe]),
    }
}

/// Completions the runtimes' listeners leave unread (see the module docs).
struct Unread {
    /// When the notifier thread last found completions waiting, and how many
    /// drains the listeners had made then.
    seen: Option<(std::time::Instant, u64)>,
    /// How long until the next look (while requests are in flight).
    every: Duration,
    /// The count of submitted requests at the last look.
    submitted: u64,
    /// Until when to keep looking every [`UNREAD_EVERY`], even with nothing
    /// in flight: set when it read completions a runtime left unread (that
    /// runtime's next request is likely to come, and its completion would
    /// otherwise wait for the recovery timer).
    hot_until: Option<std::time::Instant>,
}

impl Default for Unread {
    fn default() -> Self {
        Unread {
            seen: None,
            every: UNREAD_EVERY,
            submitted: 0,
            hot_until: None,
        }
    }
}

impl Unread {
    /// Reads the completions waiting in the pipe (and the signalfd) if they
    /// were already waiting [`UNREAD_EVERY`] ago and no listener has drained
    /// since; returns whether it read any. A look that finds nothing waiting
    /// and no request submitted since the last one doubles the time to the
    /// next, up to [`UNREAD_MAX`].
    fn check(&mut self, driver: &Driver, drain: &mut Drain) -> bool {
        let Some(listeners) = &driver.listeners else {
            return false;
        };
        let now = std::time::Instant::now();
        let submitted = stats::SUBMITTED.load(Ordering::Relaxed);
        let new_requests = std::mem::replace(&mut self.submitted, submitted) != submitted;
        if !tokens_waiting(driver) {
            self.seen = None;
            self.every = if new_requests || self.hot(now) {
                UNREAD_EVERY
            } else {
                (self.every * 2).min(UNREAD_MAX)
            };
            if self.every >= UNREAD_KICK_FROM {
                // From now on a submission kicks this thread. One made since
                // the count was read above did not see the flag: read the
                // count again (SeqCst, paired with `mark_started`).
                UNREAD_BACKED_OFF.store(true, Ordering::SeqCst);
                if stats::SUBMITTED.load(Ordering::SeqCst) != submitted {
                    self.every = UNREAD_EVERY;
                    UNREAD_BACKED_OFF.store(false, Ordering::Relaxed);
                }
            } else {
                UNREAD_BACKED_OFF.store(false, Ordering::Relaxed);
            }
            return false;
        }
        self.every = UNREAD_EVERY;
        UNREAD_BACKED_OFF.store(false, Ordering::Relaxed);
        let drained = listeners.drained();
        match self.seen {
            Some((since, at)) if at == drained => {
                if now.duration_since(since) < UNREAD_EVERY {
                    return false;
                }
            }
            _ => {
                self.seen = Some((now, drained));
                return false;
            }
        }
        self.seen = None;
        self.hot_until = Some(now + UNREAD_HOT);
        stats::add(&stats::UNREAD_DRAINS, 1);
        let mut got = drain.run(driver, &driver.token_pipe);
        got |= drain_signalfd(driver, &mut drain.tokens);
        got
    }

    /// Whether it read unread completions less than [`UNREAD_HOT`] ago.
    fn hot(&self, now: std::time::Instant) -> bool {
        self.hot_until.is_some_and(|until| now < until)
    }

    /// How long the notifier thread may sleep before it looks again, if it
    /// watches for unread completions: `(wait, even with nothing in flight)`.
    fn watch(&self) -> (Duration, bool) {
        (self.every, self.hot(std::time::Instant::now()))
    }
}

/// What the notifier thread's poll watches besides its kick.
#[derive(Default)]
struct Sources {
    pipe: bool,
    signalfd: bool,
}

impl Sources {
    /// Registers the pipe and the signalfd (once opened) when `watch`, and
    /// removes them when not. Registration is edge-triggered and reports data
    /// already there, so nothing is missed across a change.
    fn update(&mut self, driver: &Driver, poll: &Poll, watch: bool) {
        let registry = poll.registry();
        let pipe = driver.token_pipe.as_raw_fd();
        if watch != self.pipe {
            let res = if watch {
                registry.register(&mut SourceFd(&pipe), PIPE, Interest::READABLE)
            } else {
                registry.deregister(&mut SourceFd(&pipe))
            };
            // On failure the recovery timer still drains the pipe.
            self.pipe = watch && res.is_ok();
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(sfd) = signalfd_raw()
            && watch != self.signalfd
        {
            let res = if watch {
                registry.register(&mut SourceFd(&sfd), SIGNALFD, Interest::READABLE)
            } else {
                registry.deregister(&mut SourceFd(&sfd))
            };
            self.signalfd = watch && res.is_ok();
        }
    }
}

/// Reads completion tokens from the self-pipe and completes their requests.
pub(super) struct Drain {
    buf: Vec<u8>,
    pub(super) tokens: Vec<usize>,
}

impl Drain {
    pub(super) fn new() -> Drain {
        Drain {
            buf: vec![0u8; TOKEN_SIZE * 1024],
            tokens: Vec::with_capacity(1024),
        }
    }

    /// Drains the pipe (non-blocking) through [`Driver::on_wake`]; returns
    /// whether it held anything.
    pub(super) fn run(&mut self, driver: &Driver, rd: &OwnedFd) -> bool {
        let mut got_any = false;
        loop {
            self.tokens.clear();
            let n = match sys::pipe::read(rd, &mut self.buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            got_any = true;
            // Writes of one token are atomic, and reads take whole multiples of
            // a token: a torn read cannot happen; if it ever did, the tokens it
            // hid would be found by the recovery timer's scans.
            let chunks = self.buf[..n].chunks_exact(TOKEN_SIZE);
            self.tokens.extend(chunks.map(|c| {
                let mut raw = [0u8; TOKEN_SIZE];
                raw.copy_from_slice(c);
                usize::from_ne_bytes(raw)
            }));
            stats::add(&TOKENS, self.tokens.len() as u64);
            driver.on_wake(&self.tokens, true);
        }
        got_any
    }
}
