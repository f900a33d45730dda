//! Reading an OCSP request (RFC 6960 §4.1): its CertIDs, each hashed with
//! SHA-1 or SHA-256, and its nonce (RFC 8954/9654). Anything else about it
//! (a requestor name, a signature) is read past and not relied on.

use der::Decode;
use hotline_core::Serial;
use x509_cert::ext::Extension;
use x509_ocsp::{CertId, OcspRequest};

/// The most CertIDs one request may ask about.
pub const MAX_CERT_IDS: usize = 10;
/// The largest request accepted, in bytes (and, for `GET`, once decoded).
pub const MAX_REQUEST_BYTES: usize = 10_000;
/// The nonce's bounds (RFC 9654 §2.1).
const NONCE_BYTES: std::ops::RangeInclusive<usize> = 1..=128;

const OID_SHA1: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_NONCE: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// How a CertID hashes its issuer's name and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    Sha1,
    Sha256,
}

/// Why a request is answered `malformedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the request is over {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error("the request is not a DER OCSPRequest: {0}")]
    NotDer(String),
    #[error("the request asks about no certificate")]
    Empty,
    #[error("the request asks about more than {MAX_CERT_IDS} certificates")]
    TooMany,
    #[error("a CertID is hashed with an algorithm other than SHA-1 or SHA-256")]
    UnsupportedHash,
    #[error("a CertID's hashes are not as long as its algorithm's")]
    BadHashLength,
    #[error("the nonce must be 1 to 128 bytes")]
    BadNonce,
    #[error("a serial number is longer than 20 bytes")]
    SerialTooLong,
    #[error("the request in the path is not base64 in either alphabet")]
    NotBase64,
}

/// One certificate asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// As the client sent it: the answer repeats it.
    pub cert_id: CertId,
    pub hash: HashAlgorithm,
    /// The serial as lowercase hex without leading zero bytes (the registry's form).
    pub serial: Serial,
}

impl Asked {
    pub fn name_hash(&self) -> &[u8] {
        self.cert_id.issuer_name_hash.as_bytes()
    }

    pub fn key_hash(&self) -> &[u8] {
        self.cert_id.issuer_key_hash.as_bytes()
    }
}

/// A request's nonce extension, echoed as sent.
pub type Nonce = Extension;

/// A request read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub asked: Vec<Asked>,
    /// The nonce extension as sent, to echo back.
    pub nonce: Option<Extension>,
}

/// Reads a DER `OCSPRequest`.
pub fn parse(der: &[u8]) -> Result<Query, Malformed> {
    if der.len() > MAX_REQUEST_BYTES {
        return Err(Malformed::TooLarge);
    }
    let request = OcspRequest::from_der(der).map_err(|e| Malformed::NotDer(e.to_string()))?;
    let tbs = request.tbs_request;
    if tbs.request_list.is_empty() {
        return Err(Malformed::Empty);
    }
    if tbs.request_list.len() > MAX_CERT_IDS {
        return Err(Malformed::TooMany);
    }
    let asked = tbs.request_list.into_iter().map(|r| asked(r.req_cert)).collect::<Result<Vec<_>, _>>()?;
    let nonce = match tbs.request_extensions.into_iter().flatten().find(|e| e.extn_id == OID_NONCE) {
        None => None,
        Some(extension) => {
            check_nonce(extension.extn_value.as_bytes())?;
            Some(extension)
        }
    };
    Ok(Query { asked, nonce })
}

fn asked(cert_id: CertId) -> Result<Asked, Malformed> {
    let (hash, len) = match cert_id.hash_algorithm.oid {
        oid if oid == OID_SHA1 => (HashAlgorithm::Sha1, 20),
        oid if oid == OID_SHA256 => (HashAlgorithm::Sha256, 32),
        _ => return Err(Malformed::UnsupportedHash),
    };
    if cert_id.issuer_name_hash.as_bytes().len() != len || cert_id.issuer_key_hash.as_bytes().len() != len {
        return Err(Malformed::BadHashLength);
    }
    let serial =
        Serial::parse(&canonical_serial(cert_id.serial_number.as_bytes())).map_err(|_| Malformed::SerialTooLong)?;
    Ok(Asked { cert_id, hash, serial })
}

/// The nonce is usually an OCTET STRING inside the extension's value
/// (what `openssl` sends); a client that puts the bytes there bare is read too.
fn check_nonce(value: &[u8]) -> Result<(), Malformed> {
    let nonce_len = match der::asn1::OctetString::from_der(value) {
        Ok(inner) => inner.as_bytes().len(),
        Err(_) => value.len(),
    };
    if NONCE_BYTES.contains(&nonce_len) { Ok(()) } else { Err(Malformed::BadNonce) }
}

/// Lowercase hex without leading zero bytes (`00` for zero).
pub fn canonical_serial(bytes: &[u8]) -> String {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    if first == bytes.len() { "00".to_owned() } else { hex::encode(&bytes[first..]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_lose_their_leading_zero_bytes() {
        assert_eq!(canonical_serial(&[0x00, 0x8a, 0x01]), "8a01");
        assert_eq!(canonical_serial(&[0x0a, 0x00]), "0a00");
        assert_eq!(canonical_serial(&[0x00]), "00");
    }

    #[test]
    fn what_is_not_an_ocsp_request_is_malformed() {
        assert!(matches!(parse(b"not der"), Err(Malformed::NotDer(_))));
        assert_eq!(parse(&[0u8; MAX_REQUEST_BYTES + 1]), Err(Malformed::TooLarge));
        assert!(matches!(parse(&[0x30, 0x00]), Err(Malformed::NotDer(_))));
    }
}
