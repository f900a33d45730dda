//! Reconciliation: the CA's CRL against the registry.
//!
//! The CRL is fetched first and verified (signature under the pinned issuer
//! certificate, issuer name, nextUpdate); a CRL that fails is rejected loudly
//! and nothing is concluded from it. Then, for each certificate the registry
//! holds or has revoked, the CRL must list it (certificateHold for a hold,
//! another reason for a revocation); one that is missing or listed wrongly
//! is sent again. A CRL entry the registry does not explain is reported, not
//! acted on: only people decide to lift a hold. Certificates with a change
//! still on its way, or delivered after the fetch began, are left out of
//! both checks, since the CRL cannot show them yet.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use hotline_ca::{CrlError, SendError, VerifiedCrl};
use hotline_core::CertificateStatus;

use crate::Worker;

/// What one reconciliation of one issuer found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub issuer: String,
    pub crl_number: Option<String>,
    pub crl_entries: usize,
    /// Registry serials missing from the CRL (or listed with the wrong kind of reason).
    pub missing: Vec<String>,
    /// Event ids queued to repair them.
    pub resent: Vec<String>,
    /// CRL serials the registry does not explain.
    pub unexplained: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("could not fetch the CRL: {0}")]
    Unavailable(#[from] SendError),
    #[error("CRL rejected: {0}")]
    Rejected(#[from] CrlError),
    #[error("could not read the registry: {0:#}")]
    Store(#[from] anyhow::Error),
}

impl Worker {
    /// Reconciles one issuer's CRL with the registry.
    pub async fn reconcile(&self, issuer: &str) -> Result<ReconcileReport, ReconcileError> {
        let result = self.compare(issuer).await;
        match &result {
            Ok(report) => {
                self.metrics.reconciled(issuer, "ok");
                self.metrics.drift(issuer, "missing", report.missing.len());
                self.metrics.drift(issuer, "unexplained", report.unexplained.len());
                if report.missing.is_empty() && report.unexplained.is_empty() {
                    tracing::info!(issuer, crl_number = ?report.crl_number, entries = report.crl_entries, "CRL agrees with the registry");
                } else {
                    tracing::warn!(
                        issuer, crl_number = ?report.crl_number, missing = ?report.missing,
                        resent = ?report.resent, unexplained = ?report.unexplained,
                        "CRL drift: missing entries re-sent, unexplained entries reported"
                    );
                }
            }
            Err(ReconcileError::Rejected(e)) => {
                self.metrics.reconciled(issuer, "crl_rejected");
                tracing::error!(issuer, error = %e, "CRL REJECTED: it does not verify; the CA's published revocations cannot be trusted");
            }
            Err(ReconcileError::Unavailable(e)) => {
                self.metrics.reconciled(issuer, "ca_unavailable");
                tracing::warn!(issuer, error = %e, "could not fetch the CRL for reconciliation");
            }
            Err(ReconcileError::Store(e)) => {
                self.metrics.reconciled(issuer, "store_failed");
                tracing::error!(issuer, error = %format!("{e:#}"), "could not read the registry for reconciliation");
            }
        }
        result
    }

    async fn compare(&self, issuer: &str) -> Result<ReconcileReport, ReconcileError> {
        let started = Utc::now();
        let trusted = self.trust.get_or_fetch(issuer, &self.ca).await?;
        let der = self.ca.crl(issuer).await?;
        let crl = trusted.verify(&der, Utc::now())?;
        let listed = self.store.certificates_not_good(issuer).await?;
        let in_flight: HashSet<String> =
            self.store.serials_in_flight(issuer, started).await?.iter().map(|s| VerifiedCrl::canonical(s)).collect();
        let on_crl: HashMap<&str, bool> = crl.entries.iter().map(|e| (e.serial.as_str(), e.is_hold())).collect();

        let mut report = ReconcileReport {
            issuer: issuer.to_owned(),
            crl_number: crl.number.clone(),
            crl_entries: crl.entries.len(),
            ..ReconcileReport::default()
        };
        let mut explained = HashSet::with_capacity(listed.len());
        for cert in &listed {
            let serial = VerifiedCrl::canonical(&cert.serial);
            let agrees = match on_crl.get(serial.as_str()) {
                Some(&is_hold) => is_hold == (cert.status == CertificateStatus::Suspended),
                None => false,
            };
            if !agrees && !in_flight.contains(&serial) {
                report.missing.push(cert.serial.clone());
                let why = if on_crl.contains_key(serial.as_str()) {
                    "listed with the wrong reason"
                } else {
                    "missing from the CRL"
                };
                if let Some(event_id) = self.store.resend_status(cert.id, why, Utc::now()).await? {
                    report.resent.push(event_id);
                }
            }
            explained.insert(serial);
        }
        report.unexplained = crl
            .entries
            .iter()
            .filter(|e| !explained.contains(&e.serial) && !in_flight.contains(&e.serial))
            .map(|e| e.serial.clone())
            .collect();
        if !report.resent.is_empty() {
            self.wake.notify_one();
        }
        Ok(report)
    }
}
