//! A typed client of the products API, for other services (orders uses it).
//!
//! - One pooled HTTP connection set per client; one deadline per call: the timeout bounds the
//!   whole call, retries and backoff included (each attempt gets what remains).
//! - Retries with jittered exponential backoff, for idempotent calls only (lookups, reads), as
//!   long as the call's deadline leaves time for them.
//! - A circuit breaker: after `breaker_threshold` consecutive failures the client fails fast
//!   for `breaker_cooldown`, then lets one probe through; so a dead products service costs
//!   callers microseconds, not the full timeout. A probe abandoned without an outcome (its
//!   caller went away) frees the probe slot for the next call.
//! - It authenticates with the caller service's own token (never an end user's) and forwards
//!   the request id.
//! - Metrics (latency, outcomes, retries, breaker state) can be registered in the caller's
//!   registry.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::registry::Registry;
use reqwest::StatusCode;
use thread_local::ThreadLocal;
use uuid::Uuid;

use crate::wire::{LookupRequest, LookupResponse};

mod breaker;
mod feed;
mod metrics;
mod reservations;
mod retry;

use breaker::Breaker;
pub use feed::FeedEvent;
use metrics::ClientMetrics;
pub use reservations::ReserveOutcome;
/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL of products, e.g. `http://127.0.0.1:8081`.
    pub base_url: String,
    /// The calling service's token (products:read).
    pub token: String,
    /// Deadline of one call: all its attempts and the backoff between them (each attempt gets
    /// what remains).
    pub timeout: Duration,
    /// Extra attempts for idempotent calls (made only while the call's deadline allows).
    pub retries: u32,
    /// First backoff; doubled per attempt, with ±50% jitter.
    pub backoff: Duration,
    /// Consecutive failures that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit fails fast before a probe.
    pub breaker_cooldown: Duration,
}

impl ClientConfig {
    /// Defaults: 2 s per call (retries included), 2 retries from 50 ms, breaker at 5 failures
    /// for 5 s.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            timeout: Duration::from_secs(2),
            retries: 2,
            backoff: Duration::from_millis(50),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Products could not answer: unreachable, timed out, 5xx, or the circuit is open.
    #[error("products is unavailable: {0}")]
    Unavailable(String),
    /// Products refused the call (4xx): a bug or a misconfigured token on our side.
    #[error("products refused the call with {status}: {detail}")]
    Refused {
        /// The status.
        status: u16,
        /// The problem's detail, or the status's reason.
        detail: String,
        /// The problem+json body, when products sent one (e.g. the short lines of a 409).
        problem: Option<serde_json::Value>,
    },
    /// The answer could not be read.
    #[error("products sent an unreadable answer: {0}")]
    Decode(String),
}

/// A client of the products API. Cheap to clone.
///
/// Each thread that calls gets its own connection pool: a pooled connection is driven by a
/// task on the runtime that opened it, and the service's HTTP workers are one single-threaded
/// runtime each, so a shared pool would have one worker's calls written and read by another
/// worker (two cross-thread wake-ups per call, and work landing on a busy thread).
#[derive(Debug, Clone)]
pub struct ProductsClient {
    http: Arc<ThreadLocal<reqwest::Client>>,
    /// `config.base_url`, parsed once: reqwest parses a URL given as text on every call (and
    /// its redirect layer twice more), about 9,000 instructions each time.
    base: Arc<reqwest::Url>,
    config: Arc<ClientConfig>,
    breaker: Arc<Breaker>,
    metrics: ClientMetrics,
    seed: Arc<AtomicU64>,
}

/// One connection pool to products.
fn pool(config: &ClientConfig) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .connect_timeout(config.timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| ClientError::Unavailable(e.to_string()))
}

