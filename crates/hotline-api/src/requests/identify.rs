//! The identification request (`POST /v1/holders/identify`): an operator
//! looks a caller up by Individual Number and date of birth, for a call.
//! Its schema and its parser; the number is checked (check digit included)
//! here, once, and only its keyed fingerprint goes further.

use chrono::NaiveDate;
use hotline_core::{CallId, IndividualNumber};
use serde_json::Value;
use utoipa::ToSchema;

use super::suspension::{HolderIn, read_holder};
use crate::fields::{Fields, Reading};
use crate::problem::FieldError;

/// Who is calling. Unknown fields are refused.
#[allow(dead_code)] // Describes the body for the OpenAPI document; `parse_identify` reads it.
#[derive(ToSchema)]
#[schema(example = json!({
    "call_id": "call-2026-11-22-0042",
    "holder": {"individual_number": "123456789018", "date_of_birth": "1980-04-01"}
}))]
pub struct IdentifyRequest {
    /// The call this look-up is for: recorded in the audit log.
    #[schema(example = "call-2026-11-22-0042")]
    pub call_id: String,
    pub holder: HolderIn,
}

/// A well-formed identification.
#[derive(Debug)]
pub struct Identify {
    pub call_id: CallId,
    pub individual_number: IndividualNumber,
    pub date_of_birth: NaiveDate,
}

/// Parses an identification; `today` (Tokyo) bounds the date of birth.
pub fn parse_identify(body: &Value, today: NaiveDate) -> Result<Identify, Vec<FieldError>> {
    let mut reading = Reading::default();
    match read_identify(body, today, &mut reading) {
        Some(r) if reading.is_ok() => Ok(r),
        _ => Err(reading.errors),
    }
}

pub(crate) fn read_identify(body: &Value, today: NaiveDate, reading: &mut Reading) -> Option<Identify> {
    Fields::of(body, "", reading).and_then(|mut f| {
        let call_id = f.required("call_id", CallId::parse);
        let holder = read_holder(&mut f, today);
        f.refuse_unknown();
        let (individual_number, date_of_birth) = holder?;
        Some(Identify { call_id: call_id?, individual_number, date_of_birth })
    })
}
