//! Certificate status for validators: single and batch. Answers come from the
//! revocation cache while it is complete and fresh, else from the store, else
//! 503 `status_unavailable`; never "good" by default. CRL semantics: a serial
//! the registry does not list is good; an unknown issuer is an error.

use axum::extract::State;
use axum::http::StatusCode;
use hotline_core::rules::tokyo_rfc3339;
use hotline_core::{IssuerId, Serial, StatusRecord};

use crate::AppState;
use crate::answer::{JsonAnswer, JsonText};
use crate::auth::{Authorized, Validators};
use crate::body::JsonBody;
use crate::path_params::PathParams;
use crate::problem::{Dependency, FieldError, Problem};
use crate::requests::{BatchRefused, MAX_BATCH, parse_batch};
use crate::status_service::Answers;
use crate::wire::{BatchStatusAnswer, CertificateStatusOut, StatusAnswer};

fn issuer_not_found() -> Problem {
    Problem::not_found("issuer_not_found", "No such certificate issuer")
}

fn unavailable() -> Problem {
    Problem::outage(Dependency::DatabaseAndCache, "status_unavailable", "Certificate status cannot be answered right now")
        .detail("Neither the revocation cache nor the registry could answer. Retry shortly; do not treat the certificate as good.")
}

fn out(issuer: &IssuerId, serial: &Serial, record: Option<&StatusRecord>) -> CertificateStatusOut {
    CertificateStatusOut::new(issuer.as_str(), serial.as_str(), record)
}

async fn answer(state: &AppState, keys: &[(IssuerId, Serial)]) -> Result<Answers, Problem> {
    state.status.answer(keys, &state.metrics).await.map_err(|_| unavailable())
}

/// Is this certificate good, suspended or revoked?
#[utoipa::path(
    get, path = "/v1/status/{issuer}/{serial}", tag = "status",
    params(("issuer" = String, Path, example = "jpki-auth"), ("serial" = String, Path, description = "hex, 1 to 20 bytes")),
    responses(
        (status = 200, body = StatusAnswer),
        (status = 404, description = "issuer_not_found", content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: the serial is not 1 to 20 bytes of hex", content_type = "application/problem+json"),
        (status = 503, description = "status_unavailable: no source could answer; never treat as good", content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Authorized<Validators>,
    PathParams((issuer, serial)): PathParams<(String, String)>,
) -> Result<JsonText, Problem> {
    single(&state, &issuer, &serial).await
}

/// The route of a single status query; [`crate::dispatch`] serves its plain
/// form without the router.
pub const SINGLE: &str = "/v1/status/{issuer}/{serial}";

/// A single status query, once the caller is known to be a validator and the
/// path parameters are read.
pub async fn single(state: &AppState, issuer: &str, serial: &str) -> Result<JsonText, Problem> {
    let issuer = IssuerId::parse(issuer).ok().filter(|i| state.status.knows_issuer(i)).ok_or_else(issuer_not_found)?;
    let serial =
        Serial::parse(serial).map_err(|e| Problem::validation(vec![FieldError::new("serial", e.to_string())]))?;
    let keys = [(issuer, serial)];
    let mut answers = answer(state, &keys).await?;
    let [(issuer, serial)] = keys;
    let record = answers.statuses.pop().flatten();
    let answer = StatusAnswer::new(out(&issuer, &serial, record.as_ref()), tokyo_rfc3339(answers.as_of));
    Ok(JsonText(answer.to_json().into_bytes()))
}

/// The status of up to 1000 certificates at once, all as of one instant.
#[utoipa::path(
    post, path = "/v1/status", tag = "status",
    request_body(content = crate::requests::BatchStatusQuery, content_type = "application/json"),
    responses(
        (status = 200, body = BatchStatusAnswer),
        (status = 422, description = "validation_failed (unknown issuer, bad serial, per item), batch_too_large", content_type = "application/problem+json"),
        (status = 503, description = "status_unavailable", content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn batch(
    State(state): State<AppState>,
    _caller: Authorized<Validators>,
    JsonBody(body): JsonBody,
) -> Result<JsonAnswer<BatchStatusAnswer>, Problem> {
    let keys = parse_batch(&body, |issuer| state.status.knows_issuer(issuer)).map_err(|refused| match refused {
        BatchRefused::Invalid(errors) => Problem::validation(errors),
        BatchRefused::TooLarge(asked) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "batch_too_large", "Too many certificates in one query")
                .detail(format!("Ask about at most {MAX_BATCH} certificates per query; this one asked about {asked}."))
        }
    })?;
    let answers = answer(&state, &keys).await?;
    let results = keys.iter().zip(&answers.statuses).map(|((i, s), record)| out(i, s, record.as_ref())).collect();
    Ok(JsonAnswer(BatchStatusAnswer { as_of: tokyo_rfc3339(answers.as_of), results }))
}
