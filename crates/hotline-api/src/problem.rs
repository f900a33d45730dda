//! Errors as `application/problem+json` (RFC 9457), each with a stable `code`
//! that clients can switch on. Internal errors are logged whole and answered
//! without detail, so nothing internal (or personal) leaks into a response.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
    outage: Option<Dependency>,
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
        Self { status, code, title, detail: None, extra: Map::new(), outage: None }
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

    /// An outage of `dependency` (the database, the cache): 503 with
    /// `Retry-After`, marked so the request's metrics count it apart from
    /// unexpected errors.
    pub fn outage(dependency: Dependency, code: &'static str, title: &'static str) -> Self {
        let mut problem = Self::unavailable(code, title);
        problem.outage = Some(dependency);
        problem
    }

    /// 400 if a header the API reads once was sent more than once: the
    /// client is confused, and which one it meant cannot be known.
    pub fn refuse_repeated(headers: &HeaderMap, name: header::HeaderName) -> Result<(), Problem> {
        if headers.get_all(&name).iter().nth(1).is_none() {
            return Ok(());
        }
        Err(Self::new(StatusCode::BAD_REQUEST, "header_repeated", "A header was sent more than once")
            .detail(format!("Send {name} once."))
            .with("header", json!(name.as_str())))
    }
}

/// What an outage was an outage of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Database,
    /// The database and the revocation cache both (no status source could answer).
    DatabaseAndCache,
}

impl Dependency {
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Database => "database",
            Dependency::DatabaseAndCache => "database_and_cache",
        }
    }
}

/// How long a client should wait before retrying after an outage.
const RETRY_AFTER_SECONDS: &str = "2";

impl Problem {
    /// 503 for an outage of the database: nothing was changed or, for a
    /// commit whose outcome was not seen, the same Idempotency-Key will tell
    /// (never "done" or "failed" while it is in doubt). Retry shortly.
    fn database_outage(outage: hotline_store::Outage, in_doubt: bool, report: &str) -> Self {
        tracing::warn!(error = report, outage = outage.as_str(), in_doubt, "the database could not be reached");
        let detail = if in_doubt {
            "Whether this was recorded is not known yet. Retry shortly with the same Idempotency-Key: the answer will say."
        } else {
            "Nothing was changed. Retry shortly with the same Idempotency-Key."
        };
        Problem::outage(Dependency::Database, "database_unavailable", "The database cannot be reached").detail(detail)
    }

    fn internal(report: &str) -> Self {
        tracing::error!(error = report, "unexpected error");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Something went wrong on our side")
            .detail("The error was logged; retrying with the same Idempotency-Key is safe.")
    }
}

impl From<hotline_store::Error> for Problem {
    fn from(error: hotline_store::Error) -> Self {
        let in_doubt = matches!(error, hotline_store::Error::InDoubt { .. });
        match error.outage() {
            Some(outage) => Problem::database_outage(outage, in_doubt, &error.report()),
            None => Problem::internal(&error.report()),
        }
    }
}

impl From<anyhow::Error> for Problem {
    fn from(error: anyhow::Error) -> Self {
        match hotline_store::Error::outage_in(&error) {
            Some(outage) => Problem::database_outage(outage, false, &format!("{error:#}")),
            None => Problem::internal(&format!("{error:#}")),
        }
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
        if let Some(dependency) = self.outage {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            response.extensions_mut().insert(dependency);
        }
        response
    }
}
