//! One call's attempts: a single deadline for all of them, retries with jittered exponential
//! backoff for idempotent calls, the breaker consulted before each attempt, and the outcome
//! counted.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::metrics::OutcomeLabels;
use super::{ClientError, ProductsClient, check_status};

impl ProductsClient {
    /// Runs an idempotent call with retries, backoff and the breaker; decodes JSON.
    pub(super) async fn idempotent<T: DeserializeOwned>(
        &self,
        call: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let started = Instant::now();
        let outcome = self.attempts(&build, started + self.config.timeout).await;
        let labels = OutcomeLabels {
            call,
            outcome: match &outcome {
                Ok(_) => "ok",
                Err(ClientError::Unavailable(_)) => "unavailable",
                Err(ClientError::Refused { .. }) => "refused",
                Err(ClientError::Decode(_)) => "decode",
            },
        };
        self.metrics.calls.get_or_create(&labels).inc();
        self.metrics
            .latency
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// The attempts of one call, all before `deadline`: each attempt gets the time that
    /// remains, and a retry is made only if time remains after its backoff.
    async fn attempts<T: DeserializeOwned>(
        &self,
        build: &impl Fn() -> reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<T, ClientError> {
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.timed_out());
            }
            let permit = self.breaker.admit()?;
            let result = match tokio::time::timeout(remaining, self.once(build, remaining)).await {
                Ok(result) => result,
                Err(_) => Err(self.timed_out()),
            };
            match result {
                Ok(value) => {
                    permit.success();
                    self.metrics.breaker_open.set(0);
                    return Ok(value);
                }
                // A refusal or an unreadable answer will not change on retry.
                Err(e @ (ClientError::Refused { .. } | ClientError::Decode(_))) => {
                    permit.success();
                    return Err(e);
                }
                Err(e) => {
                    let open =
                        permit.failure(self.config.breaker_threshold, self.config.breaker_cooldown);
                    self.metrics.breaker_open.set(i64::from(open));
                    if open || attempt >= self.config.retries {
                        return Err(e);
                    }
                    let backoff = self.backoff(attempt + 1);
                    // No time left for another attempt after the backoff: fail now.
                    if Instant::now() + backoff >= deadline {
                        return Err(e);
                    }
                    attempt += 1;
                    self.metrics.retries.inc();
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    fn timed_out(&self) -> ClientError {
        ClientError::Unavailable(format!(
            "no answer within {} ms",
            self.config.timeout.as_millis()
        ))
    }

    async fn once<T: DeserializeOwned>(
        &self,
        build: &impl Fn() -> reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let res = build()
            .bearer_auth(&self.config.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        if let Err(ClientError::Refused { status, detail, .. }) = check_status(&res) {
            // A refusal's problem body says why (the short lines of an out-of-stock, say).
            let problem: Option<serde_json::Value> = res
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let detail = problem
                .as_ref()
                .and_then(|p| p["detail"].as_str())
                .map_or(detail, str::to_owned);
            return Err(ClientError::Refused {
                status,
                detail,
                problem,
            });
        }
        check_status(&res)?;
        let bytes = res
            .bytes()
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `backoff × 2^(attempt-1)`, times a random factor in [0.5, 1.5).
    fn backoff(&self, attempt: u32) -> Duration {
        // xorshift: jitter needs no cryptographic randomness.
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        let factor = 0.5 + (x % 1000) as f64 / 1000.0;
        self.config
            .backoff
            .mul_f64(f64::from(1u32 << (attempt - 1).min(10)) * factor)
    }
}
