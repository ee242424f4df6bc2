//! The pipe notifier: signal action → self-pipe → a thread polling it with `mio`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::stats::{self, TOKENS};
use crate::sys::{pipe, signal};

const PIPE: Token = Token(0);
const TOKEN_SIZE: usize = std::mem::size_of::<usize>();

/// Creates the pipe, installs the signal action and starts the reader thread.
pub(super) fn start(signo: i32) -> io::Result<()> {
    let (rd, wr) = pipe::pipe()?;
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut SourceFd(&rd.as_raw_fd()), PIPE, Interest::READABLE)?;
    std::thread::Builder::new()
        .name("aiofs-notifier".into())
        .spawn(move || run(poll, rd))?;
    // The write end lives as long as the process: the handler may run at any time.
    let wr_raw = wr.as_raw_fd();
    std::mem::forget(wr);
    signal::register_pipe_action(signo, wr_raw)
}

fn run(mut poll: Poll, rd: OwnedFd) {
    let Some(driver) = super::wait() else {
        return;
    };
    let mut events = Events::with_capacity(4);
    let mut buf = vec![0u8; TOKEN_SIZE * 1024];
    let mut tokens: Vec<usize> = Vec::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, Some(super::SAFETY_NET))
            && e.kind() != io::ErrorKind::Interrupted
        {
            // Nothing sensible to do but keep the safety net going.
            std::thread::sleep(super::SAFETY_NET);
        }
        // Drain the pipe first, then read the flag, then act.
        let mut got_any = false;
        let mut torn = false;
        loop {
            tokens.clear();
            let n = match pipe::read(&rd, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            got_any = true;
            let chunks = buf[..n].chunks_exact(TOKEN_SIZE);
            // Writes of one token are atomic: a torn read cannot happen, but if it
            // ever did, a scan finds whatever it hid.
            torn |= !chunks.remainder().is_empty();
            tokens.extend(chunks.map(|c| {
                let mut raw = [0u8; TOKEN_SIZE];
                raw.copy_from_slice(c);
                usize::from_ne_bytes(raw)
            }));
            stats::add(&TOKENS, tokens.len() as u64);
            let overflow = signal::OVERFLOW.swap(false, Ordering::AcqRel);
            driver.complete(&tokens, overflow || torn);
        }
        if !got_any {
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
