//! Requests the HTTP layer refuses before any handler runs: a garbage request line or header,
//! both `Content-Length` and `Transfer-Encoding`, a head over the size limit (431).
//!
//! actix-http answers these itself, with an empty body (it offers no hook to write a
//! problem+json one), and logs each at ERROR, so any client could fill the error log. The
//! [`ProtocolErrors`] layer counts them by kind for `/metrics`
//! (`http_protocol_errors_total{kind}`), and [`init`](crate::telemetry::init) keeps them out of
//! the log unless `RUST_LOG` names `actix_http`.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Where actix-http logs the protocol errors of a connection.
const TARGET: &str = "actix_http::h1::dispatcher";

/// The kinds counted, in the order of [`COUNTS`].
pub const KINDS: [&str; 3] = ["malformed", "head_too_large", "other"];

static COUNTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Whether an event is one of actix-http's protocol-error lines.
pub fn is_protocol_error(meta: &Metadata<'_>) -> bool {
    meta.target() == TARGET && *meta.level() == Level::ERROR
}

/// The kind of a protocol-error message.
pub fn kind_of(message: &str) -> &'static str {
    if message.contains("too large") {
        KINDS[1]
    } else if message.contains("parse error") {
        KINDS[0]
    } else {
        KINDS[2]
    }
}

/// Protocol errors counted since start, by kind.
pub fn counts() -> [(&'static str, u64); 3] {
    std::array::from_fn(|i| (KINDS[i], COUNTS[i].load(Ordering::Relaxed)))
}

/// A tracing layer counting actix-http's protocol errors.
#[derive(Debug, Default)]
pub struct ProtocolErrors;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for ProtocolErrors {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if !is_protocol_error(event.metadata()) {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let kind = kind_of(&message.0);
        let i = KINDS.iter().position(|k| *k == kind).unwrap_or(2);
        COUNTS[i].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actix_messages_are_sorted_by_kind() {
        assert_eq!(
            kind_of("stream error: request parse error: invalid Header provided"),
            "malformed"
        );
        assert_eq!(
            kind_of("stream error: request parse error: message head is too large"),
            "head_too_large"
        );
        assert_eq!(kind_of("stream error: connection reset"), "other");
    }

    #[test]
    fn the_layer_counts_only_actix_protocol_errors() {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(ProtocolErrors);
        let before = counts();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error: invalid Header provided");
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error: message head is too large");
            tracing::warn!(target: "actix_http::h1::dispatcher", "stream error: request parse error: not counted at warn");
            tracing::error!("stream error: request parse error: another target");
        });
        let after = counts();
        let grew: Vec<u64> = after.iter().zip(before).map(|(a, b)| a.1 - b.1).collect();
        assert_eq!(grew, [1, 1, 0]);
    }
}
