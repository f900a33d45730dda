//! The release request (`POST /v1/suspensions/{id}/release`): its schema and
//! its parser. A clerk names the identity document they checked.

use hotline_core::IdentityDocument;
use serde_json::Value;
use utoipa::ToSchema;

use crate::fields::{Fields, Reading, short_text};
use crate::problem::FieldError;

/// A release at the counter. Unknown fields are refused.
#[allow(dead_code)] // Describes the body for the OpenAPI document; `parse_release` reads it.
#[derive(ToSchema)]
#[schema(example = json!({
    "documents_checked": ["residence_card"], "verified_with": "residence card, seen at the counter",
    "note": "card found by the holder"
}))]
pub struct ReleaseRequest {
    /// The identity documents the clerk checked, 1 to 6 distinct words.
    /// At least one of `documents_checked` and `verified_with` is required.
    pub documents_checked: Option<Vec<IdentityDocument>>,
    /// The identity document the clerk checked, in their words (1 to 200 characters).
    #[schema(example = "residence card")]
    pub verified_with: Option<String>,
    /// Anything the clerk wants on record (1 to 1000 characters).
    pub note: Option<String>,
}

/// A well-formed release.
#[derive(Debug)]
pub struct ReleaseFields {
    pub verified_with: Option<String>,
    pub documents_checked: Vec<IdentityDocument>,
    pub note: Option<String>,
}

pub fn parse_release(body: &Value) -> Result<ReleaseFields, Vec<FieldError>> {
    let mut reading = Reading::default();
    match read_release(body, &mut reading) {
        Some(r) if reading.is_ok() => Ok(r),
        _ => Err(reading.errors),
    }
}

pub(crate) fn read_release(body: &Value, reading: &mut Reading) -> Option<ReleaseFields> {
    Fields::of(body, "", reading).and_then(|mut f| {
        let documents_checked = f.optional_words::<IdentityDocument>("documents_checked", IdentityDocument::ALL.len());
        let verified_with = f.optional("verified_with", short_text(200));
        let note = f.optional("note", short_text(1000));
        if let (Some(None), Some(None)) = (&documents_checked, &verified_with) {
            // Reported on verified_with, as before documents_checked existed.
            f.error("verified_with", "must be given unless documents_checked names the documents checked");
        }
        f.refuse_unknown();
        Some(ReleaseFields {
            verified_with: verified_with?,
            documents_checked: documents_checked?.unwrap_or_default(),
            note: note?,
        })
    })
}
