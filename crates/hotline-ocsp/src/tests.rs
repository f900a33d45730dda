//! The responder's checks and a response's contents, against certificates
//! made here with rcgen: a delegate that checks out signs answers whose
//! signature verifies under its key and which repeat the CertID and the
//! nonce; one from another issuer, without OCSPSigning, for another key, or
//! outside its validity is refused, each for its reason.

use chrono::Utc;
use der::asn1::{Null, OctetString};
use der::{Decode, Encode};
use hotline_core::{IssuerId, RevocationReason};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use sha1::{Digest, Sha1};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, Request, TbsRequest};

use crate::{Known, KnownIssuer, Malformed, Responder, ResponderError, generate_key, parse, sign};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    known: KnownIssuer,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, format!("test {name}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let known = KnownIssuer::from_der(IssuerId::parse(name).unwrap(), cert.der().to_vec()).unwrap();
    Ca { issuer: Issuer::new(params, key), known }
}

/// A responder certificate from `by` for `public_key`, with or without OCSPSigning, valid from `days_from`.
fn delegate(by: &Ca, public_key: &[u8], ocsp_signing: bool, days_from: i64, days: i64) -> Vec<u8> {
    let key = rcgen::SubjectPublicKeyInfo::from_der(public_key).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "responder");
    if ocsp_signing {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(days_from);
    params.not_after = now + time::Duration::days(days_from + days);
    params.signed_by(&key, &by.issuer).unwrap().der().to_vec()
}

fn issuer_name(ca: &Ca) -> String {
    ca.known.id.to_string()
}

#[test]
fn a_sound_delegate_is_accepted_and_every_flaw_refused_for_its_reason() {
    let (ca, other) = (ca("jpki-auth"), ca("jpki-auth"));
    let (key, public) = generate_key().unwrap();
    let (_, stray_public) = generate_key().unwrap();
    let now = Utc::now();
    assert!(Responder::new(&ca.known, &delegate(&ca, &public, true, 0, 30), &key, now).is_ok());
    let refused = |cert: Vec<u8>| Responder::new(&ca.known, &cert, &key, now).unwrap_err();
    assert!(matches!(refused(delegate(&other, &public, true, 0, 30)), ResponderError::NotIssuedByIssuer { .. }));
    assert!(matches!(refused(delegate(&ca, &public, false, 0, 30)), ResponderError::NotForOcspSigning { .. }));
    assert!(matches!(refused(delegate(&ca, &stray_public, true, 0, 30)), ResponderError::KeyMismatch { .. }));
    assert!(matches!(refused(delegate(&ca, &public, true, -40, 30)), ResponderError::OutsideValidity { .. }));
    assert!(matches!(refused(delegate(&ca, &public, true, 2, 30)), ResponderError::OutsideValidity { .. }));
    assert!(matches!(refused(b"not a certificate".to_vec()), ResponderError::Unreadable { .. }));
    let bad_key = Responder::new(&ca.known, &delegate(&ca, &public, true, 0, 30), b"not a key", now).unwrap_err();
    assert_eq!(bad_key, ResponderError::UnreadableKey { issuer: issuer_name(&ca) });
}

fn cert_id(ca: &Ca, serial: &[u8]) -> CertId {
    let cert = x509_cert::Certificate::from_der(&ca.known.certificate).unwrap();
    let name = cert.tbs_certificate.subject.to_der().unwrap();
    let key = cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: der::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
            parameters: Some(der::asn1::Any::from(Null)),
        },
        issuer_name_hash: OctetString::new(Sha1::digest(&name).to_vec()).unwrap(),
        issuer_key_hash: OctetString::new(Sha1::digest(key).to_vec()).unwrap(),
        serial_number: SerialNumber::new(serial).unwrap(),
    }
}

fn request(ids: Vec<CertId>, nonce: Option<&[u8]>) -> Vec<u8> {
    let request_extensions = nonce.map(|n| {
        vec![Extension {
            extn_id: der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2"),
            critical: false,
            extn_value: OctetString::new(OctetString::new(n).unwrap().to_der().unwrap()).unwrap(),
        }]
    });
    let tbs_request = TbsRequest {
        request_list: ids.into_iter().map(|req_cert| Request { req_cert, single_request_extensions: None }).collect(),
        request_extensions,
        ..TbsRequest::default()
    };
    OcspRequest { tbs_request, optional_signature: None }.to_der().unwrap()
}

