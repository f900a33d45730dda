//! The issuers the responder answers for, each known by the hashes a CertID
//! names it with: the hash of its subject name and of its public key
//! (RFC 6960 §4.1.1), in SHA-1 and SHA-256, computed from its certificate.

use der::{Decode, Encode};
use hotline_core::IssuerId;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use crate::request::{Asked, HashAlgorithm};

/// An issuer's certificate and the hashes that name it.
#[derive(Debug, Clone)]
pub struct KnownIssuer {
    pub id: IssuerId,
    /// DER.
    pub certificate: Vec<u8>,
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
}

/// The issuer's certificate does not read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the certificate of issuer {issuer} does not read: {reason}")]
pub struct BadIssuerCertificate {
    pub issuer: String,
    pub reason: String,
}

impl KnownIssuer {
    pub fn from_der(id: IssuerId, certificate: Vec<u8>) -> Result<Self, BadIssuerCertificate> {
        let bad = |reason: String| BadIssuerCertificate { issuer: id.to_string(), reason };
        let parsed = Certificate::from_der(&certificate).map_err(|e| bad(e.to_string()))?;
        let name = parsed.tbs_certificate.subject.to_der().map_err(|e| bad(e.to_string()))?;
        let key = parsed.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes().to_vec();
        Ok(Self {
            sha1: (Sha1::digest(&name).to_vec(), Sha1::digest(&key).to_vec()),
            sha256: (Sha256::digest(&name).to_vec(), Sha256::digest(&key).to_vec()),
            id,
            certificate,
        })
    }

    /// An OCSP request (DER) for one of this issuer's serials, with a SHA-1
    /// CertID (as `openssl` sends) and the nonce if given: for clients, tools
    /// and benchmarks.
    pub fn request(&self, serial: &[u8], nonce: Option<&[u8]>) -> Result<Vec<u8>, der::Error> {
        use der::asn1::{Null, ObjectIdentifier, OctetString};
        let cert_id = x509_ocsp::CertId {
            hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
                parameters: Some(der::asn1::Any::from(Null)),
            },
            issuer_name_hash: OctetString::new(self.sha1.0.clone())?,
            issuer_key_hash: OctetString::new(self.sha1.1.clone())?,
            serial_number: x509_cert::serial_number::SerialNumber::new(serial)?,
        };
        let request_extensions = match nonce {
            None => None,
            Some(nonce) => Some(vec![x509_cert::ext::Extension {
                extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2"),
                critical: false,
                extn_value: OctetString::new(OctetString::new(nonce)?.to_der()?)?,
            }]),
        };
        let tbs_request = x509_ocsp::TbsRequest {
            request_list: vec![x509_ocsp::Request { req_cert: cert_id, single_request_extensions: None }],
            request_extensions,
            ..x509_ocsp::TbsRequest::default()
        };
        x509_ocsp::OcspRequest { tbs_request, optional_signature: None }.to_der()
    }

    /// Whether a CertID names this issuer.
    pub fn names(&self, asked: &Asked) -> bool {
        let (name, key) = match asked.hash {
            HashAlgorithm::Sha1 => &self.sha1,
            HashAlgorithm::Sha256 => &self.sha256,
        };
        asked.name_hash() == name.as_slice() && asked.key_hash() == key.as_slice()
    }
}
