//! Delegated responder certificates (RFC 6960 §4.2.2.2): for each issuer, a
//! certificate that issuer signed for the responder's key, with the
//! OCSPSigning extended key usage, and the key itself. A pair is checked
//! before it is used: the certificate must be issued by the issuer, carry
//! the OCSPSigning purpose, be within its validity, and certify this key.

use chrono::{DateTime, Utc};
use der::Decode;
use der::asn1::{Any, BitString, ObjectIdentifier};
use hotline_core::IssuerId;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use sha1::{Digest, Sha1};
use x509_cert::Certificate;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::issuer::KnownIssuer;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// Why a responder certificate cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponderError {
    #[error("the responder certificate for {issuer} does not read: {reason}")]
    Unreadable { issuer: String, reason: String },
    #[error("the responder key for {issuer} does not read (PKCS#8 ECDSA P-256, P-384 or RSA expected)")]
    UnreadableKey { issuer: String },
    #[error("the responder certificate for {issuer} is not issued by {issuer}: {reason}")]
    NotIssuedByIssuer { issuer: String, reason: String },
    #[error("the responder certificate for {issuer} lacks the OCSPSigning extended key usage")]
    NotForOcspSigning { issuer: String },
    #[error("the responder certificate for {issuer} does not certify the responder's key")]
    KeyMismatch { issuer: String },
    #[error("the responder certificate for {issuer} is valid from {not_before} until {not_after}, not now")]
    OutsideValidity { issuer: String, not_before: DateTime<Utc>, not_after: DateTime<Utc> },
}

enum SigningKey {
    Ecdsa(EcdsaKeyPair, ObjectIdentifier),
    Rsa(RsaKeyPair),
}

/// A checked responder certificate with its key.
pub struct Responder {
    pub issuer: IssuerId,
    pub(crate) certificate: Certificate,
    key: SigningKey,
    /// SHA-1 of the responder's public key: its ResponderID (byKey, as RFC 5019 asks).
    pub(crate) key_hash: Vec<u8>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("issuer", &self.issuer)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A fresh ECDSA P-256 key: its PKCS#8 DER, and its public key as a
/// SubjectPublicKeyInfo (DER), to have a responder certificate issued for.
pub fn generate_key() -> Result<(Vec<u8>, Vec<u8>), ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)?;
    let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| ring::error::Unspecified)?;
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: OID_EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&OID_P256).map_err(|_| ring::error::Unspecified)?),
        },
        subject_public_key: BitString::from_bytes(pair.public_key().as_ref()).map_err(|_| ring::error::Unspecified)?,
    };
    let spki = der::Encode::to_der(&spki).map_err(|_| ring::error::Unspecified)?;
    Ok((pkcs8.as_ref().to_vec(), spki))
}

fn signing_key(pkcs8: &[u8], rng: &SystemRandom) -> Option<SigningKey> {
    let ecdsa = [
        (&signature::ECDSA_P256_SHA256_ASN1_SIGNING, OID_ECDSA_SHA256),
        (&signature::ECDSA_P384_SHA384_ASN1_SIGNING, OID_ECDSA_SHA384),
    ];
    for (algorithm, oid) in ecdsa {
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(algorithm, pkcs8, rng) {
            return Some(SigningKey::Ecdsa(pair, oid));
        }
    }
    RsaKeyPair::from_pkcs8(pkcs8).ok().map(SigningKey::Rsa)
}

fn instant(t: x509_parser::time::ASN1Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or_default()
}

impl Responder {
    /// Checks a responder certificate (DER) and its key (PKCS#8 DER) against
    /// the issuer, at `now`.
    pub fn new(
        issuer: &KnownIssuer,
        certificate_der: &[u8],
        key_pkcs8: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Self, ResponderError> {
        let name = issuer.id.to_string();
        let unreadable = |reason: String| ResponderError::Unreadable { issuer: name.clone(), reason };
        let (_, parsed) =
            x509_parser::parse_x509_certificate(certificate_der).map_err(|e| unreadable(e.to_string()))?;
        let (_, issuer_cert) = x509_parser::parse_x509_certificate(&issuer.certificate)
            .map_err(|e| unreadable(format!("the issuer's own certificate: {e}")))?;
        let not_issued = |reason: String| ResponderError::NotIssuedByIssuer { issuer: name.clone(), reason };
        if parsed.issuer() != issuer_cert.subject() {
            return Err(not_issued(format!("its issuer is {}", parsed.issuer())));
        }
        parsed
            .verify_signature(Some(issuer_cert.public_key()))
            .map_err(|e| not_issued(format!("its signature does not verify under the issuer's key ({e})")))?;
        let for_ocsp = matches!(parsed.extended_key_usage(), Ok(Some(eku)) if eku.value.ocsp_signing);
        if !for_ocsp {
            return Err(ResponderError::NotForOcspSigning { issuer: name });
        }
        let rng = SystemRandom::new();
        let key = signing_key(key_pkcs8, &rng).ok_or_else(|| ResponderError::UnreadableKey { issuer: name.clone() })?;
        let public = match &key {
            SigningKey::Ecdsa(pair, _) => pair.public_key().as_ref().to_vec(),
            SigningKey::Rsa(pair) => pair.public_key().as_ref().to_vec(),
        };
        let certified = parsed.public_key().subject_public_key.data.as_ref();
        if public.as_slice() != certified {
            return Err(ResponderError::KeyMismatch { issuer: name });
        }
        let (not_before, not_after) = (instant(parsed.validity().not_before), instant(parsed.validity().not_after));
        if now < not_before || now > not_after {
            return Err(ResponderError::OutsideValidity { issuer: name, not_before, not_after });
        }
        let certificate = Certificate::from_der(certificate_der).map_err(|e| unreadable(e.to_string()))?;
        Ok(Self {
            issuer: issuer.id.clone(),
            certificate,
            key,
            key_hash: Sha1::digest(certified).to_vec(),
            not_before,
            not_after,
            rng,
        })
    }

    /// Whether the certificate is within its validity at `now`.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// The signature algorithm of this key, as a response names it.
    pub(crate) fn algorithm(&self) -> AlgorithmIdentifierOwned {
        match &self.key {
            SigningKey::Ecdsa(_, oid) => AlgorithmIdentifierOwned { oid: *oid, parameters: None },
            SigningKey::Rsa(_) => AlgorithmIdentifierOwned { oid: OID_RSA_SHA256, parameters: Some(Any::null()) },
        }
    }

    /// Signs `message` (a DER `ResponseData`).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        match &self.key {
            SigningKey::Ecdsa(pair, _) => Ok(pair.sign(&self.rng, message)?.as_ref().to_vec()),
            SigningKey::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut out)?;
                Ok(out)
            }
        }
    }
}
