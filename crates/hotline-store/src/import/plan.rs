//! What one record changes for its holder, decided from the registry's state
//! alone (no database here), or why the record is refused.
//!
//! An import never makes a certificate good again: a record that says good
//! of a certificate the registry holds or has revoked is refused, so a hold
//! placed by the hotline stays until a clerk lifts it. Everything else the
//! issuing side says is applied: a certificate it lists and the registry
//! does not is registered; one the registry has beyond what the record lists
//! is revoked as superseded (a renewed certificate, a new card, a replaced
//! smartphone); one it marks revoked is revoked with its reason.

use std::collections::{BTreeMap, HashMap};

use hotline_core::{CertificateStatus, DeviceId, IssuerId, Medium, RevocationReason, Serial};

use super::state::{Held, Holder};
use super::{ImportCertificate, ImportRecord, Stance};

/// What a record changes.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// The record's card shares no certificate with the registered one (or there was none).
    pub new_card: bool,
    /// Certificates to register, with the smartphone they are on (none: the card).
    pub register: Vec<(ImportCertificate, Option<DeviceId>)>,
    /// Registered certificates to revoke (by id), with the reason.
    pub revoke: BTreeMap<i64, (IssuerId, Serial, RevocationReason)>,
}

impl Plan {
    pub fn is_nothing(&self) -> bool {
        !self.new_card && self.register.is_empty() && self.revoke.is_empty()
    }

    /// Only registrations of certificates that are good: the bulk path can take it.
    pub fn is_plain_registration(&self) -> bool {
        self.revoke.is_empty() && self.register.iter().all(|(c, _)| !matches!(c.stance, Stance::Revoked(_)))
    }

    fn supersede(&mut self, held: &Held) {
        if held.status != CertificateStatus::Revoked {
            // A reason the record gives itself stands.
            self.revoke
                .entry(held.id)
                .or_insert_with(|| (held.issuer.clone(), held.serial.clone(), RevocationReason::Superseded));
        }
    }
}

