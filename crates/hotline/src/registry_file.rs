//! The registry file the issuing side exports: JSON Lines, one holder per
//! line, as they are now (docs/REGISTRY_IMPORT.md describes it for the
//! people who write the export):
//!
//! ```json
//! {"individual_number": "123456789018", "date_of_birth": "1980-04-01",
//!  "card": {"certificates": [{"issuer": "jpki-sign", "serial": "0a1b2c"},
//!                            {"issuer": "jpki-auth", "serial": "0a1b2d"}]},
//!  "smartphones": [{"device_id": "iphone-3f9a", "certificates": [
//!      {"issuer": "jpki-auth", "serial": "77aa", "status": "revoked", "reason": "key_compromise"}]}]}
//! ```
//!
//! Each line is checked whole before anything of it is used, and a message
//! about it never quotes the Individual Number: only its keyed fingerprint
//! leaves this module.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use hotline_core::{CertificateKind, DeviceId, IndividualNumber, IssuerId, PiiKey, RevocationReason, Serial};
use hotline_store::{ImportCertificate, ImportRecord, ImportSmartphone, Stance};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Holder {
    individual_number: String,
    date_of_birth: String,
    card: Option<Card>,
    smartphones: Option<Vec<Smartphone>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Card {
    certificates: Vec<Certificate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Smartphone {
    device_id: String,
    certificates: Vec<Certificate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Certificate {
    issuer: String,
    serial: String,
    /// Optional: the issuer's kind; given, it must match.
    kind: Option<String>,
    /// `issued` (the default), `good` or `revoked`.
    status: Option<String>,
    /// With `revoked` only, and then required: a permanent RFC 5280 reason.
    reason: Option<String>,
}

/// What a file's records are checked against.
pub struct Reader<'a> {
    pub key: &'a PiiKey,
    /// The issuers the registry knows, with the kind each issues.
    pub issuers: HashMap<IssuerId, CertificateKind>,
    /// No one is born after it (the server's day).
    pub today: NaiveDate,
}

/// Runs of twelve or more digits in a message, as a parser may quote a
/// misplaced value: they could be an Individual Number, so they are hidden.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut digits = String::new();
    for ch in message.chars().chain(std::iter::once('\0')) {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        if digits.len() >= 12 {
            out.push_str("(digits hidden)");
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        if ch != '\0' {
            out.push(ch);
        }
    }
    out
}

impl Reader<'_> {
    /// One line of the file (`line` counts from 1), or what is wrong with it.
    pub fn record(&self, line: u64, text: &str) -> Result<ImportRecord, String> {
        let holder: Holder = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            // serde_json ends with "at line 1 column N": the line is ours, the column is worth keeping.
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            format!("{} (column {})", redact(&message), e.column())
        })?;
        let number =
            IndividualNumber::parse(&holder.individual_number).map_err(|e| format!("individual_number: {e}"))?;
        let date_of_birth = NaiveDate::parse_from_str(&holder.date_of_birth, "%Y-%m-%d")
            .map_err(|_| "date_of_birth: must be a date written YYYY-MM-DD".to_owned())?;
        if date_of_birth > self.today || chrono::Datelike::year(&date_of_birth) < 1900 {
            return Err("date_of_birth: must be between 1900-01-01 and today".into());
        }
        let card = holder.card.map(|c| self.certificates("card", &c.certificates)).transpose()?;
        let smartphones = holder
            .smartphones
            .map(|phones| {
                let mut seen = HashSet::new();
                phones
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let at = format!("smartphones[{i}]");
                        let device_id = DeviceId::parse(&p.device_id).map_err(|e| format!("{at}.device_id: {e}"))?;
                        if !seen.insert(p.device_id.as_str()) {
                            return Err(format!("{at}.device_id: the same smartphone is listed twice"));
                        }
                        Ok(ImportSmartphone { device_id, certificates: self.certificates(&at, &p.certificates)? })
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .transpose()?;
        Ok(ImportRecord { line, fingerprint: number.fingerprint(self.key), date_of_birth, card, smartphones })
    }

    fn certificates(&self, at: &str, certificates: &[Certificate]) -> Result<Vec<ImportCertificate>, String> {
        let mut issuers = HashSet::new();
        certificates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let at = format!("{at}.certificates[{i}]");
                let parsed = self.certificate(&at, c)?;
                if !issuers.insert(parsed.issuer.clone()) {
                    return Err(format!("{at}: a second {} certificate on the same card or smartphone", parsed.issuer));
                }
                Ok(parsed)
            })
            .collect()
    }

    fn certificate(&self, at: &str, c: &Certificate) -> Result<ImportCertificate, String> {
        let issuer = IssuerId::parse(&c.issuer).map_err(|e| format!("{at}.issuer: {e}"))?;
        let kind = *self.issuers.get(&issuer).ok_or_else(|| {
            let known: Vec<&str> = self.issuers.keys().map(IssuerId::as_str).collect();
            format!("{at}.issuer: {issuer} is not an issuer the registry knows ({})", known.join(", "))
        })?;
        if let Some(given) = &c.kind
            && given != kind.as_str()
        {
            return Err(format!("{at}.kind: {issuer} issues {kind} certificates, not {given}"));
        }
        let serial = Serial::parse(&c.serial).map_err(|e| format!("{at}.serial: {e}"))?;
        let stance = match (c.status.as_deref().unwrap_or("issued"), c.reason.as_deref()) {
            ("issued", None) => Stance::Issued,
            ("good", None) => Stance::Good,
            ("revoked", Some(reason)) => {
                let reason: RevocationReason = reason.parse().map_err(|_| {
                    format!("{at}.reason: {reason:?} is not a revocation reason ({})", permanent_reasons().join(", "))
                })?;
                if !reason.is_permanent() {
                    return Err(format!(
                        "{at}.reason: {reason} is not a revocation (holds are placed here, not imported)"
                    ));
                }
                Stance::Revoked(reason)
            }
            ("revoked", None) => return Err(format!("{at}.reason: a revoked certificate needs its reason")),
            ("issued" | "good", Some(_)) => {
                return Err(format!("{at}.reason: only a revoked certificate has a reason"));
            }
            (other, _) => return Err(format!("{at}.status: {other:?} is not one of issued, good, revoked")),
        };
        Ok(ImportCertificate { issuer, serial, kind, stance })
    }
}

