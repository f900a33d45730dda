//! A synthetic registry for demos, tests and benchmarks: valid Individual
//! Numbers (check digits right), each holder with a card carrying one
//! `jpki-sign` and one `jpki-auth` certificate, and about a third with a
//! smartphone carrying its own two.

use std::collections::HashSet;

use chrono::{Duration, NaiveDate};
use hotline_core::{CertificateKind, DeviceId, IndividualNumber, PiiKey, Serial};
use rand::Rng;
use serde_json::{Value, json};

use crate::{NewCertificate, NewHolder, NewSmartphone};

pub const SIGNATURE_ISSUER: &str = "jpki-sign";
pub const AUTH_ISSUER: &str = "jpki-auth";

/// A generated holder, with the number in clear so a person or a test can call the API.
#[derive(Debug, Clone)]
pub struct SampleHolder {
    pub individual_number: IndividualNumber,
    pub date_of_birth: NaiveDate,
    pub card: Vec<NewCertificate>,
    pub smartphones: Vec<NewSmartphone>,
}

/// Generates holders whose numbers never repeat within one generator.
pub struct Generator<R> {
    rng: R,
    /// The numbers given so far, as integers (a few bytes each: a generator may write a country).
    seen: HashSet<u64>,
}

impl<R: Rng> Generator<R> {
    pub fn new(rng: R) -> Self {
        Self { rng, seen: HashSet::new() }
    }

    pub fn holder(&mut self) -> SampleHolder {
        let individual_number = loop {
            let first: [u8; 11] = std::array::from_fn(|_| self.rng.random_range(0..10));
            if let Some(n) = IndividualNumber::from_first_eleven(first)
                && self.seen.insert(n.expose_digits().parse().unwrap_or_default())
            {
                break n;
            }
        };
        let base = NaiveDate::from_ymd_opt(1940, 1, 1).unwrap_or_default();
        let date_of_birth = base + Duration::days(self.rng.random_range(0..(70 * 365)));
        let card = self.pair();
        let smartphones = if self.rng.random_ratio(1, 3) {
            let brand = if self.rng.random_bool(0.5) { "android" } else { "iphone" };
            let id = format!("{brand}-{:016x}", self.rng.random::<u64>());
            DeviceId::parse(&id)
                .map(|device_id| vec![NewSmartphone { device_id, certificates: self.pair() }])
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        SampleHolder { individual_number, date_of_birth, card, smartphones }
    }

    fn pair(&mut self) -> Vec<NewCertificate> {
        let mut serial = || {
            let bytes: [u8; 16] = self.rng.random();
            // 16 random bytes as 32 hex digits always parse as a serial.
            Serial::parse(&hex::encode(bytes)).ok()
        };
        let (sign, auth) = (serial(), serial());
        [(SIGNATURE_ISSUER, CertificateKind::Signature, sign), (AUTH_ISSUER, CertificateKind::UserIdentification, auth)]
            .into_iter()
            .filter_map(|(issuer, kind, serial)| {
                serial.map(|serial| NewCertificate { issuer: issuer.to_owned(), serial, kind })
            })
            .collect()
    }
}

impl SampleHolder {
    /// The registry's view: the number replaced by its keyed fingerprint.
    pub fn to_new_holder(&self, key: &PiiKey) -> NewHolder {
        NewHolder {
            fingerprint: self.individual_number.fingerprint(key),
            date_of_birth: self.date_of_birth,
            card: self.card.clone(),
            smartphones: self.smartphones.clone(),
        }
    }

    /// The sample-file form: `{individual_number, date_of_birth, card: {certificates}, smartphones: [...]}`.
    pub fn to_json(&self) -> Value {
        let certs = |cs: &[NewCertificate]| -> Vec<Value> {
            cs.iter()
                .map(|c| json!({"issuer": c.issuer, "serial": c.serial.as_str(), "kind": c.kind.as_str()}))
                .collect()
        };
        json!({
            "individual_number": self.individual_number.expose_digits(),
            "date_of_birth": self.date_of_birth.format("%Y-%m-%d").to_string(),
            "card": {"certificates": certs(&self.card)},
            "smartphones": self.smartphones.iter().map(|p| json!({
                "device_id": p.device_id.as_str(),
                "certificates": certs(&p.certificates),
            })).collect::<Vec<_>>(),
        })
    }
}

impl crate::Store {
    /// Registers generated holders under `key`'s fingerprints; returns how many were new.
    pub async fn insert_samples(&self, key: &PiiKey, samples: &[SampleHolder]) -> crate::Result<usize> {
        let holders: Vec<NewHolder> = samples.iter().map(|h| h.to_new_holder(key)).collect();
        self.insert_holders(&holders, chrono::Utc::now()).await
    }
}
