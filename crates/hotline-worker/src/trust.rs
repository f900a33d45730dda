//! The issuer certificates CRLs are verified against.
//!
//! In production they are configured (a directory of `{issuer}.pem`). Without
//! that, the worker pins each issuer's certificate the first time it fetches
//! it from the CA and logs that it did: a CRL signed by any other key is
//! rejected for the rest of the process's life.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use hotline_ca::{CaClient, SendError, TrustedIssuer};

#[derive(Clone, Default)]
pub struct TrustStore {
    pinned: Arc<Mutex<HashMap<String, TrustedIssuer>>>,
}

impl TrustStore {
    /// Reads `{issuer}.pem` for each file in `dir`.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Self> {
        let store = Self::default();
        for entry in std::fs::read_dir(dir).with_context(|| format!("could not read {}", dir.display()))? {
            let path = entry?.path();
            let (Some(issuer), Some("pem")) =
                (path.file_stem().and_then(|s| s.to_str()), path.extension().and_then(|s| s.to_str()))
            else {
                continue;
            };
            let pem = std::fs::read_to_string(&path)?;
            let trusted =
                TrustedIssuer::from_pem(&pem).with_context(|| format!("{} is not a certificate", path.display()))?;
            store.pin(issuer, trusted);
        }
        Ok(store)
    }

    pub fn pin(&self, issuer: &str, trusted: TrustedIssuer) {
        self.lock().insert(issuer.to_owned(), trusted);
    }

    /// The issuer's certificate, fetched from the CA and pinned if not known yet.
    pub async fn get_or_fetch(&self, issuer: &str, ca: &CaClient) -> Result<TrustedIssuer, SendError> {
        if let Some(t) = self.lock().get(issuer) {
            return Ok(t.clone());
        }
        let pem = ca.issuer_pem(issuer).await?;
        let trusted = TrustedIssuer::from_pem(&pem).map_err(|e| SendError::Unavailable(e.to_string()))?;
        tracing::warn!(issuer, "no configured issuer certificate: pinning the one the CA serves now");
        Ok(self.lock().entry(issuer.to_owned()).or_insert(trusted).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TrustedIssuer>> {
        self.pinned.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
