//! The issuing CAs: one ECDSA P-256 key and self-signed certificate per
//! issuer, created on first start and kept in the data directory, and the
//! CRLs they sign.

use std::path::Path;

use anyhow::Context;
use hotline_core::RevocationReason;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason as CrlReason,
    RevokedCertParams, SerialNumber, SubjectPublicKeyInfo,
};
use time::OffsetDateTime;

/// How long a CRL is valid after it is signed.
pub const CRL_VALIDITY: time::Duration = time::Duration::hours(24);

/// How long a delegated OCSP responder certificate is valid.
pub const RESPONDER_VALIDITY: time::Duration = time::Duration::days(30);

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): clients need not check the responder certificate's own status.
const OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// One issuing CA.
pub struct Authority {
    pub name: String,
    pub certificate_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A CRL entry to sign.
pub struct Revoked<'a> {
    pub serial: &'a [u8],
    pub since: OffsetDateTime,
    pub reason: RevocationReason,
}

impl Authority {
    /// Loads the issuer's key and certificate from `dir`, creating them on first start.
    pub fn open(dir: &Path, name: &str) -> anyhow::Result<Self> {
        let key_path = dir.join(format!("{name}.key.pem"));
        let cert_path = dir.join(format!("{name}.pem"));
        if !key_path.exists() || !cert_path.exists() {
            let (key_pem, cert_pem) = create(name)?;
            // Key first: a certificate without its key is useless, the reverse is recreated.
            std::fs::write(&key_path, key_pem).with_context(|| format!("could not write {}", key_path.display()))?;
            std::fs::write(&cert_path, cert_pem).with_context(|| format!("could not write {}", cert_path.display()))?;
            tracing::info!(issuer = name, dir = %dir.display(), "created issuing CA");
        }
        let key_pem = std::fs::read_to_string(&key_path)?;
        let certificate_pem = std::fs::read_to_string(&cert_path)?;
        let key =
            KeyPair::from_pem(&key_pem).with_context(|| format!("{} is not a readable key", key_path.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&certificate_pem, key)
            .with_context(|| format!("{} is not a readable CA certificate", cert_path.display()))?;
        Ok(Self { name: name.to_owned(), certificate_pem, issuer })
    }

    /// Signs a CRL listing `entries`.
    pub fn sign_crl<'a>(
        &self,
        number: u64,
        this_update: OffsetDateTime,
        entries: impl Iterator<Item = Revoked<'a>>,
    ) -> anyhow::Result<Vec<u8>> {
        let params = CertificateRevocationListParams {
            this_update,
            next_update: this_update + CRL_VALIDITY,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: entries
                .map(|e| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(e.serial),
                    revocation_time: e.since,
                    reason_code: Some(rcgen_reason(e.reason)),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer).context("could not sign the CRL")?.der().to_vec())
    }
}

impl Authority {
    /// Issues a delegated OCSP responder certificate (PEM) for a public key
    /// (a DER SubjectPublicKeyInfo): the OCSPSigning purpose and ocsp-nocheck,
    /// valid for `validity`, at most [`RESPONDER_VALIDITY`].
    pub fn issue_responder(&self, public_key_der: &[u8], validity: time::Duration) -> anyhow::Result<String> {
        let key = SubjectPublicKeyInfo::from_der(public_key_der).context("not a public key ca-sim can certify")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::OrganizationName, "hotline development CA (ca-sim)");
        params.distinguished_name.push(DnType::CommonName, format!("ca-sim {} OCSP responder", self.name));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
        // The extension's value is an ASN.1 NULL.
        params.custom_extensions = vec![CustomExtension::from_oid_content(OCSP_NOCHECK, vec![0x05, 0x00])];
        params.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
        let now = OffsetDateTime::now_utc();
        // A little slack before now, for clients whose clocks run behind.
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + validity.min(RESPONDER_VALIDITY);
        Ok(params.signed_by(&key, &self.issuer).context("could not sign the responder certificate")?.pem())
    }
}

fn create(name: &str) -> anyhow::Result<(String, String)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::OrganizationName, "hotline development CA (ca-sim)");
    params.distinguished_name.push(DnType::CommonName, format!("ca-sim {name}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((key.serialize_pem(), cert.pem()))
}

fn rcgen_reason(reason: RevocationReason) -> CrlReason {
    match reason {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::RemoveFromCrl => CrlReason::RemoveFromCrl,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => CrlReason::AaCompromise,
    }
}
