//! Structured logs with `tracing`, and one span per request carrying its request id.

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::protocol_errors;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber (once per process; later calls are no-ops). `RUST_LOG`
/// overrides `default_filter`. Protocol errors that actix-http logs at ERROR (any client can
/// cause them) are counted for `/metrics` and left out of the log, unless `RUST_LOG` names
/// `actix_http` (see [`protocol_errors`](crate::protocol_errors)).
pub fn init(format: LogFormat, default_filter: &str) {
    let env = std::env::var("RUST_LOG").ok();
    let show_protocol_errors = env.as_deref().is_some_and(|f| f.contains("actix_http"));
    let filter = env
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    let quiet =
        filter_fn(move |meta| show_protocol_errors || !protocol_errors::is_protocol_error(meta));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Pretty => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(protocol_errors::ProtocolErrors)
        .with(fmt.with_filter(filter.and(quiet)))
        .try_init();
}

/// The request id header, accepted from the client or generated, and returned.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request (in request extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Accepts a client's request id if it is short and plain; otherwise a new one is made.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A process-unique request id: a random prefix chosen at start-up and a counter. Cheaper than
/// a random UUID per request (no system call), and still unique across restarts in practice.
fn new_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u128() as u32);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:08x}-{n:012x}")
}

/// Middleware: a span per request with method, route and request id; one log line when the
/// response is ready; the id echoed in `X-Request-Id`.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    // Only the id in the span: every field is formatted when the span is created, and at
    // tens of thousands of requests a second that cost shows (method and path are in the
    // access line).
    let span = tracing::info_span!("request", request_id = %id);
    let (method, path) = (req.method().clone(), req.path().to_owned());
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    let status = res.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        // Access lines are debug: at info they cost a fifth of a small request's CPU (measured
        // with wrk, see BENCHMARKS.md). Server errors are always logged.
        if status >= 500 {
            tracing::warn!(%method, %path, status, elapsed_ms, "request failed");
        } else {
            tracing::debug!(%method, %path, status, elapsed_ms, "request done");
        }
    });
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_are_unique_and_acceptable() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert!(acceptable(&a) && acceptable(&b), "{a} {b}");
        assert_eq!(a[..8], b[..8], "one prefix per process");
    }

    #[test]
    fn only_plain_request_ids_are_accepted() {
        assert!(acceptable("abc-123_x.y:z"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("ünïcode"));
        assert!(!acceptable(&"x".repeat(129)));
    }
}
