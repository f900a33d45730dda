//! The reception rules in force now, so an operator's screen can say what
//! the line accepts and when that changes.

use anyhow::Context;
use axum::extract::State;
use hotline_core::rules::tokyo_rfc3339;

use crate::AppState;
use crate::answer::JsonAnswer;
use crate::auth::{AnyRole, Authorized};
use crate::problem::Problem;
use crate::wire::RulesNow;

/// What the line accepts now.
#[utoipa::path(get, path = "/v1/rules/now", tag = "rules", responses((status = 200, body = RulesNow)), security(("bearer" = [])))]
pub async fn now(State(state): State<AppState>, _caller: Authorized<AnyRole>) -> Result<JsonAnswer<RulesNow>, Problem> {
    let now = state.clock.now();
    let snapshot = state.rules.snapshot(now).context("no reception rules are in force")?;
    Ok(JsonAnswer(RulesNow {
        now: tokyo_rfc3339(now),
        mode: snapshot.mode,
        accepted_items: snapshot.accepted_items,
        next_change_at: snapshot.next_mode_change.map(tokyo_rfc3339),
        rules_version: snapshot.rules_version,
        staffed_languages: snapshot.staffed_languages,
    }))
}
