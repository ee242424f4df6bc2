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
