//! Suspensions: report a loss or theft (operators), read one (operators,
//! supervisors, clerks), release one at the counter (clerks).

use std::sync::{Mutex, PoisonError};

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hotline_core::Decision;
use hotline_core::rules::{tokyo_date, tokyo_rfc3339};
use hotline_store::{
    IdempotencyClaim, NewSuspension, Previous, Release, ReleaseOutcome, SavedResponse, SuspendOutcome,
};
use serde_json::{Value, json};

use crate::AppState;
use crate::answer::JsonAnswer;
use crate::auth::{Authorized, Clerks, Operators, SuspensionReaders};
use crate::body::JsonBody;
use crate::path_params::PathParams;
use crate::problem::Problem;
use crate::requests::{ReleaseFields, parse_release, parse_report};
use crate::wire::{ReceiptStatus, SuspensionDetail, SuspensionReceipt};
use crate::write_retry::WriteDeadline;

const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The writes, as the write-outage metric names them.
const SUSPENSION: &str = "suspension";
const RELEASE: &str = "release";

/// The Idempotency-Key header: required on every write, 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let required = || {
        Problem::new(StatusCode::BAD_REQUEST, "idempotency_key_required", "An Idempotency-Key header is required")
            .detail("Send a unique Idempotency-Key (1 to 255 visible ASCII characters) and reuse it when retrying.")
    };
    Problem::refuse_repeated(headers, axum::http::HeaderName::from_static(IDEMPOTENCY_KEY))?;
    let value = headers.get(IDEMPOTENCY_KEY).ok_or_else(required)?;
    let key = value.to_str().map_err(|_| required())?.trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(required());
    }
    Ok(key.to_owned())
}

fn key_reused() -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "This Idempotency-Key was used for a different request",
    )
    .detail("Use a new Idempotency-Key for a new request.")
}

/// Claims a key for a request: its keyed digest tells a retry from a reuse,
/// without keeping the body (which holds the Individual Number).
fn claim_for(state: &AppState, token_id: &str, key: String, route: &str, body: &Value) -> IdempotencyClaim {
    // serde_json serialises objects with sorted keys, so equal JSON gives equal bytes.
    let canonical = format!("{route}\n{body}");
    IdempotencyClaim {
        token_id: token_id.to_owned(),
        key,
        request_fingerprint: state.pii_key.digest("request", canonical.as_bytes()),
    }
}

