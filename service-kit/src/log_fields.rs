//! Field formatters for the log lines that write the same text as `tracing-subscriber`'s own
//! ([`DefaultFields`], `JsonFields`), with less work for the common fields.
//!
//! Every request opens a span with two fields, and the `fmt` layer formats a span's fields
//! when the span is created, whether or not a line is ever written inside it. The stock
//! formatters go through `core::fmt` machinery for every field (styled names, `{:?}`, and for
//! JSON a map of `serde_json::Value`s serialized and parsed back): measured with callgrind,
//! about a twentieth of a `GET /products/{id}`. These write plain strings and numbers directly
//! and hand anything unusual (errors, messages, styled output for a terminal) to the stock
//! formatter, so a line reads exactly as before; the tests below check that on both formats.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// The text format's fields: `name=value` separated by spaces, strings quoted as `{:?}` quotes
/// them, other values as their `Debug`.
#[derive(Debug, Default)]
pub struct PlainFields;

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            // Styled names for a person at a terminal: not a hot path.
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut visitor = PlainVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'w> {
    writer: Writer<'w>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Starts a `name=` the way the stock visitor does: a space before every field but the
    /// first.
    fn start(&mut self, name: &str) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(name)?;
        self.writer.write_char('=')
    }

    /// Lets the stock visitor write one field (it pads the same way).
    fn stock(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut stock = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut stock);
        self.result = stock.finish();
        self.is_empty = false;
    }
}

/// Whether `{:?}` of `s` is `s` in quotes: printable ASCII with nothing to escape.
fn quotes_plainly(s: &str) -> bool {
    s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        if name == "message" || name.starts_with("r#") || !quotes_plainly(value) {
            return self.stock(|v| v.record_str(field, value));
        }
        self.result = self.start(name).and_then(|()| {
            self.writer.write_char('"')?;
            self.writer.write_str(value)?;
            self.writer.write_char('"')
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() {
            self.stock(|v| v.record_error(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        if name == "message" || name.starts_with("r#") {
            return self.stock(|v| v.record_debug(field, value));
        }
        self.result = self
            .start(name)
            .and_then(|()| write!(self.writer, "{value:?}"));
    }
}

/// The JSON format's fields: one object, keys in name order (the stock formatter keeps them
/// in a `BTreeMap`), a later field of the same name replacing an earlier one.
#[derive(Debug, Default)]
pub struct JsonLineFields;

impl<'w> FormatFields<'w> for JsonLineFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = JsonVisitor::default();
        fields.record(&mut visitor);
        visitor.write(&mut writer)
    }

    /// Recording more fields on a span merges them into its object, as the stock formatter
    /// does (rare: no span of ours records fields later).
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        self.format_fields(Writer::new(&mut added), fields)?;
        if current.fields.is_empty() {
            current.fields = added;
            return Ok(());
        }
        let parse = |text: &str| {
            serde_json::from_str::<std::collections::BTreeMap<String, serde_json::Value>>(text)
                .map_err(|_| fmt::Error)
        };
        let mut merged = parse(&current.fields)?;
        merged.extend(parse(&added)?);
        current.fields = serde_json::to_string(&merged).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

/// Each field's name and its value already written as JSON.
#[derive(Default)]
struct JsonVisitor {
    fields: Vec<(&'static str, String)>,
}

impl JsonVisitor {
    fn put(&mut self, name: &'static str, json: String) {
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => *old = json,
            None => self.fields.push((name, json)),
        }
    }

    fn put_value(&mut self, name: &'static str, value: serde_json::Value) {
        self.put(name, value.to_string());
    }

    fn write(mut self, writer: &mut Writer<'_>) -> fmt::Result {
        self.fields.sort_unstable_by_key(|(name, _)| *name); // names are unique by now
        writer.write_char('{')?;
        for (i, (name, json)) in self.fields.iter().enumerate() {
            if i > 0 {
                writer.write_char(',')?;
            }
            write_json_str(writer, name)?;
            writer.write_char(':')?;
            writer.write_str(json)?;
        }
        writer.write_char('}')
    }
}

/// `s` as a JSON string, as `serde_json` writes it.
fn write_json_str(writer: &mut impl fmt::Write, s: &str) -> fmt::Result {
    if s.bytes()
        .all(|b| b >= b' ' && b != b'"' && b != b'\\' && b != 0x7f)
    {
        writer.write_char('"')?;
        writer.write_str(s)?;
        return writer.write_char('"');
    }
    writer.write_str(&serde_json::Value::from(s).to_string())
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    let _ = write_json_str(&mut out, s);
    out
}

impl Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put_value(field.name(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field.name(), value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field.name(), value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field.name(), value.to_string());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field.name(), json_str(value));
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.put_value(field.name(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Only here does the stock formatter drop a raw identifier's `r#`.
        let name = field.name();
        self.put(
            name.strip_prefix("r#").unwrap_or(name),
            json_str(&format!("{value:?}")),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::JsonFields;

    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Failure;
    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("disk \"full\"")
        }
    }
    impl std::error::Error for Failure {}

    /// Spans and events with every kind of field, plain and awkward values, a field recorded
    /// after the span was made, and a raw identifier.
    fn log_everything() {
        let id = "abc-1".to_string();
        let span = tracing::info_span!(
            "request",
            service = "products",
            request_id = %id,
            late = tracing::field::Empty
        );
        span.record("late", 7u64);
        let _entered = span.enter();
        let inner = tracing::info_span!("inner", r#type = "x", quote = "say \"hi\"\n");
        let _inner = inner.enter();
        let error: &(dyn std::error::Error + 'static) = &Failure;
        tracing::info!(
            method = %"GET",
            route = "/products/{id}",
            path = %"/products/ü\u{1b}[31m",
            status = 404u16,
            elapsed_ms = 1.5f64,
            whole = 2.0f64,
            nan = f64::NAN,
            negative = -3i64,
            flag = true,
            debug = ?vec![1, 2],
            control = "tab\there",
            error,
            "request refused: {}",
            "\u{1b}[2Jgone"
        );
        tracing::warn!(same = 1, same = 2, "duplicate names");
    }

    fn capture<N>(fields: N, json: bool, ansi: bool) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        use tracing_subscriber::layer::SubscriberExt;
        let sink = Sink::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(sink.clone())
            .with_ansi(ansi)
            .without_time();
        let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = if json {
            Box::new(
                tracing_subscriber::registry()
                    .with(layer.json().flatten_event(true).fmt_fields(fields)),
            )
        } else {
            Box::new(tracing_subscriber::registry().with(layer.fmt_fields(fields)))
        };
        tracing::subscriber::with_default(subscriber, log_everything);
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn plain_lines_read_as_the_stock_formatter_writes_them() {
        let ours = capture(PlainFields, false, false);
        assert_eq!(ours, capture(DefaultFields::new(), false, false));
        assert!(ours.contains("request_id=abc-1"), "{ours}");
        assert!(ours.contains("service=\"products\""), "{ours}");
        assert!(ours.contains("status=404"), "{ours}");
        // Styled output for a terminal is the stock formatter's, untouched.
        assert_eq!(
            capture(PlainFields, false, true),
            capture(DefaultFields::new(), false, true)
        );
    }

    #[test]
    fn json_lines_read_as_the_stock_formatter_writes_them() {
        let ours = capture(JsonLineFields, true, false);
        assert_eq!(ours, capture(JsonFields::new(), true, false));
        for line in ours.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("one JSON object per line");
        }
        assert!(ours.contains(r#""request_id":"abc-1""#), "{ours}");
        assert!(ours.contains(r#""late":7"#), "{ours}");
    }
}