/// Plans `record` against `holder`; `owners` names the holder of every
/// registered (issuer, serial) the record lists.
pub(super) fn plan(
    record: &ImportRecord,
    holder: &Holder<'_>,
    owners: &HashMap<(String, String), i64>,
) -> Result<Plan, String> {
    if holder.date_of_birth.is_some_and(|dob| dob != record.date_of_birth) {
        return Err("the date of birth differs from the registry's for this holder".into());
    }
    let held: HashMap<(&str, &str), &Held> =
        holder.certificates.iter().map(|h| ((h.issuer.as_str(), h.serial.as_str()), h)).collect();
    let mut plan = Plan::default();
    let listed = record.card.iter().flatten().map(|c| (c, None)).chain(
        record.smartphones.iter().flatten().flat_map(|p| p.certificates.iter().map(move |c| (c, Some(&p.device_id)))),
    );
    for (c, device) in listed {
        let key = (c.issuer.as_str().to_owned(), c.serial.as_str().to_owned());
        let Some(h) = held.get(&(c.issuer.as_str(), c.serial.as_str())) else {
            if owners.get(&key).is_some_and(|owner| Some(*owner) != holder.id) {
                return Err(format!("{} {} is registered to another holder", c.issuer, c.serial));
            }
            plan.register.push((c.clone(), device.cloned()));
            continue;
        };
        let place_matches = match device {
            None => h.medium == Medium::Card,
            Some(d) => h.medium == Medium::Smartphone && h.device_id.as_deref() == Some(d.as_str()),
        };
        if !place_matches {
            return Err(format!(
                "{} {} is registered on another card or smartphone of this holder",
                c.issuer, c.serial
            ));
        }
        match c.stance {
            Stance::Issued => {}
            Stance::Good if h.status == CertificateStatus::Good => {}
            Stance::Good => {
                return Err(format!(
                    "{} {} is {} in the registry, and an import never makes a certificate good again \
                     (a hold is lifted by a clerk at the counter)",
                    c.issuer, c.serial, h.status
                ));
            }
            Stance::Revoked(_) if h.status == CertificateStatus::Revoked => {}
            Stance::Revoked(reason) => {
                plan.revoke.insert(h.id, (h.issuer.clone(), h.serial.clone(), reason));
            }
        }
    }
    if let Some(card) = &record.card {
        let on_current =
            |h: &&Held| h.medium == Medium::Card && h.card_id.is_some() && h.card_id == holder.current_card;
        plan.new_card = !card.is_empty()
            && !card.iter().any(|c| held.get(&(c.issuer.as_str(), c.serial.as_str())).is_some_and(on_current));
        let listed_on_card = |h: &Held| card.iter().any(|c| c.issuer == h.issuer && c.serial == h.serial);
        for h in holder.certificates.iter().filter(|h| h.medium == Medium::Card) {
            if !listed_on_card(h) {
                plan.supersede(h);
            }
        }
    }
    if let Some(phones) = &record.smartphones {
        for h in holder.certificates.iter().filter(|h| h.medium == Medium::Smartphone) {
            let listed = phones.iter().any(|p| {
                h.device_id.as_deref() == Some(p.device_id.as_str())
                    && p.certificates.iter().any(|c| c.issuer == h.issuer && c.serial == h.serial)
            });
            if !listed {
                plan.supersede(h);
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use hotline_core::{CertificateKind, IndividualNumber, IssuerId, PiiKey, Serial};

    use super::*;
    use crate::import::ImportSmartphone;

    fn cert(issuer: &str, serial: &str, stance: Stance) -> ImportCertificate {
        let kind = if issuer == "jpki-sign" { CertificateKind::Signature } else { CertificateKind::UserIdentification };
        ImportCertificate {
            issuer: IssuerId::parse(issuer).unwrap(),
            serial: Serial::parse(serial).unwrap(),
            kind,
            stance,
        }
    }

    fn held(id: i64, issuer: &str, serial: &str, place: Result<i64, &str>, status: CertificateStatus) -> Held {
        let (medium, card_id, device_id) = match place {
            Ok(card) => (Medium::Card, Some(card), None),
            Err(device) => (Medium::Smartphone, None, Some(device.to_owned())),
        };
        Held {
            id,
            issuer: IssuerId::parse(issuer).unwrap(),
            serial: Serial::parse(serial).unwrap(),
            medium,
            card_id,
            device_id,
            status,
        }
    }

    fn record(card: Option<Vec<ImportCertificate>>, smartphones: Option<Vec<ImportSmartphone>>) -> ImportRecord {
        ImportRecord {
            line: 1,
            fingerprint: IndividualNumber::parse("123456789018")
                .unwrap()
                .fingerprint(&PiiKey::from_bytes(vec![7; 32]).unwrap()),
            date_of_birth: chrono::NaiveDate::from_ymd_opt(1980, 1, 1).unwrap(),
            card,
            smartphones,
        }
    }

    fn registered(certificates: &[Held]) -> Holder<'_> {
        Holder {
            id: Some(7),
            date_of_birth: chrono::NaiveDate::from_ymd_opt(1980, 1, 1),
            current_card: Some(3),
            certificates,
        }
    }

    fn owned(certificates: &[Held]) -> HashMap<(String, String), i64> {
        certificates.iter().map(|h| ((h.issuer.as_str().to_owned(), h.serial.as_str().to_owned()), 7)).collect()
    }

    const GOOD: CertificateStatus = CertificateStatus::Good;

    #[test]
    fn the_same_record_again_changes_nothing() {
        let certs = [held(1, "jpki-sign", "aa", Ok(3), GOOD), held(2, "jpki-auth", "bb", Ok(3), GOOD)];
        let r =
            record(Some(vec![cert("jpki-sign", "aa", Stance::Issued), cert("jpki-auth", "bb", Stance::Good)]), None);
        assert!(plan(&r, &registered(&certs), &owned(&certs)).unwrap().is_nothing());
    }

    #[test]
    fn a_renewed_certificate_supersedes_the_old_one_on_the_same_card() {
        let certs = [held(1, "jpki-sign", "aa", Ok(3), GOOD), held(2, "jpki-auth", "bb", Ok(3), GOOD)];
        let r =
            record(Some(vec![cert("jpki-sign", "cc", Stance::Issued), cert("jpki-auth", "bb", Stance::Issued)]), None);
        let p = plan(&r, &registered(&certs), &owned(&certs)).unwrap();
        assert!(!p.new_card);
        assert_eq!(p.register.len(), 1);
        assert_eq!(p.revoke.get(&1).map(|r| r.2), Some(RevocationReason::Superseded));
        assert!(!p.revoke.contains_key(&2));
    }

    #[test]
    fn a_new_card_revokes_every_certificate_of_the_old_one() {
        let certs =
            [held(1, "jpki-sign", "aa", Ok(3), GOOD), held(2, "jpki-auth", "bb", Ok(3), CertificateStatus::Suspended)];
        let r =
            record(Some(vec![cert("jpki-sign", "cc", Stance::Issued), cert("jpki-auth", "dd", Stance::Issued)]), None);
        let p = plan(&r, &registered(&certs), &owned(&certs)).unwrap();
        assert!(p.new_card);
        assert_eq!(
            p.revoke.keys().copied().collect::<Vec<_>>(),
            vec![1, 2],
            "a held certificate is revoked too, never lifted"
        );
    }

    #[test]
    fn an_address_change_revokes_the_signature_certificate_with_its_reason() {
        let certs = [held(1, "jpki-sign", "aa", Ok(3), GOOD), held(2, "jpki-auth", "bb", Ok(3), GOOD)];
        let reason = RevocationReason::AffiliationChanged;
        let r = record(
            Some(vec![cert("jpki-sign", "aa", Stance::Revoked(reason)), cert("jpki-auth", "bb", Stance::Issued)]),
            None,
        );
        let p = plan(&r, &registered(&certs), &owned(&certs)).unwrap();
        assert_eq!(p.revoke.get(&1).map(|r| r.2), Some(reason));
        assert_eq!(p.revoke.len(), 1);
    }

    #[test]
    fn saying_good_of_a_held_certificate_is_refused() {
        let certs = [held(1, "jpki-sign", "aa", Ok(3), CertificateStatus::Suspended)];
        let r = record(Some(vec![cert("jpki-sign", "aa", Stance::Good)]), None);
        let why = plan(&r, &registered(&certs), &owned(&certs)).unwrap_err();
        assert!(why.contains("never makes a certificate good again"), "{why}");
    }

    #[test]
    fn a_replaced_smartphone_supersedes_the_old_ones_certificates() {
        let certs = [held(1, "jpki-auth", "aa", Err("iphone-1"), GOOD)];
        let phone = ImportSmartphone {
            device_id: DeviceId::parse("iphone-2").unwrap(),
            certificates: vec![cert("jpki-auth", "bb", Stance::Issued)],
        };
        let p = plan(&record(None, Some(vec![phone])), &registered(&certs), &owned(&certs)).unwrap();
        assert_eq!(p.register.len(), 1);
        assert_eq!(p.revoke.get(&1).map(|r| r.2), Some(RevocationReason::Superseded));
    }

    #[test]
    fn a_part_left_out_says_nothing() {
        let certs = [held(1, "jpki-sign", "aa", Ok(3), GOOD), held(2, "jpki-auth", "bb", Err("iphone-1"), GOOD)];
        assert!(plan(&record(None, None), &registered(&certs), &owned(&certs)).unwrap().is_nothing());
    }

    #[test]
    fn another_holders_serial_is_refused() {
        let r = record(Some(vec![cert("jpki-sign", "aa", Stance::Issued)]), None);
        let owners = HashMap::from([(("jpki-sign".to_owned(), "aa".to_owned()), 99)]);
        assert!(plan(&r, &registered(&[]), &owners).unwrap_err().contains("another holder"));
    }

    #[test]
    fn a_different_date_of_birth_is_refused() {
        let mut r = record(None, None);
        r.date_of_birth = chrono::NaiveDate::from_ymd_opt(1981, 1, 1).unwrap();
        assert!(plan(&r, &registered(&[]), &HashMap::new()).is_err());
    }
}
