//! Certificate status for validators, read from the store (CRL semantics: a
//! serial the registry does not list is good; an unknown issuer is an error).

use axum::Json;
use axum::extract::{Path, State};
use hotline_core::{IssuerId, Serial};
use hotline_store::StatusLookup;

use crate::AppState;
use crate::auth::{Authorized, Validators};
use crate::problem::{FieldError, Problem};
use crate::wire::CertificateStatusOut;

fn issuer_not_found() -> Problem {
    Problem::not_found("issuer_not_found", "No such certificate issuer")
}

/// Is this certificate good, suspended or revoked?
#[utoipa::path(
    get, path = "/v1/status/{issuer}/{serial}", tag = "status",
    params(("issuer" = String, Path, example = "jpki-auth"), ("serial" = String, Path, description = "hex, 1 to 20 bytes")),
    responses(
        (status = 200, body = CertificateStatusOut),
        (status = 404, description = "issuer_not_found", content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: the serial is not 1 to 20 bytes of hex", content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Authorized<Validators>,
    Path((issuer, serial)): Path<(String, String)>,
) -> Result<Json<CertificateStatusOut>, Problem> {
    let issuer = IssuerId::parse(&issuer).map_err(|_| issuer_not_found())?;
    let serial =
        Serial::parse(&serial).map_err(|e| Problem::validation(vec![FieldError::new("serial", e.to_string())]))?;
    let answer = match state.store.certificate_status(&issuer, &serial).await? {
        StatusLookup::UnknownIssuer => return Err(issuer_not_found()),
        StatusLookup::NotListed => CertificateStatusOut {
            issuer: issuer.to_string(),
            serial: serial.to_string(),
            status: "good".into(),
            reason: None,
            since: None,
        },
        StatusLookup::Listed(record) => CertificateStatusOut {
            issuer: issuer.to_string(),
            serial: serial.to_string(),
            status: record.status.as_str().into(),
            reason: record.reason,
            since: Some(hotline_core::rules::tokyo_rfc3339(record.since)),
        },
    };
    Ok(Json(answer))
}
