//! JSON string literals written by hand, for the two texts made on every
//! status query: the answer and the request span's log fields.
//!
//! serde_json escapes a string one byte at a time through a table; the
//! strings here (issuer names, hex serials, timestamps, route names, request
//! ids) almost never hold a byte that needs escaping. So the whole string is
//! checked first, in a form the compiler turns into wide comparisons, and
//! copied in one piece; only a string that needs it is escaped byte by byte.

use std::fmt::Write as _;

/// Appends `value` as a JSON string: quotes, backslashes and control
/// characters escaped, everything else as it is (JSON text is UTF-8).
pub fn push_json_string(out: &mut String, value: &str) {
    out.reserve(value.len() + 2);
    out.push('"');
    if needs_escape(value) {
        push_escaped(out, value);
    } else {
        out.push_str(value);
    }
    out.push('"');
}

/// Whether any byte of `value` must be escaped. Every byte is looked at,
/// without stopping at the first: a loop with no early exit is one the
/// compiler can run many bytes at a time.
fn needs_escape(value: &str) -> bool {
    value.bytes().fold(false, |any, b| any | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

fn push_escaped(out: &mut String, value: &str) {
    let mut plain_from = 0;
    for (i, byte) in value.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&value[plain_from..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escaped);
        }
        plain_from = i + 1;
    }
    out.push_str(&value[plain_from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(value: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, value);
        out
    }

    #[test]
    fn plain_text_is_copied_as_it_is() {
        assert_eq!(literal("jpki-auth"), r#""jpki-auth""#);
        assert_eq!(literal(""), r#""""#);
        assert_eq!(literal("東京 ✓"), "\"東京 ✓\"");
    }

    #[test]
    fn every_byte_that_json_forbids_is_escaped_wherever_it_is() {
        // Long enough that the check runs over several wide chunks and a tail.
        let long = "0123456789abcdef".repeat(5);
        for (raw, escaped) in [
            ("\"", "\\\""),
            ("\\", "\\\\"),
            ("\n", "\\n"),
            ("\r", "\\r"),
            ("\t", "\\t"),
            ("\u{1}", "\\u0001"),
            ("\u{1f}", "\\u001f"),
        ] {
            for at in [0, 1, 31, 32, 79, 80] {
                let value = format!("{}{raw}{}", &long[..at], &long[at..]);
                let out = literal(&value);
                assert_eq!(out, format!("\"{}{escaped}{}\"", &long[..at], &long[at..]), "{raw:?} at {at}");
                let parsed: String = serde_json::from_str(&out).unwrap();
                assert_eq!(parsed, value, "{raw:?} at {at} reads back as written");
            }
        }
    }

    #[test]
    fn bytes_just_outside_the_forbidden_ones_are_left_alone() {
        assert_eq!(literal(" !#[]~\u{7f}"), "\" !#[]~\u{7f}\"");
    }
}
