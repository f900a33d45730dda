//! Span fields for JSON log lines, written straight out as a JSON object.
//!
//! The JSON log layer formats a span's fields when the span is created and
//! keeps the text until a log line inside the span needs it. Every request
//! has a span (its request id is on every line it causes), and validators'
//! status queries, most of the traffic, rarely log anything. The stock
//! formatter builds a map of `serde_json::Value`s and serializes it for every
//! span: about a sixth of a status query's instructions (docs/BENCHMARKS.md).
//! This one appends `"name":value` pairs to the text, with the same names and
//! values as the stock formatter, so log lines read the same.

use std::fmt::{self, Write as _};

use hotline_api::json_text::push_json_string;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// Formats span fields as one JSON object, for `Format<Json>`.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonSpanFields;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut object = JsonObject::open(String::with_capacity(160));
        fields.record(&mut object);
        writer.write_str(&object.close())
    }

    /// Fields recorded later go into the same object: the closing brace is
    /// taken off and put back after them. A name recorded twice appears twice;
    /// the log line keeps the later value, as with the stock formatter.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut text = std::mem::take(&mut current.fields);
        if text.ends_with('}') {
            text.pop();
        } else {
            text.clear();
            text.push('{');
        }
        let mut object = JsonObject { text };
        fields.record(&mut object);
        current.fields = object.close();
        Ok(())
    }
}

/// A JSON object being written: `{` and the pairs so far, not yet closed.
struct JsonObject {
    text: String,
}

impl JsonObject {
    fn open(mut text: String) -> Self {
        text.push('{');
        JsonObject { text }
    }

    fn close(mut self) -> String {
        self.text.push('}');
        self.text
    }

    /// Writes `"name":` (after a comma unless first), or returns false for a
    /// field the stock formatter leaves out.
    fn name(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name.starts_with("log.") {
            return false;
        }
        if !self.text.ends_with('{') {
            self.text.push(',');
        }
        push_json_string(&mut self.text, name.strip_prefix("r#").unwrap_or(name));
        self.text.push(':');
        true
    }
}

impl Visit for JsonObject {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.name(field) {
            // JSON has no NaN or infinity; serde_json writes null for them too.
            if value.is_finite() {
                let _ = write!(self.text, "{value}");
            } else {
                self.text.push_str("null");
            }
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.name(field) {
            let _ = write!(self.text, "{value}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.name(field) {
            let _ = write!(self.text, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.name(field) {
            self.text.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.name(field) {
            push_json_string(&mut self.text, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.name(field) {
            push_json_string(&mut self.text, &format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    /// The one line logged by `log`, with a subscriber set up as the binary's.
    fn logged(log: impl FnOnce()) -> Value {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(JsonSpanFields)
            .with_writer(lines.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let mut parsed: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(parsed.len(), 1, "{text}");
        parsed.remove(0)
    }

    #[test]
    fn a_log_line_carries_its_spans_fields_of_every_kind() {
        let line = logged(|| {
            let span = tracing::info_span!(
                "request",
                request_id = "r-1",
                http.route = "/v1/status/{issuer}/{serial}",
                count = 3u64,
                delta = -2i64,
                ratio = 0.5,
                ok = true,
                nan = f64::NAN,
                peer = ?std::net::Ipv4Addr::LOCALHOST,
            );
            span.in_scope(|| tracing::info!("inside"));
        });
        assert_eq!(
            line["span"],
            json!({"request_id": "r-1", "http.route": "/v1/status/{issuer}/{serial}", "count": 3, "delta": -2,
                "ratio": 0.5, "ok": true, "nan": null, "peer": "127.0.0.1", "name": "request"})
        );
        assert_eq!(line["message"], "inside");
    }

    #[test]
    fn text_that_needs_escaping_survives() {
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \0 kana カード";
        let line = logged(|| tracing::info_span!("s", nasty).in_scope(|| tracing::info!("x")));
        assert_eq!(line["span"]["nasty"], nasty);
    }

    #[test]
    fn fields_recorded_later_join_the_object_and_the_later_value_wins() {
        let line = logged(|| {
            let span = tracing::info_span!("s", first = 1u64, status = tracing::field::Empty, again = "old");
            span.record("status", 200u64);
            span.record("again", "new");
            span.in_scope(|| tracing::info!("x"));
        });
        assert_eq!(line["span"], json!({"first": 1, "status": 200, "again": "new", "name": "s"}));
    }

    #[test]
    fn a_span_whose_fields_all_come_later_is_still_an_object() {
        let line = logged(|| {
            let span = tracing::info_span!("s", status = tracing::field::Empty);
            span.record("status", 503u64);
            span.in_scope(|| tracing::info!("x"));
        });
        assert_eq!(line["span"], json!({"status": 503, "name": "s"}));
    }
}
