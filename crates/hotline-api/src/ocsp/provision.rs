//! Where the responder's certificates come from. Each issuer's own
//! certificate comes from the trust directory (`{issuer}.pem`, as for CRL
//! verification) or the CA's `ca.pem`. Its delegated responder certificate
//! comes from the responder directory (`{issuer}.pem` and `{issuer}.key`,
//! PKCS#8), or, with none configured, from the CA: a fresh key per instance,
//! certified through the CA's responder route (ca-sim has one), renewed
//! before it expires. A pair that does not check out (another issuer, no
//! OCSPSigning purpose, another key, expired) is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use hotline_ca::{CaClient, SendError};
use hotline_core::IssuerId;
use hotline_ocsp::{KnownIssuer, Responder};

use super::OcspService;

/// Where the certificates come from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub issuers: Vec<IssuerId>,
    /// `{issuer}.pem` issuer certificates; otherwise fetched from the CA.
    pub trust_dir: Option<PathBuf>,
    /// `{issuer}.pem` + `{issuer}.key` responder pairs; otherwise certified by the CA.
    pub responder_dir: Option<PathBuf>,
    pub ca: Option<CaClient>,
}

/// How often a responder that is missing is asked for again, and certificates are checked for renewal.
const RETRY_EVERY: Duration = Duration::from_secs(5);

fn pem_der(text: &[u8], what: &str) -> anyhow::Result<Vec<u8>> {
    hotline_ocsp::pem_contents(text).with_context(|| format!("{what} is not PEM"))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("could not read {}", path.display()))
}

/// The issuer's certificate: from the trust directory, or the CA.
async fn issuer_certificate(sources: &Sources, issuer: &IssuerId) -> anyhow::Result<KnownIssuer> {
    let der = match (&sources.trust_dir, &sources.ca) {
        (Some(dir), _) => {
            let path = dir.join(format!("{issuer}.pem"));
            pem_der(&read(&path)?, &path.display().to_string())?
        }
        (None, Some(ca)) => {
            let pem =
                ca.issuer_pem(issuer.as_str()).await.with_context(|| format!("could not fetch {issuer}'s ca.pem"))?;
            pem_der(pem.as_bytes(), &format!("{issuer}'s ca.pem"))?
        }
        (None, None) => bail!("no trust directory and no CA to take {issuer}'s certificate from"),
    };
    Ok(KnownIssuer::from_der(issuer.clone(), der)?)
}

/// A responder from the directory: refused if it does not check out.
fn responder_from_dir(dir: &Path, issuer: &KnownIssuer) -> anyhow::Result<Responder> {
    let (cert_path, key_path) = (dir.join(format!("{}.pem", issuer.id)), dir.join(format!("{}.key", issuer.id)));
    let certificate = pem_der(&read(&cert_path)?, &cert_path.display().to_string())?;
    let key = pem_der(&read(&key_path)?, &key_path.display().to_string())?;
    Ok(Responder::new(issuer, &certificate, &key, Utc::now())?)
}

/// A responder certified by the CA for a fresh key.
async fn responder_from_ca(ca: &CaClient, issuer: &KnownIssuer) -> anyhow::Result<Result<Responder, SendError>> {
    let (key, public_key) = hotline_ocsp::generate_key().map_err(|_| anyhow::anyhow!("could not generate a key"))?;
    let pem = match ca.responder_certificate(issuer.id.as_str(), &public_key).await {
        Ok(pem) => pem,
        Err(e) => return Ok(Err(e)),
    };
    let certificate = pem_der(pem.as_bytes(), "the CA's responder certificate")?;
    Ok(Ok(Responder::new(issuer, &certificate, &key, Utc::now())?))
}

/// What start-up could not finish, to be retried in the background.
pub struct Pending {
    sources: Sources,
    missing: Vec<IssuerId>,
}

/// Installs what can be installed now. Refuses (an error) a responder
/// directory that lacks or holds a bad pair, and a CA that certifies a bad
/// one; leaves for later (`Pending`) what an unreachable CA could not give.
pub async fn provision(service: &OcspService, sources: Sources) -> anyhow::Result<Pending> {
    let mut missing = Vec::new();
    for id in &sources.issuers {
        let issuer = match issuer_certificate(&sources, id).await {
            Ok(issuer) => Arc::new(issuer),
            Err(e) if sources.trust_dir.is_none() && sources.responder_dir.is_none() => {
                tracing::warn!(issuer = %id, error = format!("{e:#}"), "OCSP: the issuer's certificate is not available yet; answering tryLater meanwhile");
                missing.push(id.clone());
                continue;
            }
            Err(e) => return Err(e.context(format!("OCSP: issuer {id}"))),
        };
        match (&sources.responder_dir, &sources.ca) {
            (Some(dir), _) => {
                let responder = responder_from_dir(dir, &issuer)
                    .with_context(|| format!("OCSP responder directory {}", dir.display()))?;
                log_installed(&responder, "the responder directory");
                service.install(issuer, Some(Arc::new(responder)));
            }
            (None, Some(ca)) => match responder_from_ca(ca, &issuer).await? {
                Ok(responder) => {
                    log_installed(&responder, "the CA");
                    service.install(issuer, Some(Arc::new(responder)));
                }
                Err(e) => {
                    tracing::warn!(issuer = %id, error = %e, "OCSP: the CA did not certify a responder yet; answering tryLater meanwhile");
                    service.install(issuer, None);
                    missing.push(id.clone());
                }
            },
            (None, None) => bail!("OCSP: neither a responder directory nor a CA to certify a responder for {id}"),
        }
    }
    Ok(Pending { sources, missing })
}

fn log_installed(responder: &Responder, from: &str) {
    tracing::info!(issuer = %responder.issuer, not_after = %responder.not_after, from, "OCSP responder certificate installed");
}

/// Keeps the responders current until the process ends: retries what start-up
/// could not finish, and, for certificates the CA gives, replaces each once a
/// third of its lifetime is left.
pub async fn keep_current(service: Arc<OcspService>, mut pending: Pending) {
    loop {
        tokio::time::sleep(RETRY_EVERY).await;
        let Some(ca) = pending.sources.ca.clone() else {
            if pending.missing.is_empty() {
                return;
            }
            continue;
        };
        if !pending.missing.is_empty() {
            let retry = Sources { issuers: std::mem::take(&mut pending.missing), ..pending.sources.clone() };
            match provision(&service, retry).await {
                Ok(again) => pending.missing = again.missing,
                Err(e) => tracing::error!(error = format!("{e:#}"), "OCSP: a responder certificate was refused"),
            }
        }
        if pending.sources.responder_dir.is_some() {
            continue;
        }
        let now = Utc::now();
        for served in service.served() {
            let Some(responder) = &served.responder else { continue };
            let left = responder.not_after - now;
            if left > (responder.not_after - responder.not_before) / 3 {
                continue;
            }
            match responder_from_ca(&ca, &served.issuer).await {
                Ok(Ok(renewed)) => {
                    log_installed(&renewed, "the CA (renewed)");
                    service.install(served.issuer.clone(), Some(Arc::new(renewed)));
                }
                Ok(Err(e)) => {
                    tracing::warn!(issuer = %served.issuer.id, error = %e, "OCSP: could not renew the responder certificate yet")
                }
                Err(e) => {
                    tracing::error!(issuer = %served.issuer.id, error = format!("{e:#}"), "OCSP: the renewed responder certificate was refused")
                }
            }
        }
    }
}
