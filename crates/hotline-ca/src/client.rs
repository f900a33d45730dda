//! The HTTP client the worker uses to reach the CA. Every call has a timeout,
//! and every failure is sorted into one of two kinds: the CA refused the
//! request (retrying will not help) or the CA could not be reached or did not
//! answer completely (retry later; the event id makes a retry harmless).

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::protocol::{CaProblem, ResponderCertificate, ResponderRequest, RevocationAnswer, RevocationRequest};

/// Why a call to the CA did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The CA understood the request and said no (4xx other than 408/429).
    #[error("the CA refused the request ({status} {code}): {detail}")]
    Refused { status: u16, code: String, detail: String },
    /// No complete answer: connection refused or dropped, timeout, 5xx.
    #[error("the CA is unavailable: {0}")]
    Unavailable(String),
}

impl SendError {
    /// A refusal is final: sending the same request again gets the same answer.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Refused { .. })
    }
}

/// A client for one CA base URL; cheap to clone.
#[derive(Debug, Clone)]
pub struct CaClient {
    base: String,
    http: reqwest::Client,
}

impl CaClient {
    /// `base_url` like `http://127.0.0.1:9000`; `timeout` bounds each whole call.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, SendError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| SendError::Unavailable(format!("could not build the HTTP client: {e}")))?;
        Ok(Self { base: base_url.trim_end_matches('/').to_owned(), http })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends one revocation event, passing the current trace on to the CA.
    #[tracing::instrument(
        name = "POST /v1/revocations",
        skip_all,
        fields(otel.kind = "client", otel.status_code, peer.service = "ca", event_id = %request.event_id, error.type)
    )]
    pub async fn send(&self, request: &RevocationRequest) -> Result<RevocationAnswer, SendError> {
        let response = self.http.post(self.url("/v1/revocations")).headers(trace_headers()).json(request).send().await;
        json_answer(response).await.inspect_err(record_failure)
    }

    /// The issuer's current CRL, DER encoded.
    #[tracing::instrument(
        name = "GET /v1/issuers/{issuer}/crl",
        skip_all,
        fields(otel.kind = "client", otel.status_code, peer.service = "ca", issuer, error.type)
    )]
    pub async fn crl(&self, issuer: &str) -> Result<Vec<u8>, SendError> {
        let response =
            self.http.get(self.url(&format!("/v1/issuers/{issuer}/crl"))).headers(trace_headers()).send().await;
        let response = successful(response).await.inspect_err(record_failure)?;
        Ok(response.bytes().await.map_err(incomplete).inspect_err(record_failure)?.to_vec())
    }

    /// The issuer's CA certificate, PEM encoded.
    pub async fn issuer_pem(&self, issuer: &str) -> Result<String, SendError> {
        let response = self.http.get(self.url(&format!("/v1/issuers/{issuer}/ca.pem"))).send().await;
        successful(response).await?.text().await.map_err(incomplete)
    }

    /// A delegated OCSP responder certificate (PEM) for `public_key` (a DER
    /// SubjectPublicKeyInfo), issued by `issuer`. ca-sim offers this; for a
    /// CA that does not, the responder certificates are configured as files.
    pub async fn responder_certificate(&self, issuer: &str, public_key: &[u8]) -> Result<String, SendError> {
        let request = ResponderRequest::new(public_key, None);
        let url = self.url(&format!("/v1/issuers/{issuer}/ocsp-responder"));
        let answer: ResponderCertificate = json_answer(self.http.post(url).json(&request).send().await).await?;
        Ok(answer.certificate_pem)
    }

    /// Whether the CA answers its health check.
    pub async fn health(&self) -> Result<(), SendError> {
        successful(self.http.get(self.url("/health")).send().await).await.map(drop)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The current trace, as headers for the CA.
fn trace_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    hotline_trace::inject_current(&mut headers);
    headers
}

/// Marks the current call's span failed, refused or unavailable.
fn record_failure(error: &SendError) {
    let span = tracing::Span::current();
    span.record("otel.status_code", "ERROR");
    span.record("error.type", if error.is_permanent() { "refused" } else { "unavailable" });
}

async fn json_answer<T: DeserializeOwned>(response: Result<reqwest::Response, reqwest::Error>) -> Result<T, SendError> {
    let response = successful(response).await?;
    // A body cut off half way (the connection dropped) is an unavailable CA,
    // not a refusal: the change may or may not have been applied.
    let bytes = response.bytes().await.map_err(incomplete)?;
    serde_json::from_slice(&bytes).map_err(|e| SendError::Unavailable(format!("unreadable answer: {e}")))
}

async fn successful(response: Result<reqwest::Response, reqwest::Error>) -> Result<reqwest::Response, SendError> {
    let response = response.map_err(incomplete)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retryable =
        status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS;
    let body = response.bytes().await.unwrap_or_default();
    let problem: Option<CaProblem> = serde_json::from_slice(&body).ok();
    let (code, detail) = match problem {
        Some(p) => (p.code, p.detail),
        None => ("unknown".to_owned(), String::from_utf8_lossy(&body).chars().take(200).collect()),
    };
    if retryable {
        Err(SendError::Unavailable(format!("{} {code}: {detail}", status.as_u16())))
    } else {
        Err(SendError::Refused { status: status.as_u16(), code, detail })
    }
}

fn incomplete(e: reqwest::Error) -> SendError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "no complete answer"
    };
    SendError::Unavailable(format!("{kind}: {e}"))
}
