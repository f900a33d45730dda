//! The closed vocabularies of the domain: what is reported, why, in which
//! language, who may act, the states a certificate and a suspension can be
//! in, and what the certificate authority is asked to do. Each is one type,
//! used by the store (its column text), the cache, the CA protocol and the
//! API (the wire and the OpenAPI document, with the `openapi` feature), so a
//! word is spelled in one place.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A word outside a closed vocabulary; names the allowed words so the message helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {given:?}; expected one of: {allowed}")]
pub struct UnknownWord {
    pub given: String,
    pub allowed: &'static str,
}

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$variant_doc:meta])* $variant:ident => $word:tt),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $($(#[$variant_doc])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord {
                        given: s.chars().take(40).collect(),
                        allowed: concat!($($word, " "),+).trim_ascii_end(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// What the caller lost or had stolen.
    Item {
        Card => "card",
        Smartphone => "smartphone",
        NotificationCard => "notification_card",
        NumberNotice => "number_notice",
    }
);

vocabulary!(
    /// Why it is gone.
    Cause { Loss => "loss", Theft => "theft" }
);

vocabulary!(
    /// The language of the call (ISO 639-1; `tl` is Tagalog).
    Language {
        Ja => "ja", En => "en", Zh => "zh", Ko => "ko", Es => "es", Pt => "pt",
        Th => "th", Ne => "ne", Id => "id", Vi => "vi", Tl => "tl",
    }
);

vocabulary!(
    /// Who holds an API token, and so what it may do.
    Role {
        Operator => "operator",
        Supervisor => "supervisor",
        Clerk => "clerk",
        Validator => "validator",
    }
);

vocabulary!(
    /// The two JPKI certificates.
    CertificateKind { Signature => "signature", UserIdentification => "user_identification" }
);

vocabulary!(
    /// Where a certificate lives.
    Medium { Card => "card", Smartphone => "smartphone" }
);

vocabulary!(
    /// What a validator is told about a certificate.
    CertificateStatus { Good => "good", Suspended => "suspended", Revoked => "revoked" }
);

vocabulary!(
    /// Where an Individual Number Card stands: in use, suspended on a report, or replaced for good.
    CardStatus { Active => "active", Suspended => "suspended", Revoked => "revoked" }
);

vocabulary!(
    /// Which window of the Tokyo day an instant falls in.
    Mode { Day => "day", Night => "night" }
);

vocabulary!(
    /// Whether a suspension still holds its certificates.
    SuspensionState { Suspended => "suspended", Released => "released" }
);

vocabulary!(
    /// How far a suspension's (or release's) changes have reached the certificate authority.
    CaSync { Pending => "pending", Confirmed => "confirmed", Failed => "failed" }
);

vocabulary!(
    /// Where an outbox event stands: waiting for (another) delivery, delivered, or given up on.
    OutboxState { Pending => "pending", Done => "done", Dead => "dead" }
);

vocabulary!(
    /// The identity documents a municipal clerk may check before lifting a suspension.
    IdentityDocument {
        MyNumberCard => "my_number_card",
        DriversLicence => "drivers_licence",
        Passport => "passport",
        ResidenceCard => "residence_card",
        HealthInsuranceCard => "health_insurance_card",
        PensionBook => "pension_book",
    }
);

vocabulary!(
    /// What the certificate authority is asked to do with a certificate.
    CaAction {
        /// Suspend: a CRL entry with reason certificateHold.
        Hold => "hold",
        /// Lift a hold: the entry leaves the CRL (removeFromCRL).
        Release => "release",
        /// Revoke for good: the entry stays on the CRL with a permanent reason.
        Revoke => "revoke",
    }
);

vocabulary!(
    /// RFC 5280 CRL reasons (§5.3.1), by name; [`RevocationReason::code`] gives the number.
    RevocationReason {
        Unspecified => "unspecified",
        KeyCompromise => "key_compromise",
        CaCompromise => "ca_compromise",
        AffiliationChanged => "affiliation_changed",
        Superseded => "superseded",
        CessationOfOperation => "cessation_of_operation",
        CertificateHold => "certificate_hold",
        RemoveFromCrl => "remove_from_crl",
        PrivilegeWithdrawn => "privilege_withdrawn",
        AaCompromise => "aa_compromise",
    }
);

impl RevocationReason {
    /// The reason's code in a CRL entry or an OCSP answer (RFC 5280 §5.3.1; 7 is unused).
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::CertificateHold => 6,
            RevocationReason::RemoveFromCrl => 8,
            RevocationReason::PrivilegeWithdrawn => 9,
            RevocationReason::AaCompromise => 10,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// Whether a certificate with this reason stays revoked (every reason but
    /// the hold and its removal).
    pub fn is_permanent(self) -> bool {
        !matches!(self, RevocationReason::CertificateHold | RevocationReason::RemoveFromCrl)
    }
}

impl CaAction {
    /// The reason a hold or a release always carries; a revocation names its own.
    pub fn fixed_reason(self) -> Option<RevocationReason> {
        match self {
            CaAction::Hold => Some(RevocationReason::CertificateHold),
            CaAction::Release => Some(RevocationReason::RemoveFromCrl),
            CaAction::Revoke => None,
        }
    }

    /// Whether `reason` fits the action: a hold says certificateHold, a
    /// release removeFromCRL, and a revocation any permanent reason.
    pub fn fits(self, reason: RevocationReason) -> bool {
        match self.fixed_reason() {
            Some(fixed) => reason == fixed,
            None => reason.is_permanent(),
        }
    }
}

impl Item {
    /// Whether a report of this item suspends the holder's card (and its
    /// certificates) rather than one smartphone's certificates (SPEC.md's table).
    pub fn suspends_card(self) -> bool {
        !matches!(self, Item::Smartphone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for item in Item::ALL {
            assert_eq!(item.as_str().parse::<Item>(), Ok(*item));
        }
        for lang in Language::ALL {
            assert_eq!(lang.as_str().parse::<Language>(), Ok(*lang));
        }
        assert_eq!(Language::ALL.len(), 11);
    }

    #[test]
    fn unknown_words_name_the_allowed_ones() {
        let err = "phone".parse::<Item>().unwrap_err();
        assert_eq!(err.allowed, "card smartphone notification_card number_notice");
        assert!(err.to_string().contains("\"phone\""));
    }

    #[test]
    fn reason_codes_are_rfc_5280s_and_round_trip() {
        assert_eq!(RevocationReason::CertificateHold.code(), 6);
        assert_eq!(RevocationReason::RemoveFromCrl.code(), 8);
        assert_eq!(RevocationReason::AaCompromise.code(), 10);
        for reason in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_code(reason.code()), Some(*reason));
        }
        assert_eq!(RevocationReason::from_code(7), None, "7 is not assigned");
    }

    #[test]
    fn each_action_fits_its_reasons() {
        assert!(CaAction::Hold.fits(RevocationReason::CertificateHold));
        assert!(!CaAction::Hold.fits(RevocationReason::Superseded));
        assert!(CaAction::Release.fits(RevocationReason::RemoveFromCrl));
        assert!(CaAction::Revoke.fits(RevocationReason::KeyCompromise));
        assert!(!CaAction::Revoke.fits(RevocationReason::CertificateHold));
        assert!(!CaAction::Revoke.fits(RevocationReason::RemoveFromCrl));
    }

    #[test]
    fn only_smartphone_reports_spare_the_card() {
        assert!(!Item::Smartphone.suspends_card());
        assert!(Item::Card.suspends_card());
        assert!(Item::NotificationCard.suspends_card());
        assert!(Item::NumberNotice.suspends_card());
    }
}