impl ProductsClient {
    /// A client with its own connection pools (one per calling thread).
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let http = ThreadLocal::new();
        // Built once here so that a configuration reqwest refuses fails at start-up.
        http.get_or_try(|| pool(&config))?;
        let base = reqwest::Url::parse(&config.base_url)
            .ok()
            .filter(|u| u.has_host() && u.query().is_none())
            .ok_or_else(|| {
                ClientError::Unavailable(format!(
                    "the products URL {:?} is not a base URL (http://HOST:PORT[/PREFIX])",
                    config.base_url
                ))
            })?;
        Ok(Self {
            http: Arc::new(http),
            base: Arc::new(base),
            config: Arc::new(config),
            breaker: Arc::default(),
            metrics: ClientMetrics::new(),
            seed: Arc::new(AtomicU64::new(Uuid::new_v4().as_u128() as u64 | 1)),
        })
    }

    /// This thread's pool (built on its first call; the first one was checked in `new`).
    fn http(&self) -> &reqwest::Client {
        self.http
            .get_or(|| pool(&self.config).expect("the configuration was accepted in new"))
    }

    /// The URL of `path` (from `/`) at products, under the base URL's own path if it has one.
    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = (*self.base).clone();
        let prefix = url.path().trim_end_matches('/');
        let mut full = String::with_capacity(prefix.len() + path.len());
        full.push_str(prefix);
        full.push_str(path);
        url.set_path(&full);
        url
    }

    /// Adds the client's metrics to a registry: `products_client_requests_total` and
    /// `products_client_request_duration_seconds` by call and outcome,
    /// `products_client_retries_total`, `products_client_circuit_open`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(registry);
    }

    /// Looks up products by id in one call (retried: a lookup is a read).
    pub async fn lookup(
        &self,
        ids: &[Uuid],
        request_id: Option<&str>,
    ) -> Result<LookupResponse, ClientError> {
        let body = LookupRequest { ids: ids.to_vec() };
        let url = self.url("/products/lookup");
        self.idempotent("lookup", || {
            let mut req = self.http().post(url.clone()).json(&body);
            if let Some(id) = request_id {
                req = req.header("X-Request-Id", id);
            }
            req
        })
        .await
    }

    /// Whether products answers its liveness check (no retries: for readiness probes).
    pub async fn healthy(&self) -> Result<(), ClientError> {
        let res = self
            .http()
            .get(self.url("/healthz"))
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(ClientError::Unavailable(format!(
                "healthz answered {}",
                res.status()
            )))
        }
    }
}

