//! A JSON answer: the value serialized straight into the buffer that becomes
//! the body, sent as `application/json`.
//!
//! Instead of axum's `Json`, which writes through a `BytesMut` one fragment at
//! a time and, for a status answer, outgrows its first 128 bytes: validators'
//! status answers are most of the traffic, and the serializing was about a
//! tenth of each one's instructions (docs/BENCHMARKS.md). A value that cannot
//! be serialized is a bug, answered as a problem like any other.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::problem::Problem;

/// Room for a single status answer (about 200 bytes) without growing.
const FIRST_CAPACITY: usize = 256;

/// A value answered as `application/json`.
#[derive(Debug)]
pub struct JsonAnswer<T>(pub T);

impl<T: Serialize> IntoResponse for JsonAnswer<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(FIRST_CAPACITY);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => JsonText(body).into_response(),
            Err(e) => Problem::from(anyhow::Error::new(e).context("could not serialize an answer")).into_response(),
        }
    }
}

/// JSON text already written, answered as `application/json`.
#[derive(Debug)]
pub struct JsonText(pub Vec<u8>);

impl IntoResponse for JsonText {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use serde::ser::Error as _;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_value_is_answered_as_json() {
        let answer = JsonAnswer(json!({"status": "suspended", "since": "2026-11-23T03:00:00+09:00"})).into_response();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        let body = to_bytes(answer.into_body(), usize::MAX).await.unwrap();
        assert_eq!(&body[..], br#"{"since":"2026-11-23T03:00:00+09:00","status":"suspended"}"#);
    }

    struct Unserializable;

    impl Serialize for Unserializable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(S::Error::custom("no"))
        }
    }

    #[tokio::test]
    async fn a_value_that_cannot_be_serialized_is_an_internal_problem() {
        let answer = JsonAnswer(Unserializable).into_response();
        assert_eq!(answer.status(), 500);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body: serde_json::Value =
            serde_json::from_slice(&to_bytes(answer.into_body(), usize::MAX).await.unwrap()).unwrap();
        assert_eq!(body["code"], "internal_error");
    }
}
