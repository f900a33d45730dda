//! The closed vocabularies of the domain: what is reported, why, in which
//! language, who may act, and the states a certificate can be in.

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
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $word)] $variant),+
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
    fn only_smartphone_reports_spare_the_card() {
        assert!(!Item::Smartphone.suspends_card());
        assert!(Item::Card.suspends_card());
        assert!(Item::NotificationCard.suspends_card());
        assert!(Item::NumberNotice.suspends_card());
    }
}
