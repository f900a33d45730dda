//! The suspension request (`POST /v1/suspensions`): its schema, and the
//! parser that turns a body into domain types, once, at the edge. Every field
//! error is collected so the operator fixes everything in one go.

use chrono::NaiveDate;
use hotline_core::{CallId, Cause, DeviceId, IndividualNumber, Item, Language};
use serde_json::Value;
use utoipa::ToSchema;

use crate::fields::{Fields, Reading, short_text, word};
use crate::problem::FieldError;

/// A report of a lost or stolen item. Unknown fields are refused.
#[allow(dead_code)] // Describes the body for the OpenAPI document; `parse_report` reads it.
#[derive(ToSchema)]
#[schema(example = json!({
    "call_id": "call-2026-11-22-0042", "language": "en", "item": "smartphone", "cause": "theft",
    "holder": {"individual_number": "123456789018", "date_of_birth": "1980-04-01"},
    "device_id": "android-3f9a", "police_report_number": "R-2026-1122-07"
}))]
pub struct SuspensionRequest {
    #[schema(example = "call-2026-11-22-0042")]
    pub call_id: String,
    pub language: Language,
    pub item: Item,
    pub cause: Cause,
    pub holder: HolderIn,
    /// Required when item is smartphone, refused otherwise.
    pub device_id: Option<String>,
    pub police_report_number: Option<String>,
}

/// The holder, identified by number and date of birth.
#[allow(dead_code)] // Describes the body for the OpenAPI document; `parse_report` reads it.
#[derive(ToSchema)]
pub struct HolderIn {
    /// 12 digits with a valid check digit. Never stored or logged in clear.
    #[schema(example = "123456789018")]
    pub individual_number: String,
    #[schema(example = "1980-04-01", format = Date)]
    pub date_of_birth: String,
}

/// A well-formed report of a loss or theft.
#[derive(Debug)]
pub struct Report {
    pub call_id: CallId,
    pub language: Language,
    pub item: Item,
    pub cause: Cause,
    pub individual_number: IndividualNumber,
    pub date_of_birth: NaiveDate,
    pub device_id: Option<DeviceId>,
    pub police_report_number: Option<String>,
}

/// Oldest date of birth accepted: nobody alive was born earlier.
const EARLIEST_BIRTH: (i32, u32, u32) = (1890, 1, 1);

fn date_of_birth(today: NaiveDate) -> impl Fn(&str) -> Result<NaiveDate, String> {
    move |s: &str| {
        let date =
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| "must be a calendar date as YYYY-MM-DD".to_owned())?;
        let earliest =
            NaiveDate::from_ymd_opt(EARLIEST_BIRTH.0, EARLIEST_BIRTH.1, EARLIEST_BIRTH.2).unwrap_or_default();
        if date > today {
            Err("must not be in the future".to_owned())
        } else if date < earliest {
            Err("must not be before 1890-01-01".to_owned())
        } else {
            Ok(date)
        }
    }
}

/// Parses a report; `today` (Tokyo) bounds the date of birth.
pub fn parse_report(body: &Value, today: NaiveDate) -> Result<Report, Vec<FieldError>> {
    let mut reading = Reading::default();
    match read_report(body, today, &mut reading) {
        Some(r) if reading.is_ok() => Ok(r),
        _ => Err(reading.errors),
    }
}

/// The `holder` object: the Individual Number (check digit checked) and the date of birth.
pub(crate) fn read_holder(f: &mut Fields<'_, '_>, today: NaiveDate) -> Option<(IndividualNumber, NaiveDate)> {
    f.object("holder", |mut h| {
        let number = h.required("individual_number", IndividualNumber::parse);
        let dob = h.required("date_of_birth", date_of_birth(today));
        h.refuse_unknown();
        Some((number?, dob?))
    })
}

pub(crate) fn read_report(body: &Value, today: NaiveDate, reading: &mut Reading) -> Option<Report> {
    Fields::of(body, "", reading).and_then(|mut f| {
        let call_id = f.required("call_id", CallId::parse);
        let language = f.required("language", word::<Language>);
        let item = f.required("item", word::<Item>);
        let cause = f.required("cause", word::<Cause>);
        let holder = read_holder(&mut f, today);
        let device_id = f.optional("device_id", DeviceId::parse);
        let police_report_number = f.optional("police_report_number", short_text(64));
        match (item, &device_id) {
            (Some(Item::Smartphone), Some(None)) => f.error("device_id", "is required when item is smartphone"),
            (Some(i), Some(Some(_))) if i != Item::Smartphone => {
                f.error("device_id", "applies only when item is smartphone")
            }
            _ => {}
        }
        f.refuse_unknown();
        let (individual_number, date_of_birth) = holder?;
        Some(Report {
            call_id: call_id?,
            language: language?,
            item: item?,
            cause: cause?,
            individual_number,
            date_of_birth,
            device_id: device_id?,
            police_report_number: police_report_number?,
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    fn valid() -> Value {
        json!({"call_id": "c-1", "language": "en", "item": "card", "cause": "loss",
               "holder": {"individual_number": "123456789018", "date_of_birth": "1980-04-01"}})
    }

    fn fields_of(body: Value) -> Vec<String> {
        parse_report(&body, today()).unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_report_parses() {
        let r = parse_report(&valid(), today()).unwrap();
        assert_eq!(r.item, Item::Card);
        assert_eq!(r.device_id, None);
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let body = json!({"call_id": "", "language": "fr", "item": "phone", "cause": "fire",
                          "holder": {"individual_number": "123456789010", "date_of_birth": "2030-01-01", "name": "x"},
                          "extra": 1});
        assert_eq!(
            fields_of(body),
            [
                "call_id",
                "language",
                "item",
                "cause",
                "holder.individual_number",
                "holder.date_of_birth",
                "holder.name",
                "extra"
            ]
        );
    }

    #[test]
    fn a_smartphone_needs_its_device_and_a_card_refuses_one() {
        let mut phone = valid();
        phone["item"] = json!("smartphone");
        assert_eq!(fields_of(phone.clone()), ["device_id"]);
        phone["device_id"] = json!("android-1");
        assert!(parse_report(&phone, today()).is_ok());
        let mut card = valid();
        card["device_id"] = json!("android-1");
        assert_eq!(fields_of(card), ["device_id"]);
    }

    #[test]
    fn messages_never_repeat_the_number() {
        let mut body = valid();
        body["holder"]["individual_number"] = json!("123456789010");
        body["language"] = json!("123456789018");
        let errors = parse_report(&body, today()).unwrap_err();
        for e in errors {
            assert!(!e.message.contains("12345678901"), "{e:?}");
        }
    }

    #[test]
    fn wrong_types_and_missing_fields() {
        assert_eq!(fields_of(json!([])), ["(body)"]);
        assert_eq!(fields_of(json!({})), ["call_id", "language", "item", "cause", "holder"]);
        let mut body = valid();
        body["holder"]["individual_number"] = json!(123456789018u64);
        assert_eq!(fields_of(body), ["holder.individual_number"]);
    }
}
