//! Identifying a caller (operators, supervisors): found or not, and what of
//! theirs can be suspended. The look-up is audited in the store; the number
//! is parsed here, fingerprinted, and goes no further.

use axum::extract::State;
use hotline_core::rules::tokyo_date;
use hotline_store::Identification;

use crate::AppState;
use crate::answer::JsonAnswer;
use crate::auth::{Authorized, Operators};
use crate::body::JsonBody;
use crate::problem::Problem;
use crate::requests::parse_identify;
use crate::wire::IdentifyAnswer;

/// Identify a caller by Individual Number and date of birth.
#[utoipa::path(
    post, path = "/v1/holders/identify", tag = "holders",
    request_body(content = crate::requests::IdentifyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Whether the holder was found, and their card and smartphones", body = IdentifyAnswer),
        (status = 400, description = "malformed_body", content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", content_type = "application/problem+json"),
        (status = 422, description = "validation_failed (with errors)", content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn identify(
    State(state): State<AppState>,
    caller: Authorized<Operators>,
    JsonBody(body): JsonBody,
) -> Result<JsonAnswer<IdentifyAnswer>, Problem> {
    let now = state.clock.now();
    let request = parse_identify(&body, tokyo_date(now)).map_err(Problem::validation)?;
    let lookup = Identification {
        holder: request.individual_number.fingerprint(&state.pii_key),
        date_of_birth: request.date_of_birth,
        call_id: request.call_id,
        operator_token_id: caller.token.id.clone(),
        at: now,
    };
    let found = state.store.identify_holder(&lookup).await?;
    tracing::info!(found = found.is_some(), "holder identified");
    Ok(JsonAnswer(IdentifyAnswer::new(found.as_ref())))
}
