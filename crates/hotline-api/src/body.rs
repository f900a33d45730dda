//! Reading a JSON body: 400 if `Content-Type` is sent twice, 415 unless it is
//! declared JSON, 413 past the size limit, 408 if the client does not finish
//! sending it in time, 400 unless it parses; all as problem+json, never
//! axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde_json::Value;

use crate::AppState;
use crate::problem::Problem;

/// The largest body any route accepts.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A parsed JSON body.
pub struct JsonBody(pub Value);

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        Problem::refuse_repeated(req.headers(), CONTENT_TYPE)?;
        let declared_json = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(is_json);
        if !declared_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "The body must be JSON",
            )
            .detail("Send Content-Type: application/json."));
        }
        let body_read = state.timeouts.body_read;
        let Ok(read) = tokio::time::timeout(body_read, Bytes::from_request(req, state)).await else {
            return Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "The request body did not arrive in time",
            )
            .detail(format!(
                "Send the whole body within {} ms; the request was not processed.",
                body_read.as_millis()
            )));
        };
        let bytes = read.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "The body is too large")
                    .detail(format!("Bodies are limited to {MAX_BODY_BYTES} bytes (128 KiB for a batch status query)."))
            } else {
                Problem::new(StatusCode::BAD_REQUEST, "malformed_body", "The body could not be read")
            }
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            // serde_json's message names the line and column, never the content.
            Problem::new(StatusCode::BAD_REQUEST, "malformed_body", "The body is not valid JSON").detail(format!(
                "JSON syntax error at line {}, column {}.",
                e.line(),
                e.column()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_media_types() {
        assert!(super::is_json("application/json"));
        assert!(super::is_json("application/json; charset=utf-8"));
        assert!(super::is_json("application/merge-patch+json"));
        assert!(!super::is_json("text/plain"));
        assert!(!super::is_json("application/jsonx"));
    }
}
