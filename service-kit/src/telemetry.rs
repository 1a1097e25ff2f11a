//! Structured logs with `tracing`, and each request's service and id on the lines it logs.
//!
//! The request's id travels in a task-local ([`current_request`]), not in a `tracing` span:
//! the few lines logged while a request is served (its access line, an internal error's cause)
//! name it as fields, and the tens of thousands of requests a second that log nothing pay for
//! no span (creating, entering, leaving and closing one was 7,000 instructions of a 53,000
//! instruction `GET`, BENCHMARKS.md). At `debug` a `request` span is added, for the lines of
//! other crates.

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

use crate::log_fields::{JsonLineFields, PlainFields};
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

/// The log filter without `RUST_LOG`: info, but actix-server's start-up lines (which do not
/// name the service; [`server::bind`](crate::server::bind) logs its own) only from warn.
pub const DEFAULT_FILTER: &str = "info,actix_server=warn";

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
    // Colours only for a person at a terminal (and not with NO_COLOR): a log file or collector
    // gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = subscriber(format, filter, show_protocol_errors, ansi, std::io::stderr).try_init();
}

/// The subscriber [`init`] installs: log lines to `writer` through `filter`, and the count of
/// protocol errors.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    show_protocol_errors: bool,
    ansi: bool,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let quiet =
        filter_fn(move |meta| show_protocol_errors || !protocol_errors::is_protocol_error(meta));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    // The same text as the stock field formatters, written with less work (log_fields).
    let fmt = match format {
        LogFormat::Pretty => fmt.fmt_fields(PlainFields).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .fmt_fields(JsonLineFields)
            .boxed(),
    };
    // The counting layer sees only the callsites it counts: unfiltered, it would make every
    // span and event of every crate (actix, hyper, reqwest: trace and debug ones included) be
    // built and dispatched on the hot path, only to be dropped.
    let counted = filter_fn(protocol_errors::is_protocol_error)
        .with_max_level_hint(tracing::level_filters::LevelFilter::ERROR);
    tracing_subscriber::registry()
        .with(protocol_errors::ProtocolErrors.with_filter(counted))
        .with(fmt.with_filter(filter.and(quiet)))
}

/// The service a request is for (app data set by [`server::bind`](crate::server::bind)): in
/// `shop up` both services log to one stream, and each request line says which wrote it.
#[derive(Debug, Clone, Copy)]
pub struct ServiceName(pub &'static str);

/// The request id header, accepted from the client or generated, and returned.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request (in request extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The request a task is serving, for its log lines.
#[derive(Debug, Clone)]
struct Serving {
    service: &'static str,
    id: String,
}

tokio::task_local! {
    static SERVING: Serving;
}

/// The service and request id of the request this task is serving (`"-"` for both outside
/// one): log lines written while serving a request name them, e.g.
/// `let (service, request_id) = current_request(); tracing::error!(service, request_id, ..)`.
pub fn current_request() -> (&'static str, String) {
    SERVING
        .try_with(|s| (s.service, s.id.clone()))
        .unwrap_or(("-", "-".to_owned()))
}

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
    // By hand: `format!` costs ten times as much, on every request.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [b'-'; 21];
    for (i, b) in id[..8].iter_mut().enumerate() {
        *b = HEX[(*prefix >> (28 - 4 * i)) as usize & 15];
    }
    for (i, b) in id[9..].iter_mut().enumerate() {
        *b = HEX[(n >> (44 - 4 * i)) as usize & 15];
    }
    String::from_utf8(id.to_vec()).expect("hex digits")
}