#[test]
fn requests_are_bounded_and_their_serials_read_as_the_registry_writes_them() {
    let ca = ca("jpki-auth");
    let query = parse(&request(vec![cert_id(&ca, &[0x00, 0x8a, 0x01])], Some(&[7; 16]))).unwrap();
    assert_eq!(query.asked[0].serial.as_str(), "8a01");
    assert!(ca.known.names(&query.asked[0]));
    assert!(!self::ca("jpki-auth").known.names(&query.asked[0]), "another key, another issuer");
    assert!(query.nonce.is_some());
    let eleven = (0..11u8).map(|i| cert_id(&ca, &[i + 1])).collect();
    assert_eq!(parse(&request(eleven, None)), Err(Malformed::TooMany));
    assert_eq!(parse(&request(Vec::new(), None)), Err(Malformed::Empty));
    assert_eq!(parse(&request(vec![cert_id(&ca, &[1])], Some(&[0; 129]))), Err(Malformed::BadNonce));
    assert!(parse(&request(vec![cert_id(&ca, &[0x7f; 20])], None)).is_ok(), "20 bytes is the most RFC 5280 allows");
    let mut sha512 = cert_id(&ca, &[1]);
    sha512.hash_algorithm.oid = der::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
    assert_eq!(parse(&request(vec![sha512], None)), Err(Malformed::UnsupportedHash));
}

#[test]
fn a_signed_response_verifies_and_says_what_was_known() {
    let ca = ca("jpki-auth");
    let (key, public) = generate_key().unwrap();
    let now = Utc::now();
    let responder = Responder::new(&ca.known, &delegate(&ca, &public, true, 0, 30), &key, now).unwrap();
    let query = parse(&request(vec![cert_id(&ca, &[1, 2]), cert_id(&ca, &[3, 4])], Some(b"a nonce"))).unwrap();
    let held = Known::Revoked { since: now, reason: Some(RevocationReason::CertificateHold) };
    let answers = [(&query.asked[0], held), (&query.asked[1], Known::Unknown)];
    let next = now + chrono::Duration::seconds(60);
    let signed = sign(&responder, &answers, now, next, query.nonce.as_ref(), now).unwrap();
    assert_eq!(signed.this_update.timestamp(), now.timestamp());
    assert_eq!(signed.next_update - signed.this_update, chrono::Duration::seconds(60));

    let response = OcspResponse::from_der(&signed.der).unwrap();
    let basic = BasicOcspResponse::from_der(response.response_bytes.unwrap().response.as_bytes()).unwrap();
    let tbs = basic.tbs_response_data.to_der().unwrap();
    let public_key = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&public).unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key.subject_public_key.raw_bytes())
        .verify(&tbs, basic.signature.raw_bytes())
        .expect("the signature verifies under the responder's key");
    let data = basic.tbs_response_data;
    assert_eq!(data.responses.len(), 2);
    assert_eq!(data.responses[0].cert_id, query.asked[0].cert_id, "the CertID as asked");
    match data.responses[0].cert_status {
        CertStatus::Revoked(info) => {
            assert_eq!(info.revocation_reason, Some(x509_cert::ext::pkix::CrlReason::CertificateHold));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(data.responses[1].cert_status, CertStatus::Unknown(_)));
    assert_eq!(data.response_extensions.unwrap()[0], query.nonce.unwrap(), "the nonce as sent");
    assert_eq!(basic.certs.unwrap().len(), 1, "the responder certificate goes with the answer");
}

#[test]
fn a_client_built_request_reads_back_and_a_response_reads_as_signed() {
    let ca = ca("jpki-sign");
    let (key, public) = generate_key().unwrap();
    let now = Utc::now();
    let responder = Responder::new(&ca.known, &delegate(&ca, &public, true, 0, 30), &key, now).unwrap();
    let query = parse(&ca.known.request(&[0x0a, 0x0b], Some(b"n")).unwrap()).unwrap();
    assert!(ca.known.names(&query.asked[0]) && query.asked[0].serial.as_str() == "0a0b" && query.nonce.is_some());
    let revoked = Known::Revoked { since: crate::to_second(now), reason: Some(RevocationReason::Superseded) };
    let signed = sign(&responder, &[(&query.asked[0], revoked)], now, now, None, now).unwrap();
    assert_eq!(crate::read_statuses(&signed.der), Some(vec![revoked]));
    assert_eq!(crate::read_statuses(&crate::error(crate::OcspResponseStatus::TryLater)), None);
}
