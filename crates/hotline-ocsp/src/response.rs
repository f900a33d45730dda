//! Building OCSP responses: a signed `BasicOCSPResponse` for the answers
//! (RFC 6960 §4.2.1), with the responder's certificate included so clients
//! verify it to the issuer, or an unsigned error status.

use chrono::{DateTime, Utc};
use der::Encode;
use der::asn1::{BitString, GeneralizedTime, OctetString};
use hotline_core::RevocationReason;
use sha2::Digest;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus, ResponderId, ResponseBytes,
    ResponseData, RevokedInfo, SingleResponse, Version,
};

use crate::http_caching::CachingHeaders;
use crate::request::Asked;
use crate::responder::Responder;

/// What is known of one certificate asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Known {
    Good,
    /// Held (`certificateHold`) or revoked for good, since when and why.
    Revoked {
        since: DateTime<Utc>,
        reason: Option<RevocationReason>,
    },
    /// The registry does not hold this serial.
    Unknown,
}

/// A signed response and its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// DER of the `OCSPResponse`, shared: a kept response is sent without a copy.
    pub der: bytes::Bytes,
    pub this_update: DateTime<Utc>,
    pub next_update: DateTime<Utc>,
    /// The first 16 bytes of the response's SHA-256: its HTTP ETag, and its signed-response cache's jitter.
    pub digest: [u8; 16],
    /// Its HTTP caching headers, from its digest and its times.
    pub http: CachingHeaders,
}

/// A response could not be built or signed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not build the OCSP response: {0}")]
pub struct SignError(String);

impl From<der::Error> for SignError {
    fn from(e: der::Error) -> Self {
        SignError(e.to_string())
    }
}

/// An instant as OCSP writes it: GeneralizedTime in whole seconds, rounded down
/// (RFC 5280 §4.1.2.5.2 allows no fraction).
fn generalized(t: DateTime<Utc>) -> Result<OcspGeneralizedTime, der::Error> {
    let seconds = u64::try_from(t.timestamp()).unwrap_or(0);
    Ok(OcspGeneralizedTime(GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(seconds))?))
}

/// An instant rounded down to the second, as it is signed.
pub fn to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// The entry's reason by its RFC 5280 code, which the vocabulary keeps.
fn crl_reason(reason: RevocationReason) -> Result<CrlReason, der::Error> {
    CrlReason::try_from(u32::from(reason.code()))
}

fn status(known: &Known) -> Result<CertStatus, der::Error> {
    Ok(match known {
        Known::Good => CertStatus::good(),
        Known::Unknown => CertStatus::unknown(),
        Known::Revoked { since, reason } => CertStatus::Revoked(RevokedInfo {
            revocation_time: generalized(*since)?,
            revocation_reason: reason.map(crl_reason).transpose()?,
        }),
    })
}

/// Signs the answers to `asked`, complete as of `this_update` and valid until
/// `next_update`, with the nonce echoed if the request sent one.
pub fn sign(
    responder: &Responder,
    answers: &[(&Asked, Known)],
    this_update: DateTime<Utc>,
    next_update: DateTime<Utc>,
    nonce: Option<&Extension>,
    produced_at: DateTime<Utc>,
) -> Result<Signed, SignError> {
    let (this_update, next_update) = (to_second(this_update), to_second(next_update));
    let responses = answers
        .iter()
        .map(|(asked, known)| {
            Ok(SingleResponse {
                cert_id: asked.cert_id.clone(),
                cert_status: status(known)?,
                this_update: generalized(this_update)?,
                next_update: Some(generalized(next_update)?),
                single_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, der::Error>>()?;
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(responder.key_hash.clone())?),
        produced_at: generalized(produced_at)?,
        responses,
        response_extensions: nonce.map(|n| vec![n.clone()]),
    };
    let signature = responder.sign(&data.to_der()?).map_err(|_| SignError("the signature failed".into()))?;
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: responder.algorithm(),
        signature: BitString::from_bytes(&signature)?,
        certs: Some(vec![responder.certificate.clone()]),
    };
    let response = OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: const_oid_basic(),
            response: OctetString::new(basic.to_der()?)?,
        }),
    };
    let der = response.to_der()?;
    let mut digest = [0; 16];
    digest.copy_from_slice(&sha2::Sha256::digest(&der)[..16]);
    let (der, http) = CachingHeaders::with_response(der, &digest, this_update, next_update);
    Ok(Signed { der, this_update, next_update, digest, http })
}

fn const_oid_basic() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1")
}

/// An unsigned error response: `malformedRequest`, `internalError`, `tryLater` or `unauthorized`.
pub fn error(status: OcspResponseStatus) -> Vec<u8> {
    // Two bytes of status in a SEQUENCE: the encoding cannot fail, and is written out if it somehow did.
    let code = status as u8;
    OcspResponse { response_status: status, response_bytes: None }
        .to_der()
        .unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, code])
}

/// What a response says of each certificate, for clients, tools and
/// benchmarks (the signature is not checked here: `openssl` does that in the
/// tests). `None` unless it is a successful basic response.
pub fn read_statuses(der: &[u8]) -> Option<Vec<Known>> {
    use der::Decode;
    let response = OcspResponse::from_der(der).ok()?;
    let bytes = response.response_bytes?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).ok()?;
    let read = |status: &CertStatus| match status {
        CertStatus::Good(_) => Known::Good,
        CertStatus::Unknown(_) => Known::Unknown,
        CertStatus::Revoked(info) => Known::Revoked {
            since: DateTime::from_timestamp(
                i64::try_from(info.revocation_time.0.to_unix_duration().as_secs()).unwrap_or(0),
                0,
            )
            .unwrap_or_default(),
            reason: info.revocation_reason.and_then(|r| RevocationReason::from_code(r as u8)),
        },
    };
    Some(basic.tbs_response_data.responses.iter().map(|r| read(&r.cert_status)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_of_the_vocabulary_has_its_ocsp_reason() {
        for reason in RevocationReason::ALL {
            let ocsp = crl_reason(*reason).unwrap();
            assert_eq!(ocsp as u32, u32::from(reason.code()), "{reason:?}");
        }
        assert_eq!(crl_reason(RevocationReason::CertificateHold).unwrap(), CrlReason::CertificateHold);
        assert_eq!(crl_reason(RevocationReason::RemoveFromCrl).unwrap(), CrlReason::RemoveFromCRL);
    }
}