fn permanent_reasons() -> Vec<&'static str> {
    RevocationReason::ALL.iter().filter(|r| r.is_permanent()).map(|r| r.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(key: &PiiKey) -> Reader<'_> {
        Reader {
            key,
            issuers: HashMap::from([
                (IssuerId::parse("jpki-sign").unwrap(), CertificateKind::Signature),
                (IssuerId::parse("jpki-auth").unwrap(), CertificateKind::UserIdentification),
            ]),
            today: NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(),
        }
    }

    fn error(text: &str) -> String {
        let key = PiiKey::from_bytes(vec![1; 32]).unwrap();
        reader(&key).record(3, text).unwrap_err()
    }

    #[test]
    fn a_whole_record_reads() {
        let key = PiiKey::from_bytes(vec![1; 32]).unwrap();
        let text = r#"{"individual_number":"123456789018","date_of_birth":"1980-04-01",
            "card":{"certificates":[{"issuer":"jpki-sign","serial":"0A1B"},{"issuer":"jpki-auth","serial":"0a1c","status":"good"}]},
            "smartphones":[{"device_id":"iphone-1","certificates":[{"issuer":"jpki-auth","serial":"77","status":"revoked","reason":"key_compromise"}]}]}"#;
        let r = reader(&key).record(3, &text.replace('\n', "")).unwrap();
        assert_eq!(r.line, 3);
        let card = r.card.unwrap();
        assert_eq!(card[0].serial.as_str(), "0a1b");
        assert_eq!(card[1].stance, Stance::Good);
        let phones = r.smartphones.unwrap();
        assert_eq!(phones[0].certificates[0].stance, Stance::Revoked(RevocationReason::KeyCompromise));
    }

    #[test]
    fn a_bad_check_digit_is_named_without_the_number() {
        let e = error(r#"{"individual_number":"123456789010","date_of_birth":"1980-04-01"}"#);
        assert!(e.contains("individual_number: check digit"), "{e}");
        assert!(!e.contains("123456789010"), "{e}");
    }

    #[test]
    fn a_number_in_the_wrong_place_is_not_quoted_back() {
        let e = error(r#"{"individual_number":"123456789018","date_of_birth":123456789018}"#);
        assert!(!e.contains("123456789018"), "{e}");
        assert!(e.contains("digits hidden"), "{e}");
    }

    #[test]
    fn an_unknown_issuer_is_named() {
        let e = error(
            r#"{"individual_number":"123456789018","date_of_birth":"1980-04-01","card":{"certificates":[{"issuer":"jpki-x","serial":"01"}]}}"#,
        );
        assert!(e.starts_with("card.certificates[0].issuer: jpki-x is not an issuer"), "{e}");
    }

    #[test]
    fn a_revocation_needs_a_permanent_reason() {
        let base = r#"{"individual_number":"123456789018","date_of_birth":"1980-04-01","card":{"certificates":[{"issuer":"jpki-sign","serial":"01","status":"revoked"REASON}]}}"#;
        assert!(error(&base.replace("REASON", "")).contains("needs its reason"));
        assert!(error(&base.replace("REASON", r#","reason":"certificate_hold""#)).contains("not a revocation"));
    }

    #[test]
    fn unknown_fields_and_a_second_certificate_of_an_issuer_are_refused() {
        assert!(
            error(r#"{"individual_number":"123456789018","date_of_birth":"1980-04-01","name":"x"}"#)
                .contains("unknown field")
        );
        let twice = r#"{"individual_number":"123456789018","date_of_birth":"1980-04-01","card":{"certificates":[{"issuer":"jpki-sign","serial":"01"},{"issuer":"jpki-sign","serial":"02"}]}}"#;
        assert!(error(twice).contains("a second jpki-sign certificate"));
    }

    #[test]
    fn a_birth_date_after_today_is_refused() {
        assert!(
            error(r#"{"individual_number":"123456789018","date_of_birth":"2027-01-01"}"#).contains("date_of_birth")
        );
    }
}
