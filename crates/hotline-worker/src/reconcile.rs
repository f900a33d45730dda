//! Reconciliation: the CA's CRL against the registry.
//!
//! The CRL is fetched first and verified (signature under the pinned issuer
//! certificate, issuer name, nextUpdate); a CRL that fails is rejected loudly
//! and nothing is concluded from it. Then, for each certificate the registry
//! holds or has revoked, the CRL must list it (certificateHold for a hold,
//! another reason for a revocation); one that is missing or listed wrongly
//! is sent again. A CRL entry the registry does not explain is reported, not
//! acted on: only people decide to lift a hold. Certificates with a change
//! still on its way, or delivered at or after the CRL was issued (or the
//! fetch began, if earlier), are left out of both checks, since the CRL
//! cannot show them yet. The registry is read in pages, so memory holds the
//! CRL and one page.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use hotline_ca::{CrlError, SendError, VerifiedCrl};
use hotline_core::CertificateStatus;

use crate::Worker;

/// Certificates read from the registry per page while reconciling.
const RECONCILE_PAGE: i64 = 10_000;

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
    #[error("could not read the registry: {0}")]
    Store(#[from] hotline_store::Error),
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
        // A CA publishes its CRL on a schedule of its own (JPKI's, about
        // daily): a change delivered after the CRL was issued is not on it yet.
        let since = started.min(crl.this_update);
        let in_flight: HashSet<String> =
            self.store.serials_in_flight(issuer, since).await?.iter().map(|s| VerifiedCrl::canonical(s)).collect();
        // Each entry is taken out as the registry explains it; what is left, it does not explain.
        let mut on_crl: HashMap<&str, bool> = crl.entries.iter().map(|e| (e.serial.as_str(), e.is_hold())).collect();

        let mut report = ReconcileReport {
            issuer: issuer.to_owned(),
            crl_number: crl.number.clone(),
            crl_entries: crl.entries.len(),
            ..ReconcileReport::default()
        };
        // The registry's side in pages, each seeking where the last ended:
        // memory holds the CRL and one page, however many the issuer has.
        let mut after = String::new();
        loop {
            let page = self.store.certificates_not_good_page(issuer, &after, RECONCILE_PAGE).await?;
            for cert in &page {
                let serial = VerifiedCrl::canonical(&cert.serial);
                let listed = on_crl.remove(serial.as_str());
                let agrees = listed.is_some_and(|is_hold| is_hold == (cert.status == CertificateStatus::Suspended));
                if agrees || in_flight.contains(&serial) {
                    continue;
                }
                report.missing.push(cert.serial.clone());
                let why = if listed.is_some() { "listed with the wrong reason" } else { "missing from the CRL" };
                if let Some(event_id) = self.store.resend_status(issuer, &cert.serial, why, Utc::now()).await? {
                    report.resent.push(event_id);
                }
            }
            match page.last() {
                Some(last) if page.len() as i64 == RECONCILE_PAGE => after.clone_from(&last.serial),
                _ => break,
            }
        }
        report.unexplained =
            on_crl.into_keys().filter(|serial| !in_flight.contains(*serial)).map(str::to_owned).collect();
        report.unexplained.sort();
        if !report.resent.is_empty() {
            self.wake.notify_one();
        }
        Ok(report)
    }
}
