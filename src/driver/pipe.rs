//! The pipe notifier: signal action → self-pipe → a thread polling it with `mio`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::stats::{self, TOKENS};
use crate::sys::{pipe, signal};

const PIPE: Token = Token(0);
#[cfg(any(target_os = "linux", target_os = "android"))]
const SIGNALFD: Token = Token(1);

/// The notifier's registry and signal number, once it started.
#[cfg(any(target_os = "linux", target_os = "android"))]
static REGISTRY: std::sync::OnceLock<(mio::Registry, i32)> = std::sync::OnceLock::new();
/// The signalfd, once the application blocks the signal
/// (`block_completion_signal`): only then, since reading it takes every
/// pending instance of the signal, including those meant for other handlers.
#[cfg(any(target_os = "linux", target_os = "android"))]
static SIGNALFD_FD: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
#[cfg(any(target_os = "linux", target_os = "android"))]
static WANTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The application blocks the completion signal: read it from a signalfd (now,
/// or as soon as the notifier starts).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn want_signalfd() -> io::Result<()> {
    WANTED.store(true, Ordering::SeqCst);
    match REGISTRY.get() {
        Some((registry, signo)) => enable_signalfd(registry, *signo),
        None => Ok(()),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn enable_signalfd(registry: &mio::Registry, signo: i32) -> io::Result<()> {
    if SIGNALFD_FD.get().is_some() {
        return Ok(());
    }
    let sfd = crate::sys::signalfd::open(signo)?;
    if SIGNALFD_FD.set(sfd).is_ok()
        && let Some(sfd) = SIGNALFD_FD.get()
    {
        registry.register(
            &mut SourceFd(&sfd.as_raw_fd()),
            SIGNALFD,
            Interest::READABLE,
        )?;
    }
    Ok(())
}

const TOKEN_SIZE: usize = std::mem::size_of::<usize>();

/// Creates the pipe, installs the signal action and starts the reader thread.
pub(super) fn start(signo: i32) -> io::Result<()> {
    let poll = Poll::new()?;
    let rd = token_pipe(signo)?;
    poll.registry()
        .register(&mut SourceFd(&rd.as_raw_fd()), PIPE, Interest::READABLE)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = REGISTRY.set((poll.registry().try_clone()?, signo));
        if WANTED.load(Ordering::SeqCst) {
            enable_signalfd(poll.registry(), signo)?;
        }
    }
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("aiofs-notifier".into())
        .spawn(move || {
            // This thread reads the signals that every thread blocks from the
            // signalfd; it must not take them itself.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let blocked = crate::sys::signalfd::block_in_this_thread(signo);
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            let blocked = io::Result::Ok(());
            let ok = blocked.is_ok();
            let _ = started_tx.send(blocked);
            if ok {
                run(poll, rd);
            }
        })?;
    started_rx.recv().unwrap_or_else(|_| {
        Err(io::Error::other(
            "aiofs: the notifier thread died at its start",
        ))
    })
}

/// Creates the self-pipe and installs the signal action writing each
/// completion's token into it; returns the read end.
pub(super) fn token_pipe(signo: i32) -> io::Result<OwnedFd> {
    let (rd, wr) = pipe::pipe()?;
    // The write end lives as long as the process: the handler may run at any time.
    let wr_raw = wr.as_raw_fd();
    std::mem::forget(wr);
    signal::register_pipe_action(signo, wr_raw)?;
    Ok(rd)
}

fn run(mut poll: Poll, rd: OwnedFd) {
    let Some(driver) = super::wait() else {
        return;
    };
    let mut events = Events::with_capacity(4);
    let mut drain = Drain::new();
    loop {
        if let Err(e) = poll.poll(&mut events, Some(super::SAFETY_NET))
            && e.kind() != io::ErrorKind::Interrupted
        {
            // Nothing sensible to do but keep the safety net going.
            std::thread::sleep(super::SAFETY_NET);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let from_signalfd = SIGNALFD_FD
            .get()
            .is_some_and(|sfd| drain.run_signalfd(driver, sfd));
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let from_signalfd = false;
        if !drain.run(driver, &rd) && !from_signalfd {
            // A quiet period: look for completions whose signal was lost.
            let overflow = signal::OVERFLOW.swap(false, Ordering::AcqRel);
            if overflow {
                driver.scan();
            } else {
                driver.tick();
            }
        }
    }
}

/// Reads completion tokens from the self-pipe and completes their requests.
pub(super) struct Drain {
    buf: Vec<u8>,
    tokens: Vec<usize>,
}

impl Drain {
    pub(super) fn new() -> Drain {
        Drain {
            buf: vec![0u8; TOKEN_SIZE * 1024],
            tokens: Vec::with_capacity(1024),
        }
    }

    /// Drains the pipe (non-blocking); returns whether it held anything.
    pub(super) fn run(&mut self, driver: &super::Driver, rd: &OwnedFd) -> bool {
        // Drain the pipe first, then read the flag, then act.
        let mut got_any = false;
        loop {
            self.tokens.clear();
            let n = match pipe::read(rd, &mut self.buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            got_any = true;
            let chunks = self.buf[..n].chunks_exact(TOKEN_SIZE);
            // Writes of one token are atomic, and reads take whole multiples of a
            // token: a torn read cannot happen, but if it ever did, a scan finds
            // whatever it hid.
            let torn = !chunks.remainder().is_empty();
            self.tokens.extend(chunks.map(|c| {
                let mut raw = [0u8; TOKEN_SIZE];
                raw.copy_from_slice(c);
                usize::from_ne_bytes(raw)
            }));
            stats::add(&TOKENS, self.tokens.len() as u64);
            let overflow = signal::OVERFLOW.swap(false, Ordering::AcqRel);
            driver.complete(&self.tokens, overflow || torn);
        }
        got_any
    }

    /// Reads the signals that every thread blocks from the signalfd and
    /// completes their requests; returns whether there were any.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn run_signalfd(&mut self, driver: &super::Driver, sfd: &OwnedFd) -> bool {
        self.tokens.clear();
        let n = crate::sys::signalfd::read(sfd, &mut self.tokens).unwrap_or(0);
        if n == 0 {
            return false;
        }
        stats::add(&signal::SIGNALS, n as u64);
        stats::add(&stats::SIGNALFD_SIGNALS, n as u64);
        stats::add(&TOKENS, self.tokens.len() as u64);
        driver.complete(&self.tokens, false);
        true
    }
}