fn check_status(res: &reqwest::Response) -> Result<(), ClientError> {
    let status = res.status();
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Err(ClientError::Unavailable(format!(
            "products answered {status}"
        )))
    } else {
        Err(ClientError::Refused {
            status: status.as_u16(),
            detail: status.canonical_reason().unwrap_or("").to_owned(),
            problem: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use super::metrics::OutcomeLabels;
    use super::*;

    /// A caller that goes away mid-probe (actix drops the handler's future when the client
    /// disconnects) must not leave the circuit half-open with a probe "in flight" forever.
    #[tokio::test]
    async fn a_dropped_probe_future_does_not_wedge_the_circuit() {
        let mut config = fast_config(fake_products(None));
        config.retries = 0;
        config.breaker_threshold = 1;
        config.breaker_cooldown = Duration::from_millis(20);
        let client = ProductsClient::new(config).unwrap();
        let err = client.lookup(&[Uuid::nil()], None).await.unwrap_err();
        assert!(matches!(err, ClientError::Unavailable(_)), "{err}");
        tokio::time::sleep(Duration::from_millis(30)).await;

        // The half-open probe goes out to the silent server; its caller gives up and drops it.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(50),
            client.lookup(&[Uuid::nil()], None),
        )
        .await;
        assert!(abandoned.is_err(), "the probe should still be waiting");

        let next = client.breaker.admit();
        assert!(
            next.as_ref().is_ok_and(|p| p.probe),
            "the next call should be the new probe: {:?}",
            next.err()
        );
    }

    #[test]
    fn urls_are_built_under_the_base_url_and_its_prefix() {
        let url_of = |base: &str, path: &str| {
            let client = ProductsClient::new(ClientConfig::new(base, "t")).unwrap();
            client.url(path).to_string()
        };
        let id = "/reservations/0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b";
        assert_eq!(
            url_of("http://127.0.0.1:8081", id),
            format!("http://127.0.0.1:8081{id}")
        );
        assert_eq!(
            url_of("http://products:80/shop/api/", "/healthz"),
            "http://products/shop/api/healthz"
        );
        for bad in ["products:8081", "not a url", "http://h/?q=1", "mailto:x@y"] {
            let err = ProductsClient::new(ClientConfig::new(bad, "t")).unwrap_err();
            assert!(
                matches!(&err, ClientError::Unavailable(m) if m.contains("not a base URL")),
                "{bad}: {err}"
            );
        }
    }

    /// A server on a free port that answers every connection with `reply` (or, with `None`,
    /// accepts and never answers).
    fn fake_products(reply: Option<&'static str>) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                match reply {
                    Some(reply) => {
                        let _ = stream.write_all(reply.as_bytes());
                    }
                    None => held.push(stream),
                }
            }
        });
        url
    }

    /// A server on a free port that answers its n-th connection with `replies[n]` (the last
    /// one again after that) and records each request's head (request line and headers).
    fn recording_products(replies: Vec<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = heads.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                recorded
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let reply = replies[n.min(replies.len() - 1)];
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        (url, heads)
    }

    const EMPTY_LOOKUP: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 42\r\nconnection: close\r\n\r\n{\"products\":[],\"unknown\":[],\"archived\":[]}";

    fn fast_config(url: String) -> ClientConfig {
        let mut config = ClientConfig::new(url, "t");
        config.timeout = Duration::from_millis(200);
        config.retries = 1;
        config.backoff = Duration::from_millis(1);
        config
    }

    #[tokio::test]
    async fn a_silent_products_times_out_as_unavailable() {
        let client = ProductsClient::new(fast_config(fake_products(None))).unwrap();
        let started = Instant::now();
        let err = client.lookup(&[Uuid::nil()], None).await.unwrap_err();
        assert!(matches!(err, ClientError::Unavailable(_)), "{err}");
        // At most the call's 200 ms deadline, not a hang.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    /// The timeout bounds the whole call: retries and backoff fit in it, they do not
    /// multiply it.
    #[tokio::test]
    async fn a_hung_products_fails_within_one_timeout_not_one_per_attempt() {
        let mut config = ClientConfig::new(fake_products(None), "t");
        config.timeout = Duration::from_millis(300);
        config.retries = 2;
        config.backoff = Duration::from_millis(50);
        let client = ProductsClient::new(config).unwrap();
        let started = Instant::now();
        let err = client.lookup(&[Uuid::nil()], None).await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, ClientError::Unavailable(_)), "{err}");
        // One deadline of 300 ms (three attempts of 300 ms each would take over 900 ms).
        assert!(took < Duration::from_millis(600), "took {took:?}");
        assert!(
            took >= Duration::from_millis(250),
            "gave up early: {took:?}"
        );
    }

    /// The caller's request id travels to products in `X-Request-Id`, with the service token.
    #[tokio::test]
    async fn the_request_id_is_forwarded() {
        let (url, heads) = recording_products(vec![EMPTY_LOOKUP]);
        let client = ProductsClient::new(fast_config(url)).unwrap();
        client
            .lookup(&[Uuid::nil()], Some("req-7f3a"))
            .await
            .unwrap();
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 1, "{heads:?}");
        let lines: Vec<String> = heads[0].lines().map(str::to_ascii_lowercase).collect();
        assert!(lines[0].starts_with("post /products/lookup "), "{lines:?}");
        assert!(
            lines.iter().any(|l| l == "x-request-id: req-7f3a"),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l == "authorization: bearer t"),
            "{lines:?}"
        );
    }

    /// A transient failure (503, then 200) of an idempotent call is retried to success, and
    /// counted: one retry, one call with outcome ok.
    #[tokio::test]
    async fn a_transient_failure_is_retried_to_success_and_counted() {
        let busy =
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        let (url, heads) = recording_products(vec![busy, EMPTY_LOOKUP]);
        let client = ProductsClient::new(fast_config(url)).unwrap();
        let found = client.lookup(&[Uuid::nil()], None).await.unwrap();
        assert!(found.products.is_empty() && found.unknown.is_empty());
        assert_eq!(heads.lock().unwrap().len(), 2, "two attempts");
        assert_eq!(client.metrics.retries.get(), 1);
        let ok = OutcomeLabels {
            call: "lookup",
            outcome: "ok",
        };
        assert_eq!(client.metrics.calls.get_or_create(&ok).get(), 1);
        let unavailable = OutcomeLabels {
            call: "lookup",
            outcome: "unavailable",
        };
        assert_eq!(client.metrics.calls.get_or_create(&unavailable).get(), 0);
    }

    #[tokio::test]
    async fn server_errors_are_unavailable_and_client_errors_are_refusals() {
        let busy = "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n";
        let client = ProductsClient::new(fast_config(fake_products(Some(busy)))).unwrap();
        let err = client.lookup(&[Uuid::nil()], None).await.unwrap_err();
        assert!(matches!(err, ClientError::Unavailable(_)), "{err}");
        let denied = "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
        let client = ProductsClient::new(fast_config(fake_products(Some(denied)))).unwrap();
        let err = client.lookup(&[Uuid::nil()], None).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Refused { status: 403, .. }),
            "{err}"
        );
        let garbled = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nnope!";
        let client = ProductsClient::new(fast_config(fake_products(Some(garbled)))).unwrap();
        let err = client.lookup(&[Uuid::nil()], None).await.unwrap_err();
        assert!(matches!(err, ClientError::Decode(_)), "{err}");
    }

    #[tokio::test]
    async fn unreachable_products_is_unavailable_and_opens_the_circuit() {
        // A port nothing listens on: connection refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = ClientConfig::new(format!("http://127.0.0.1:{port}"), "t");
        config.retries = 1;
        config.backoff = Duration::from_millis(1);
        config.breaker_threshold = 2;
        let client = ProductsClient::new(config).unwrap();
        let err = client.lookup(&[Uuid::nil()], None).await.unwrap_err();
        assert!(matches!(err, ClientError::Unavailable(_)), "{err}");
        let err = client.lookup(&[Uuid::nil()], None).await.unwrap_err();
        assert!(err.to_string().contains("circuit open"), "{err}");
    }

    /// A raw JSON answer with `status`, for the recording fake (leaked: tests only).
    fn answer(status: &str, content_type: &str, body: &str) -> &'static str {
        Box::leak(
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        )
    }

    /// A reservation is a PUT named by the order's id; held, short and unavailable answers
    /// come back as outcomes, a refused commit as `Refused` with the problem's detail.
    #[tokio::test]
    async fn reservations_map_their_answers() {
        let id = Uuid::from_u128(7);
        let product = Uuid::from_u128(9);
        let held = format!(
            r#"{{"id":"{id}","state":"held","expires_at":"2026-01-01T00:05:00Z","lines":[{{"product_id":"{product}","quantity":2,"name":"Tea","unit_price":"1.50"}}],"version":1}}"#
        );
        let short = format!(
            r#"{{"type":"urn:shop:problem:out-of-stock","status":409,"title":"Out of stock","detail":"short","lines":[{{"product_id":"{product}","requested":2,"available":1}}]}}"#
        );
        let unknown = format!(
            r#"{{"type":"urn:shop:problem:unprocessable","status":422,"title":"Request refused","detail":"unknown","unknown_product_ids":["{product}"]}}"#
        );
        let expired = r#"{"type":"urn:shop:problem:conflict","status":409,"title":"Conflict","detail":"reservation was expired"}"#;
        let problem = "application/problem+json";
        let (url, heads) = recording_products(vec![
            answer("201 Created", "application/json", &held),
            answer("409 Conflict", problem, &short),
            answer("422 Unprocessable Entity", problem, &unknown),
            answer("409 Conflict", problem, expired),
        ]);
        let client = ProductsClient::new(fast_config(url)).unwrap();
        let lines = [crate::wire::ReserveLine {
            product_id: product,
            quantity: 2,
        }];

        let ReserveOutcome::Held(body) = client.reserve(id, &lines, None, None).await.unwrap()
        else {
            panic!("held")
        };
        assert_eq!((body.id, body.lines[0].name.as_str()), (id, "Tea"));
        assert_eq!(
            client.reserve(id, &lines, None, None).await.unwrap(),
            ReserveOutcome::OutOfStock(vec![crate::wire::ShortLine {
                product_id: product,
                requested: 2,
                available: 1
            }])
        );
        assert_eq!(
            client.reserve(id, &lines, None, None).await.unwrap(),
            ReserveOutcome::Unavailable {
                unknown: vec![product],
                archived: vec![]
            }
        );
        let err = client.commit(id, None).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Refused { status: 409, detail, .. } if detail == "reservation was expired"),
            "{err:?}"
        );
        let heads = heads.lock().unwrap();
        assert!(
            heads[0].starts_with(&format!("PUT /reservations/{id} ")),
            "{heads:?}"
        );
        assert!(
            heads[3].starts_with(&format!("POST /reservations/{id}/commit ")),
            "{heads:?}"
        );
    }
}
