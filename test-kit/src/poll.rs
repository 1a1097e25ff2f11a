//! Waiting for something asynchronous (a hold, an event, a metric) with a deadline, never a
//! fixed sleep.

use std::future::Future;
use std::time::Duration;

/// How long to wait before failing. Generous: CI machines are slow; a wait ends as soon as its
/// condition holds.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `check` every [`POLL`] until it returns true (→ true) or [`DEADLINE`] passes
/// (→ false).
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
