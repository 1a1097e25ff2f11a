//! The circuit breaker: closed → open after repeated failures → one half-open probe → closed.
//!
//! While open, calls fail at once: a dead products service costs callers microseconds, not
//! the full timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ClientError;

#[derive(Debug, Default)]
pub(super) struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// The circuit breaker (closed → open → half-open probe → closed).
#[derive(Debug, Default)]
pub(super) struct Breaker {
    state: Mutex<BreakerState>,
}

/// Leave to send one attempt, from [`Breaker::admit`]; report its outcome with
/// [`Permit::success`] or [`Permit::failure`]. The half-open probe's permit dropped without an
/// outcome (the caller's future was dropped mid-attempt) frees the probe slot, so that the next
/// call probes instead of the circuit staying half-open with a probe "in flight" forever.
#[derive(Debug)]
pub(super) struct Permit<'a> {
    breaker: &'a Breaker,
    /// Whether this is the half-open probe.
    pub(super) probe: bool,
    /// Whether the outcome was reported.
    settled: bool,
}

impl Permit<'_> {
    pub(super) fn success(mut self) {
        self.settled = true;
        self.breaker.success();
    }

    /// Records a failure; returns true if the circuit is (now) open.
    pub(super) fn failure(mut self, threshold: u32, cooldown: Duration) -> bool {
        self.settled = true;
        self.breaker.failure(threshold, cooldown)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            // No outcome is no evidence either way: only give the slot back.
            self.breaker.state.lock().unwrap().probing = false;
        }
    }
}

impl Breaker {
    /// May a call go out now? The permit tells whether it is the half-open probe.
    pub(super) fn admit(&self) -> Result<Permit<'_>, ClientError> {
        let mut s = self.state.lock().unwrap();
        let probe = match s.open_until {
            None => false,
            Some(until) if Instant::now() < until => {
                return Err(ClientError::Unavailable(
                    "circuit open after repeated failures".into(),
                ));
            }
            Some(_) if s.probing => {
                return Err(ClientError::Unavailable(
                    "circuit half-open, a probe is in flight".into(),
                ));
            }
            Some(_) => {
                s.probing = true;
                true
            }
        };
        Ok(Permit {
            breaker: self,
            probe,
            settled: false,
        })
    }

    fn success(&self) {
        *self.state.lock().unwrap() = BreakerState::default();
    }

    /// Records a failure; returns true if the circuit is (now) open.
    fn failure(&self, threshold: u32, cooldown: Duration) -> bool {
        let mut s = self.state.lock().unwrap();
        s.failures += 1;
        s.probing = false;
        if s.failures >= threshold {
            s.open_until = Some(Instant::now() + cooldown);
        }
        s.open_until.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_fails_fast_and_probes() {
        let b = Breaker::default();
        assert!(!b.failure(2, Duration::from_millis(30)));
        assert!(b.failure(2, Duration::from_millis(30)));
        assert!(b.admit().is_err(), "open: fail fast");
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.admit().unwrap();
        assert!(probe.probe, "half-open: one probe");
        assert!(b.admit().is_err(), "only one probe at a time");
        probe.success();
        assert!(!b.admit().unwrap().probe);
    }

    #[test]
    fn a_probe_dropped_without_outcome_frees_the_probe_slot() {
        let b = Breaker::default();
        assert!(b.failure(1, Duration::ZERO));
        let probe = b.admit().unwrap();
        assert!(probe.probe);
        drop(probe);
        let next = b.admit().expect("the next call may probe");
        assert!(
            next.probe,
            "still half-open: the dropped probe had no outcome"
        );
        // A permit of a closed circuit touches nothing when dropped.
        next.success();
        drop(b.admit().unwrap());
        assert!(!b.admit().unwrap().probe);
    }
}
