//! The one completion path: whatever woke a notifier (tokens from the
//! self-pipe, a `signalfd` read, a wake-up of Tokio's signal stream, the
//! recovery timer), [`Driver::on_wake`] turns it into "collect and wake" with
//! one recovery rule.
//!
//! # The recovery rule
//!
//! A token is only a hint, and a signal can be lost: glibc sends none when the
//! user's signal queue is full (`RLIMIT_SIGPENDING`, shared by all of the
//! user's processes), and the kernel merges the instances of a standard signal.
//! So, whatever the notifier and however busy the notification channel is:
//!
//! - every request in the OS is checked (`aio_error`, a *scan*) at least every
//!   [`SCAN_EVERY`] while any is in flight, on the recovery timer;
//! - a scan runs at once when a token may be missing: the self-pipe overflowed,
//!   or the signal is a standard one (every wake-up by it);
//! - a request whose result glibc lost to a full signal queue runs again
//!   *quietly* (no signal, see `table.rs`); quiet requests are checked every
//!   [`QUIET_EVERY`], and scans come every [`SCAN_FAST`] while lost results keep
//!   being found.
//!
//! So a request whose signal was lost completes within about `SCAN_EVERY`
//! plus its own run time, under any traffic.

use std::time::{Duration, Instant};

use super::Driver;
use super::slots::{AfterUnlock, Token};
use super::table::Table;
use crate::sys::signal::OVERFLOW;

/// The longest a request in flight goes without a scan.
pub(super) const SCAN_EVERY: Duration = Duration::from_millis(200);
/// The time between scans while lost results keep being found.
const SCAN_FAST: Duration = Duration::from_millis(10);
/// The time between checks of the quiet requests.
const QUIET_EVERY: Duration = Duration::from_millis(1);
/// While runtimes' listeners read the completions and requests are in flight,
/// the notifier thread looks this often for completions they left unread
/// (right after it saw some waiting, or a new request submitted)...
pub(super) const UNREAD_EVERY: Duration = Duration::from_millis(5);
/// ...and each look that finds neither doubles the wait, up to this (one
/// request stalled in the OS for seconds costs a few wake-ups a second).
pub(super) const UNREAD_MAX: Duration = Duration::from_millis(160);
/// After it read completions a runtime left unread, it keeps looking every
/// [`UNREAD_EVERY`] this long, even with nothing in flight: that runtime's
/// next request is then seen at once.
pub(super) const UNREAD_HOT: Duration = Duration::from_millis(200);
/// The notifier thread's look, once backed off this far, asks the next
/// submission to wake it (below that, a request waits for the look: 20 ms at
/// most; a kick at every shorter back-off cost a driven runtime reading
/// every 7 ms half again as many notifier wake-ups).
pub(super) const UNREAD_KICK_FROM: Duration = Duration::from_millis(40);
/// Set while the look has backed off to [`UNREAD_KICK_FROM`] or more: the
/// next submission clears it and kicks the thread, so that a request of a
/// runtime nobody drives is looked for within [`UNREAD_EVERY`] even while
/// another request stays in flight for long.
pub(super) static UNREAD_BACKED_OFF: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// When the recovery rule last acted (kept in the table, under its lock).
#[derive(Debug)]
pub(super) struct Recovery {
    last_scan: Instant,
    scan_every: Duration,
    last_quiet: Instant,
}

impl Recovery {
    pub(super) fn new() -> Recovery {
        let now = Instant::now();
        Recovery {
            last_scan: now,
            scan_every: SCAN_EVERY,
            last_quiet: now,
        }
    }
}

impl Driver {
    /// The one completion path: completes the requests `tokens` name, then
    /// applies the recovery rule and starts queued requests. `signalled`: a
    /// signal woke the caller (for a standard signal, tokens may be merged).
    pub(super) fn on_wake(&self, tokens: &[usize], signalled: bool) {
        // Tokens first (drained by the caller), then the flag, then act.
        let overflow = OVERFLOW.swap(false, std::sync::atomic::Ordering::AcqRel);
        let merged = signalled && self.merged_signal;
        self.with_table(|t, out| {
            for &raw in tokens {
                t.complete(Token::from_raw(raw), out);
            }
            let _found = t.recover(Instant::now(), overflow || merged, out);
            #[cfg(feature = "tracing")]
            if let Some((found, lost_results)) = _found
                && !super::notify::tokens_waiting(self)
            {
                // Completions found while tokens wait to be read are most
                // likely theirs (on their way to a listener): only report the
                // others. (A poll of the pipe, under the lock, but only when a
                // periodic scan found something.) Emitted after the unlock,
                // before the wake-ups.
                out.events.push(super::trace::Event::LostSignals {
                    found,
                    lost_results,
                });
            }
            t.fill(out);
        });
    }

    /// How long the recovery timer may sleep before [`on_wake`](Self::on_wake)
    /// must run again; at most the watch for unread completions, `(wait, even
    /// with nothing in flight)`, while requests are in flight.
    pub(super) fn timer_timeout(&self, unread: Option<(Duration, bool)>) -> Duration {
        let table = self.table();
        let due = table.next_due(Instant::now());
        match unread {
            Some((every, idle_too)) if idle_too || table.in_flight > 0 => due.min(every),
            _ => due,
        }
    }
}

impl Table {
    /// The recovery rule (see the module docs). Returns what a periodic scan
    /// (not one a missing token asked for) found: `(completions, whether
    /// results were lost)`.
    fn recover(
        &mut self,
        now: Instant,
        scan_now: bool,
        out: &mut AfterUnlock,
    ) -> Option<(u64, bool)> {
        let r = &mut self.recovery;
        let scan_due = self.in_flight > 0 && now.duration_since(r.last_scan) >= r.scan_every;
        if scan_now || scan_due {
            let (found, lost) = self.scan(out);
            let r = &mut self.recovery;
            r.last_scan = now;
            r.last_quiet = now;
            r.scan_every = if lost { SCAN_FAST } else { SCAN_EVERY };
            return (found > 0 && !scan_now).then_some((found, lost));
        } else if !self.quiet.is_empty() && now.duration_since(r.last_quiet) >= QUIET_EVERY {
            r.last_quiet = now;
            self.poll_quiet(out);
        }
        None
    }

    /// How long until the recovery rule must act again: at most `SCAN_EVERY`
    /// (queued requests refused by glibc are retried on these ticks too).
    fn next_due(&self, now: Instant) -> Duration {
        let r = &self.recovery;
        let mut due = SCAN_EVERY;
        if self.in_flight > 0 {
            due = due.min((r.last_scan + r.scan_every).saturating_duration_since(now));
        }
        if !self.quiet.is_empty() {
            due = due.min((r.last_quiet + QUIET_EVERY).saturating_duration_since(now));
        }
        due
    }
}