/// Middleware: the service and the request id for the lines logged while serving the request
/// ([`current_request`]); one log line when the response is ready (with both, and method,
/// route, path, status and latency: at info for a 4xx, warn for a 5xx, debug otherwise); the
/// id echoed in `X-Request-Id`.
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
    let service = req
        .app_data::<actix_web::web::Data<ServiceName>>()
        .map_or("-", |n| n.0);
    // Disabled below debug, where creating it costs one cached check.
    let span = tracing::debug_span!("request", service, request_id = %id);
    let started = Instant::now();
    let serving = Serving {
        service,
        id: id.clone(),
    };
    let mut res = SERVING
        .scope(serving, next.call(req).instrument(span.clone()))
        .await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    let status = res.status().as_u16();
    span.in_scope(|| {
        // Successful requests are debug: at info they cost a fifth of a small request's CPU
        // (measured with wrk, see BENCHMARKS.md). Refusals and failures are always logged.
        // The line's fields (the route is found by matching the path again) are only worked
        // out when it is written.
        if status < 400 && !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let request = res.request();
        let (method, path) = (request.method(), request.path());
        let route = request.match_pattern();
        let route = route.as_deref().unwrap_or("(no route)");
        let request_id = &id;
        if status >= 500 {
            tracing::warn!(service, %request_id, %method, route, %path, status, elapsed_ms, "request failed");
        } else if status >= 400 {
            tracing::info!(service, %request_id, %method, route, %path, status, elapsed_ms, "request refused");
        } else {
            tracing::debug!(service, %request_id, %method, route, %path, status, elapsed_ms, "request done");
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
        // The same text `format!("{prefix:08x}-{n:012x}")` gives.
        let n = u64::from_str_radix(&b[9..], 16).unwrap();
        let prefix = u32::from_str_radix(&b[..8], 16).unwrap();
        assert_eq!(b, format!("{prefix:08x}-{n:012x}"));
    }

    /// A log sink for one test.
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Sink {
        /// Collects, until the guard drops, what this thread logs at info and above, in the
        /// stock plain format without colours.
        fn capture_info() -> (Self, tracing::subscriber::DefaultGuard) {
            Self::capture(tracing::Level::INFO)
        }

        fn capture(level: tracing::Level) -> (Self, tracing::subscriber::DefaultGuard) {
            let sink = Sink::default();
            let writer = sink.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_max_level(level)
                .with_ansi(false)
                .finish();
            (sink, tracing::subscriber::set_default(subscriber))
        }

        /// What was logged so far.
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The first line of `text` that contains `needle`.
    fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {text}"))
    }

    /// Asserts that `line` contains every one of `parts`.
    fn assert_has(line: &str, parts: &[&str]) {
        for part in parts {
            assert!(line.contains(part), "{part} in {line}");
        }
    }

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// At info, a refused request is one line naming the service, request id, method, route,
    /// status and latency; a successful one logs nothing.
    #[actix_web::test]
    async fn refusals_are_logged_at_info_successes_at_debug() {
        use actix_web::{App, HttpResponse, middleware::from_fn, test, web};
        let (sink, _guard) = Sink::capture_info();
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(ServiceName("widgets")))
                .wrap(from_fn(request_span))
                .route(
                    "/things/{id}",
                    web::get().to(|| async { HttpResponse::NotFound().finish() }),
                )
                .route(
                    "/ok",
                    web::get().to(|| async { HttpResponse::Ok().finish() }),
                ),
        )
        .await;

        test::call_service(&app, test::TestRequest::get().uri("/ok").to_request()).await;
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/things/7")
                .insert_header(("X-Request-Id", "req-1"))
                .to_request(),
        )
        .await;

        assert_eq!(res.status(), 404);
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_has(
            lines[0],
            &[
                " INFO ",
                "service=\"widgets\"",
                "request_id=req-1",
                "method=GET",
                "route=\"/things/{id}\"",
                "path=/things/7",
                "status=404",
                "elapsed_ms=",
                "request refused",
            ],
        );
    }

    /// With debug on, a success is logged with the same fields (worked out only then).
    #[actix_web::test]
    async fn successes_are_logged_in_full_when_debug_is_on() {
        use actix_web::{App, HttpResponse, middleware::from_fn, test, web};
        let (sink, _guard) = Sink::capture(tracing::Level::DEBUG);
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(ServiceName("widgets")))
                .wrap(from_fn(request_span))
                .route(
                    "/things/{id}",
                    web::post().to(|| async { HttpResponse::Created().finish() }),
                ),
        )
        .await;
        let req = test::TestRequest::post().uri("/things/9?x=1").to_request();
        assert_eq!(test::call_service(&app, req).await.status(), 201);
        let text = sink.text();
        assert_has(
            line_with(&text, "request done"),
            &[
                " DEBUG ",
                "service=\"widgets\"",
                "method=POST",
                "route=\"/things/{id}\"",
                "path=/things/9",
                "status=201",
                "elapsed_ms=",
            ],
        );
    }

    /// A line logged while a request is served (here an internal error's cause) names the
    /// request's service and id, although no span is open at info; outside a request both are
    /// `-`.
    #[actix_web::test]
    async fn lines_logged_while_serving_name_the_request() {
        use actix_web::{App, middleware::from_fn, test, web};
        let (sink, _guard) = Sink::capture_info();
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(ServiceName("widgets")))
                .wrap(from_fn(request_span))
                .route(
                    "/boom",
                    web::get().to(|| async {
                        Err::<String, _>(crate::problem::ApiError::Internal("disk on fire".into()))
                    }),
                ),
        )
        .await;
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/boom")
                .insert_header(("X-Request-Id", "req-2"))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), 500);
        assert_eq!(
            current_request(),
            ("-", "-".to_owned()),
            "outside a request"
        );

        let text = sink.text();
        assert_has(
            line_with(&text, "disk on fire"),
            &[
                " ERROR ",
                "service=\"widgets\"",
                "request_id=req-2",
                "request failed",
            ],
        );
        assert_has(
            line_with(&text, " WARN "),
            &["request_id=req-2", "status=500"],
        );
        assert!(!text.contains("request{"), "no span at info: {text}");
    }

    #[test]
    fn below_the_filter_nothing_is_built_yet_protocol_errors_are_counted() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = subscriber(
            LogFormat::Pretty,
            EnvFilter::new(DEFAULT_FILTER),
            false,
            false,
            move || writer.clone(),
        );
        let before = protocol_errors::counts()[0].1;
        tracing::subscriber::with_default(subscriber, || {
            // No layer wants these: actix's and hyper's per-request trace and debug calls
            // must cost one cached check, not a built event (the counting layer once took all).
            assert!(
                !tracing::enabled!(target: "actix_http::h1::dispatcher", tracing::Level::TRACE)
            );
            assert!(
                !tracing::enabled!(target: "actix_http::h1::dispatcher", tracing::Level::DEBUG)
            );
            assert!(!tracing::enabled!(target: "hyper_util::client", tracing::Level::DEBUG));
            assert!(tracing::enabled!(target: "products", tracing::Level::INFO));
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error: invalid Header provided");
        });
        assert!(protocol_errors::counts()[0].1 > before, "counted");
        let text = sink.text();
        assert!(!text.contains("parse error"), "kept out of the log: {text}");
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
