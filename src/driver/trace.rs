//! The `tracing` feature's settings: what counts as a slow request.

use std::sync::OnceLock;
use std::time::Duration;

/// Requests at least this long are reported (`AIOFS_SLOW_MS`, default 1000).
pub(super) fn slow() -> Duration {
    static SLOW: OnceLock<Duration> = OnceLock::new();
    *SLOW.get_or_init(|| {
        let ms = std::env::var("AIOFS_SLOW_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1000);
        Duration::from_millis(ms)
    })
}

/// What the driver reports, recorded under the table's lock and emitted
/// after it (`AfterUnlock`).
#[derive(Debug)]
pub(super) enum Event {
    /// A periodic scan found completions while no token waited to be read:
    /// their signals were lost.
    LostSignals { found: u64, lost_results: bool },
    /// glibc lost a result to a full signal queue: the request runs again.
    LostResult,
    /// glibc refused a submission with `EAGAIN`.
    Refused { in_flight: usize },
    /// A request took at least [`slow`].
    Slow { took_ms: u64, ok: bool },
}

impl Event {
    pub(super) fn emit(self) {
        match self {
            Event::LostSignals {
                found,
                lost_results,
            } => tracing::warn!(
                found,
                lost_results,
                "aiofs: a recovery scan found completions whose signal was lost"
            ),
            Event::LostResult => tracing::warn!(
                "aiofs: glibc lost a result to a full signal queue (RLIMIT_SIGPENDING): \
                 the request runs again, without a signal"
            ),
            Event::Refused { in_flight } => tracing::debug!(
                in_flight,
                "aiofs: glibc refused a submission with EAGAIN (no AIO thread or memory): \
                 queued again"
            ),
            Event::Slow { took_ms, ok } => tracing::warn!(
                took_ms,
                ok,
                "aiofs: a request took longer than AIOFS_SLOW_MS"
            ),
        }
    }
}
