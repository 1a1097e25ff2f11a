//! Prometheus metrics: request counts and latency by route and status, and the stores' sizes
//! and fsync latency, read at scrape time. Each app has its own registry, so two services in one
//! process (`shop up`) keep their metrics apart.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the HTTP metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// HTTP method.
    pub method: String,
    /// The route pattern (e.g. `/products/{id}`), not the raw path: bounded cardinality.
    pub route: String,
    /// Response status.
    pub status: u16,
}

/// Reads a store's status on each scrape.
pub type StatusFn = Box<dyn Fn() -> store_actor::Status + Send + Sync>;

/// One app's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<HttpLabels, Counter>,
    latency: Family<HttpLabels, Histogram>,
    /// Both HTTP metrics of each label set seen, found by method, status and route without
    /// building the label strings or looking in each family (one lookup instead of two per
    /// request). Bounded as the families are: by the route table.
    series: Arc<RwLock<HashMap<SeriesKey, Series>>>,
}

/// Method, status and route pattern.
type SeriesKey = (Method, u16, String);

/// A label set's counter and histogram (handles on the families' own).
struct Series {
    requests: Counter,
    latency: Histogram,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the HTTP metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<HttpLabels, Counter>::default();
        let latency = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            latency.clone(),
        );
        registry.register_collector(Box::new(ProtocolErrorCollector));
        registry.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        Self {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            latency,
            series: Arc::default(),
        }
    }

    /// Adds a store whose size, sequence and fsync figures are exported as `store_*` with
    /// label `store="NAME"`.
    pub fn register_store(&self, name: &str, status: StatusFn) {
        self.registry
            .lock()
            .unwrap()
            .register_collector(Box::new(StoreCollector {
                name: name.to_owned(),
                status,
            }));
    }

    /// Registers `shop_build_info{service, version} 1`: which service and version answer.
    pub fn build_info(&self, service: &str) {
        let info = prometheus_client::metrics::info::Info::new(vec![
            ("service".to_owned(), service.to_owned()),
            ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ]);
        self.register("shop_build", "The service and its version", info);
    }

    /// Registers another metric (services add their own).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry.lock().unwrap().register(name, help, metric);
    }

    /// Lets a component register its own metrics in this app's registry (e.g. a client crate
    /// that knows prometheus-client but not this service kit).
    pub fn with_registry(&self, add: impl FnOnce(&mut Registry)) {
        add(&mut self.registry.lock().unwrap());
    }

    /// The text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().unwrap()).expect("writing to a String");
        out
    }

    fn observe(&self, method: Method, route: String, status: u16, seconds: f64) {
        let key = (method, status, route);
        if let Some(series) = self.series.read().unwrap().get(&key) {
            series.requests.inc();
            series.latency.observe(seconds);
            return;
        }
        let labels = HttpLabels {
            method: key.0.to_string(),
            route: key.2.clone(),
            status,
        };
        let series = Series {
            requests: self.requests.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
        };
        series.requests.inc();
        series.latency.observe(seconds);
        self.series.write().unwrap().insert(key, series);
    }
}

/// Middleware recording every request (needs `web::Data<Metrics>` in the app).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().clone();
    let started = Instant::now();
    let res = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        if !route.starts_with("/docs") {
            let status = res.status().as_u16();
            metrics.observe(method, route, status, started.elapsed().as_secs_f64());
        }
    }
    Ok(res)
}

/// `GET /metrics`.
pub async fn endpoint(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}

struct StoreCollector {
    name: String,
    status: StatusFn,
}

impl fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreCollector")
            .field("name", &self.name)
            .finish()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: String,
}