/// Sends a saved answer as it was saved, so a replay is byte-identical to the first answer.
fn respond(saved: SavedResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(saved.status_code).unwrap_or(StatusCode::OK);
    let mut response = (status, saved.body).into_response();
    let headers = response.headers_mut();
    headers.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    if replayed {
        headers.insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    response
}

fn saved(status: StatusCode, body: &impl serde::Serialize) -> anyhow::Result<SavedResponse> {
    Ok(SavedResponse { status_code: status.as_u16(), body: serde_json::to_string(body)? })
}

fn render_suspension(outcome: &SuspendOutcome) -> anyhow::Result<SavedResponse> {
    match outcome {
        SuspendOutcome::Created(view) => {
            saved(StatusCode::CREATED, &SuspensionReceipt::new(view, ReceiptStatus::Suspended))
        }
        SuspendOutcome::AlreadySuspended(view) => {
            saved(StatusCode::OK, &SuspensionReceipt::new(view, ReceiptStatus::AlreadySuspended))
        }
        other => anyhow::bail!("no answer is saved for {other:?}"),
    }
}

fn outside_hours(decision: &Decision) -> Problem {
    let mut problem = Problem::new(StatusCode::CONFLICT, "outside_reception_hours", "This report is not accepted at this hour")
        .detail("Between 20:00 and 08:29 (Tokyo time) only lost or stolen smartphones with the certificates installed are accepted. Ask the caller to call back at the time given.")
        .with("mode", json!(decision.mode.as_str()))
        .with("rules_version", json!(decision.rules_version));
    if let Some(next) = decision.next_accepted_at {
        problem = problem.with("next_accepted_at", json!(tokyo_rfc3339(next)));
    }
    problem
}

/// Report a lost or stolen item and suspend what it covers.
#[utoipa::path(
    post, path = "/v1/suspensions", tag = "suspensions",
    request_body(content = crate::requests::SuspensionRequest, content_type = "application/json"),
    params(("Idempotency-Key" = String, Header, description = "Unique per report; reuse it when retrying")),
    responses(
        (status = 201, description = "Suspended", body = SuspensionReceipt),
        (status = 200, description = "Everything was already suspended: the existing suspension", body = SuspensionReceipt),
        (status = 400, description = "malformed_body, idempotency_key_required", content_type = "application/problem+json"),
        (status = 404, description = "holder_not_found, card_not_found, device_not_found", content_type = "application/problem+json"),
        (status = 409, description = "outside_reception_hours (with next_accepted_at), nothing_to_suspend", content_type = "application/problem+json"),
        (status = 413, description = "body_too_large", content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", content_type = "application/problem+json"),
        (status = 422, description = "validation_failed (with errors), idempotency_key_reused", content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Authorized<Operators>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let now = state.clock.now();
    let report = parse_report(&body, tokyo_date(now)).map_err(|errors| {
        state.metrics.suspension("unknown", "unknown", "rejected");
        Problem::validation(errors)
    })?;
    let claim = claim_for(&state, &caller.token.id, key, "POST /v1/suspensions", &body);
    let mut deadline = WriteDeadline::start(&state.store, &state.metrics, state.timeouts.write_deadline);
    match deadline.run(SUSPENSION, || state.store.previous_answer(&claim)).await? {
        Previous::Replay(saved) => return Ok(respond(saved, true)),
        Previous::Reused => return Err(key_reused()),
        Previous::None => {}
    }
    let decision = state.rules.decide(now, report.item).context("no reception rules are in force")?;
    let (item, mode) = (report.item.as_str(), decision.mode.as_str());
    if !decision.accepted {
        state.metrics.suspension(item, mode, "refused_by_rule");
        return Err(outside_hours(&decision));
    }
    let new = NewSuspension {
        holder: report.individual_number.fingerprint(&state.pii_key),
        date_of_birth: report.date_of_birth,
        item: report.item,
        cause: report.cause,
        language: report.language,
        call_id: report.call_id,
        device_id: report.device_id,
        police_report_number: report.police_report_number,
        operator_token_id: caller.token.id.clone(),
        decided_at: now,
        rules_version: decision.rules_version.clone(),
        mode: decision.mode,
        idempotency: claim,
    };
    // The answer is rendered inside the transaction, and the saved bytes are what we send.
    let answer = Mutex::new(None);
    let outcome = deadline
        .run(SUSPENSION, || {
            state.store.suspend(&new, |o| {
                let saved = render_suspension(o)?;
                *answer.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved.clone());
                Ok(saved)
            })
        })
        .await?;
    let answer = answer.into_inner().unwrap_or_else(PoisonError::into_inner);
    answer_suspension(&state, outcome, answer, deadline.was_in_doubt(), (item, mode)).await
}

/// The metric label, and the answer, of a suspension's outcome. A replay
/// found after an attempt of this request was in doubt is that attempt's
/// commit: answered as the suspension it is, not as a replay.
async fn answer_suspension(
    state: &AppState,
    outcome: SuspendOutcome,
    answer: Option<SavedResponse>,
    earlier_in_doubt: bool,
    (item, mode): (&'static str, &'static str),
) -> Result<Response, Problem> {
    let label = match &outcome {
        SuspendOutcome::Created(_) => "accepted",
        SuspendOutcome::Replay(_) if earlier_in_doubt => "accepted",
        SuspendOutcome::AlreadySuspended(_) => "already_suspended",
        SuspendOutcome::Replay(_) => "replayed",
        _ => "rejected",
    };
    state.metrics.suspension(item, mode, label);
    match outcome {
        SuspendOutcome::Created(view) => {
            state.status.after_commit(&state.metrics).await;
            tracing::info!(suspension = %view.id, reference = %view.reference, item, mode, "suspended");
            Ok(respond(answer.context("a new suspension has a saved answer")?, false))
        }
        SuspendOutcome::AlreadySuspended(view) => {
            tracing::info!(suspension = %view.id, item, "already suspended");
            Ok(respond(answer.context("an already-suspended report has a saved answer")?, false))
        }
        SuspendOutcome::Replay(saved) if earlier_in_doubt => {
            state.status.after_commit(&state.metrics).await;
            tracing::info!(item, mode, "suspended: the commit of an attempt cut off in doubt, confirmed by its key");
            Ok(respond(saved, false))
        }
        SuspendOutcome::Replay(saved) => Ok(respond(saved, true)),
        SuspendOutcome::KeyReused => Err(key_reused()),
        SuspendOutcome::HolderNotFound => {
            Err(Problem::not_found("holder_not_found", "No holder matches this Individual Number and date of birth")
                .detail("Check both with the caller; for privacy the service does not say which one does not match."))
        }
        SuspendOutcome::CardNotFound => {
            Err(Problem::not_found("card_not_found", "The holder has no card that can be suspended"))
        }
        SuspendOutcome::DeviceNotFound => {
            Err(Problem::not_found("device_not_found", "The holder has no certificates on this device"))
        }
        SuspendOutcome::NothingToSuspend => Err(Problem::new(
            StatusCode::CONFLICT,
            "nothing_to_suspend",
            "Every certificate this report covers is revoked",
        )),
    }
}

/// Read a suspension.
#[utoipa::path(
    get, path = "/v1/suspensions/{id}", tag = "suspensions",
    params(("id" = String, Path, description = "The suspension's id, or its reference (`K7M3-9QX2`)")),
    responses(
        (status = 200, body = SuspensionDetail),
        (status = 404, description = "suspension_not_found", content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: the id is not UTF-8 text once percent-decoded", content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Authorized<SuspensionReaders>,
    PathParams(id): PathParams<String>,
) -> Result<JsonAnswer<SuspensionDetail>, Problem> {
    // A reference read over the phone (`k7m3-9qx2`) finds it too: clerks look suspensions up by it.
    let view = match reference_of(&id) {
        Some(reference) => state.store.suspension_by_reference(&reference).await?,
        None => state.store.suspension(&id).await?,
    };
    let view = view.ok_or_else(suspension_not_found)?;
    Ok(JsonAnswer(SuspensionDetail::from(&view)))
}

/// `id` as a reference (`XXXX-XXXX` in Crockford's alphabet, any case), if it is one.
fn reference_of(id: &str) -> Option<String> {
    let upper = id.trim().to_ascii_uppercase();
    let b = upper.as_bytes();
    let symbol = |c: &u8| c.is_ascii_digit() || (c.is_ascii_uppercase() && !b"ILOU".contains(c));
    (b.len() == 9 && b[4] == b'-' && b[..4].iter().all(symbol) && b[5..].iter().all(symbol)).then_some(upper)
}

fn suspension_not_found() -> Problem {
    Problem::not_found("suspension_not_found", "No suspension has this id")
}

/// Lift a suspension at the municipal counter.
#[utoipa::path(
    post, path = "/v1/suspensions/{id}/release", tag = "suspensions",
    params(("id" = String, Path), ("Idempotency-Key" = String, Header)),
    request_body(content = crate::requests::ReleaseRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Released: user identification certificates good again, signature certificates revoked", body = SuspensionDetail),
        (status = 404, description = "suspension_not_found", content_type = "application/problem+json"),
        (status = 409, description = "already_released", content_type = "application/problem+json"),
        (status = 422, description = "validation_failed (a bad body, or an id that is not UTF-8 text), idempotency_key_reused", content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn release(
    State(state): State<AppState>,
    caller: Authorized<Clerks>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let ReleaseFields { verified_with, documents_checked, note } = parse_release(&body).map_err(Problem::validation)?;
    let claim = claim_for(&state, &caller.token.id, key, &format!("POST /v1/suspensions/{id}/release"), &body);
    let release = Release {
        suspension_id: id,
        clerk_token_id: caller.token.id.clone(),
        verified_with,
        documents_checked,
        note,
        at: state.clock.now(),
        idempotency: claim,
    };
    let answer = Mutex::new(None);
    let mut deadline = WriteDeadline::start(&state.store, &state.metrics, state.timeouts.write_deadline);
    let outcome = deadline
        .run(RELEASE, || {
            state.store.release(&release, |view| {
                let saved = saved(StatusCode::OK, &SuspensionDetail::from(view))?;
                *answer.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved.clone());
                Ok(saved)
            })
        })
        .await?;
    let answer = answer.into_inner().unwrap_or_else(PoisonError::into_inner);
    let earlier_in_doubt = deadline.was_in_doubt();
    state.metrics.release(match &outcome {
        ReleaseOutcome::Released(_) => "released",
        ReleaseOutcome::Replay(_) if earlier_in_doubt => "released",
        ReleaseOutcome::Replay(_) => "replayed",
        ReleaseOutcome::AlreadyReleased(_) => "already_released",
        ReleaseOutcome::KeyReused | ReleaseOutcome::NotFound => "rejected",
    });
    match outcome {
        ReleaseOutcome::Released(view) => {
            state.status.after_commit(&state.metrics).await;
            tracing::info!(suspension = %view.id, "released");
            Ok(respond(answer.context("a release has a saved answer")?, false))
        }
        ReleaseOutcome::Replay(saved) if earlier_in_doubt => {
            state.status.after_commit(&state.metrics).await;
            tracing::info!("released: the commit of an attempt cut off in doubt, confirmed by its key");
            Ok(respond(saved, false))
        }
        ReleaseOutcome::Replay(saved) => Ok(respond(saved, true)),
        ReleaseOutcome::KeyReused => Err(key_reused()),
        ReleaseOutcome::NotFound => Err(suspension_not_found()),
        ReleaseOutcome::AlreadyReleased(view) => {
            Err(Problem::new(StatusCode::CONFLICT, "already_released", "This suspension was already released")
                .with("released_at", json!(view.released_at.map(tokyo_rfc3339))))
        }
    }
}
