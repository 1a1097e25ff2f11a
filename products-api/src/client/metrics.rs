//! What the client reports: latency and outcome per call, retries, and the breaker's state.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub(super) call: &'static str,
    pub(super) outcome: &'static str,
}

/// The client's metrics (registered with
/// [`ProductsClient::register_metrics`](super::ProductsClient::register_metrics)).
#[derive(Debug, Clone)]
pub(super) struct ClientMetrics {
    pub(super) latency: Family<OutcomeLabels, Histogram>,
    pub(super) calls: Family<OutcomeLabels, Counter>,
    pub(super) retries: Counter,
    pub(super) breaker_open: Gauge,
}

impl ClientMetrics {
    pub(super) fn new() -> Self {
        Self {
            latency: Family::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
            }),
            calls: Family::default(),
            retries: Counter::default(),
            breaker_open: Gauge::default(),
        }
    }

    /// Adds the metrics to `registry`.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "products_client_requests",
            "Calls to products by call and outcome",
            self.calls.clone(),
        );
        registry.register(
            "products_client_request_duration_seconds",
            "Latency of calls to products (all attempts) by call and outcome",
            self.latency.clone(),
        );
        registry.register(
            "products_client_retries",
            "Retried attempts of idempotent calls to products",
            self.retries.clone(),
        );
        registry.register(
            "products_client_circuit_open",
            "1 while the circuit to products is open",
            self.breaker_open.clone(),
        );
    }
}
