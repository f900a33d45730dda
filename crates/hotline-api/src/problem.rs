//! Errors as `application/problem+json` (RFC 9457), each with a stable `code`
//! that clients can switch on. Internal errors are logged whole and answered
//! without detail, so nothing internal (or personal) leaks into a response.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// One problem answer.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: Option<String>,
    extra: Map<String, Value>,
}

/// A field that failed validation, named by its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str) -> Self {
        Self { status, code, title, detail: None, extra: Map::new() }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "A valid bearer token is required")
    }

    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "This token's role may not do this")
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "The request has invalid fields")
            .with("errors", json!(errors))
    }

    pub fn not_found(code: &'static str, title: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, title)
    }

    pub fn unavailable(code: &'static str, title: &'static str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, title)
    }
}

impl From<anyhow::Error> for Problem {
    fn from(error: anyhow::Error) -> Self {
        tracing::error!(error = format!("{error:#}"), "unexpected error");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Something went wrong on our side")
            .detail("The error was logged; retrying with the same Idempotency-Key is safe.")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("urn:hotline:problem:{}", self.code)));
        body.insert("title".into(), json!(self.title));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("code".into(), json!(self.code));
        if let Some(detail) = self.detail {
            body.insert("detail".into(), json!(detail));
        }
        body.extend(self.extra);
        let mut response = (self.status, Value::Object(body).to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