impl prometheus_client::collector::Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let s = (self.status)();
        let labels = StoreLabels {
            store: self.name.clone(),
        };
        let gauges: [(&str, &str, f64); 10] = [
            (
                "store_records",
                "Records, archived ones included",
                s.records as f64,
            ),
            ("store_live_records", "Records not archived", s.live as f64),
            (
                "store_last_sequence",
                "Last durable sequence number",
                s.last_seq as f64,
            ),
            (
                "store_journal_bytes",
                "Journal size",
                s.journal_bytes as f64,
            ),
            (
                "store_snapshot_bytes",
                "Snapshot size",
                s.snapshot_bytes as f64,
            ),
            (
                "store_fsync_max_seconds",
                "Longest journal fsync",
                s.fsync_max.as_secs_f64(),
            ),
            (
                "store_writable",
                "1 while the store accepts writes",
                f64::from(u8::from(s.writable)),
            ),
            (
                "store_compaction_disk_full",
                "1 while the last compaction failed for a full disk (or quota)",
                f64::from(u8::from(
                    s.last_compaction_failure
                        .as_ref()
                        .is_some_and(|f| f.disk_full),
                )),
            ),
            (
                "store_torn_tail_dropped",
                "1 if a torn last journal line (never acknowledged) was dropped at open",
                f64::from(u8::from(s.torn_line_dropped)),
            ),
            (
                "store_damaged_tail_dropped",
                "1 if a whole last journal line failing its checksum (possibly an acknowledged write) was dropped at open; its bytes are kept in NAME.journal.broken.N",
                f64::from(u8::from(s.damaged_line_dropped)),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            let mut metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric.encode_family(&labels)?)?;
        }
        let counters: [(&str, &str, f64); 5] = [
            ("store_fsyncs", "Journal fsyncs", s.fsyncs as f64),
            (
                "store_fsync_seconds",
                "Time spent in journal fsyncs",
                s.fsync_total.as_secs_f64(),
            ),
            (
                "store_batches",
                "Journal batches written (group commits)",
                s.batches as f64,
            ),
            (
                "store_compactions",
                "Compactions completed",
                s.compactions as f64,
            ),
            (
                "store_compaction_failures",
                "Compactions that failed (automatic ones are retried with a backoff)",
                s.compaction_failures as f64,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let mut metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// `http_protocol_errors_total{kind}`: requests the HTTP layer refused before any handler (see
/// [`crate::protocol_errors`]).
#[derive(Debug)]
struct ProtocolErrorCollector;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

impl prometheus_client::collector::Collector for ProtocolErrorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "http_protocol_errors",
            "Requests refused by the HTTP layer before any handler (malformed, head too large), by kind",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (kind, n) in crate::protocol_errors::counts() {
            ConstCounter::new(n as f64).encode(metric.encode_family(&KindLabels { kind })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series cache counts into the families' own metrics: what `/metrics` shows is the
    /// same whether a label set was seen before or not.
    #[test]
    fn repeated_label_sets_count_into_one_series_each() {
        let m = Metrics::new();
        m.observe(Method::GET, "/things/{id}".into(), 200, 0.002);
        m.observe(Method::GET, "/things/{id}".into(), 200, 0.003);
        m.observe(Method::GET, "/things/{id}".into(), 404, 0.001);
        m.observe(Method::POST, "/things".into(), 201, 0.2);
        let text = m.render();
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} in {text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        let get_ok = r#"method="GET",route="/things/{id}",status="200""#;
        assert_eq!(line(&format!("http_requests_total{{{get_ok}}}")), "2");
        let get_404 = r#"method="GET",route="/things/{id}",status="404""#;
        assert_eq!(line(&format!("http_requests_total{{{get_404}}}")), "1");
        let post = r#"method="POST",route="/things",status="201""#;
        assert_eq!(line(&format!("http_requests_total{{{post}}}")), "1");
        assert_eq!(
            line(&format!("http_request_duration_seconds_count{{{get_ok}}}")),
            "2"
        );
        assert_eq!(
            line(&format!("http_request_duration_seconds_sum{{{get_ok}}}")),
            "0.005"
        );
    }
}
