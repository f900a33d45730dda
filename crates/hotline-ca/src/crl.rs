//! Verification of the CA's CRLs before anything is concluded from them: the
//! signature must verify under the issuer certificate the worker trusts, the
//! CRL must name that issuer, and it must not be past its nextUpdate. Only
//! then are its entries read.

use chrono::{DateTime, Utc};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use hotline_core::RevocationReason;

/// Why a CRL was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    #[error("the issuer certificate is not a readable PEM X.509 certificate: {0}")]
    BadIssuerCertificate(String),
    #[error("the CRL is not readable DER: {0}")]
    Malformed(String),
    #[error("the CRL's signature does not verify under the trusted issuer certificate: {0}")]
    BadSignature(String),
    #[error("the CRL is issued by {found}, not by the trusted issuer {expected}")]
    WrongIssuer { expected: String, found: String },
    #[error("the CRL has no nextUpdate")]
    NoNextUpdate,
    #[error("the CRL is stale: its nextUpdate {next_update} has passed")]
    Stale { next_update: DateTime<Utc> },
}

/// An issuer certificate the worker trusts, pinned when it first met the CA
/// or configured by the deployer.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    der: Vec<u8>,
}

impl TrustedIssuer {
    pub fn from_pem(pem: &str) -> Result<Self, CrlError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| CrlError::BadIssuerCertificate(e.to_string()))?;
        pem.parse_x509().map_err(|e| CrlError::BadIssuerCertificate(e.to_string()))?;
        Ok(Self { der: pem.contents })
    }

    /// Verifies a DER CRL and reads its entries.
    pub fn verify(&self, der: &[u8], now: DateTime<Utc>) -> Result<VerifiedCrl, CrlError> {
        let (_, issuer) =
            X509Certificate::from_der(&self.der).map_err(|e| CrlError::BadIssuerCertificate(e.to_string()))?;
        let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| CrlError::Malformed(e.to_string()))?;
        crl.verify_signature(issuer.public_key()).map_err(|e| CrlError::BadSignature(e.to_string()))?;
        if crl.issuer() != issuer.subject() {
            return Err(CrlError::WrongIssuer {
                expected: issuer.subject().to_string(),
                found: crl.issuer().to_string(),
            });
        }
        let next_update = crl.next_update().map(|t| instant(t.timestamp())).ok_or(CrlError::NoNextUpdate)?;
        if next_update <= now {
            return Err(CrlError::Stale { next_update });
        }
        let entries = crl
            .iter_revoked_certificates()
            .map(|entry| CrlEntry {
                serial: canonical_serial(&entry.serial().to_bytes_be()),
                reason_code: entry.reason_code().map(|(_, code)| code.0),
            })
            .collect();
        Ok(VerifiedCrl {
            number: crl.crl_number().map(|n| n.to_string()),
            this_update: instant(crl.last_update().timestamp()),
            next_update,
            entries,
        })
    }
}

fn instant(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

/// A CRL whose signature, issuer and freshness have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCrl {
    /// The CRL number, in decimal.
    pub number: Option<String>,
    pub this_update: DateTime<Utc>,
    pub next_update: DateTime<Utc>,
    pub entries: Vec<CrlEntry>,
}

/// One revoked certificate on a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    /// Canonical hex (see [`canonical_serial`]).
    pub serial: String,
    /// The entry's reason code, if it carries one.
    pub reason_code: Option<u8>,
}

impl CrlEntry {
    pub fn reason(&self) -> Option<RevocationReason> {
        self.reason_code.and_then(RevocationReason::from_code)
    }

    pub fn is_hold(&self) -> bool {
        self.reason() == Some(RevocationReason::CertificateHold)
    }
}

/// A serial as lowercase hex without leading zero bytes, so that the
/// registry's spelling and a CRL's DER integer compare equal.
pub fn canonical_serial(bytes: &[u8]) -> String {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let hex = hex::encode(&bytes[first..]);
    if hex.is_empty() { "00".to_owned() } else { hex }
}

/// Canonical hex of a serial written in hex, or none unless it is 1 to 20 bytes.
pub fn canonical_serial_hex(serial_hex: &str) -> Option<String> {
    let bytes = hex::decode(serial_hex).ok()?;
    (1..=20).contains(&bytes.len()).then(|| canonical_serial(&bytes))
}

impl VerifiedCrl {
    /// Canonical form of a registry serial (hex text), for look-ups in [`VerifiedCrl::entries`].
    pub fn canonical(serial_hex: &str) -> String {
        canonical_serial_hex(serial_hex).unwrap_or_else(|| serial_hex.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_serials_drop_leading_zero_bytes() {
        assert_eq!(canonical_serial(&[0, 0, 0x8a, 0x01]), "8a01");
        assert_eq!(canonical_serial(&[]), "00");
        assert_eq!(VerifiedCrl::canonical("008A01"), "8a01");
    }

    #[test]
    fn a_pem_that_is_not_a_certificate_is_refused() {
        assert!(matches!(TrustedIssuer::from_pem("hello"), Err(CrlError::BadIssuerCertificate(_))));
    }
}
