//! The batch status query (`POST /v1/status`): its schema and its parser.
//! Up to [`MAX_BATCH`] certificates, each an issuer the service serves and a
//! serial of 1 to 20 bytes of hex.

use hotline_core::{IssuerId, Serial};
use serde_json::Value;
use utoipa::ToSchema;

use crate::fields::{Fields, Reading};
use crate::problem::FieldError;

/// The most certificates one batch query may ask about.
pub const MAX_BATCH: usize = 1000;

/// A batch status query: 1 to 1000 certificates. Unknown fields are refused.
#[allow(dead_code)] // Describes the body for the OpenAPI document; `parse_batch` reads it.
#[derive(ToSchema)]
#[schema(example = json!({"certificates": [{"issuer": "jpki-auth", "serial": "3f9a0c11d2e4b5a6978812aa03bc4d5e"}]}))]
pub struct BatchStatusQuery {
    pub certificates: Vec<StatusQueryItem>,
}

/// One certificate in a batch status query.
#[allow(dead_code)] // Describes the body for the OpenAPI document; `parse_batch` reads it.
#[derive(ToSchema)]
pub struct StatusQueryItem {
    #[schema(example = "jpki-auth")]
    pub issuer: String,
    /// Hex, 1 to 20 bytes.
    #[schema(example = "3f9a0c11d2e4b5a6978812aa03bc4d5e")]
    pub serial: String,
}

/// Why a batch query was refused.
#[derive(Debug)]
pub enum BatchRefused {
    /// More than [`MAX_BATCH`] certificates: how many were asked about.
    TooLarge(usize),
    Invalid(Vec<FieldError>),
}

/// The (issuer, serial) pairs asked about, in order; `knows_issuer` says which issuers are served.
pub fn parse_batch(
    body: &Value,
    knows_issuer: impl Fn(&IssuerId) -> bool,
) -> Result<Vec<(IssuerId, Serial)>, BatchRefused> {
    let mut reading = Reading::default();
    let keys = read_batch(body, &knows_issuer, &mut reading)?;
    if reading.is_ok() { Ok(keys) } else { Err(BatchRefused::Invalid(reading.errors)) }
}

pub(crate) fn read_batch(
    body: &Value,
    knows_issuer: &dyn Fn(&IssuerId) -> bool,
    reading: &mut Reading,
) -> Result<Vec<(IssuerId, Serial)>, BatchRefused> {
    let mut keys = Vec::new();
    let Some(mut f) = Fields::of(body, "", reading) else { return Ok(keys) };
    let list = f.raw("certificates");
    f.refuse_unknown();
    match list.and_then(Value::as_array) {
        None => reading.push(FieldError::new("certificates", "is required: a list of {issuer, serial}")),
        Some(list) if list.len() > MAX_BATCH => return Err(BatchRefused::TooLarge(list.len())),
        Some(list) if list.is_empty() => reading.push(FieldError::new("certificates", "must not be empty")),
        Some(list) => {
            for (i, item) in list.iter().enumerate() {
                let path = format!("certificates[{i}]");
                let Some(mut f) = Fields::of(item, &path, reading) else { continue };
                let issuer = f.required("issuer", |s| {
                    IssuerId::parse(s).ok().filter(|i| knows_issuer(i)).ok_or("is not a known issuer")
                });
                let serial = f.required("serial", Serial::parse);
                f.refuse_unknown();
                if let (Some(i), Some(s)) = (issuer, serial) {
                    keys.push((i, s));
                }
            }
        }
    }
    Ok(keys)
}
