//! A client for what only ca-sim has, beside the protocol the worker speaks:
//! the faults it injects, how often it applied each event, and an entry
//! dropped behind the registry's back. Tests and benchmarks drive ca-sim with
//! it; the production CA client (`hotline_ca::CaClient`) knows none of this.

use std::time::Duration;

use anyhow::{Context, bail};
use hotline_ca::{CaStats, Faults};
use serde::de::DeserializeOwned;

/// ca-sim's control routes at one base URL.
#[derive(Debug, Clone)]
pub struct Control {
    base: String,
    http: reqwest::Client,
}

impl Control {
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(Self { base: base_url.trim_end_matches('/').to_owned(), http })
    }

    /// Replaces the injected faults; answers the faults now in force.
    pub async fn set_faults(&self, faults: &Faults) -> anyhow::Result<Faults> {
        json(self.http.post(format!("{}/v1/faults", self.base)).json(faults).send().await).await
    }

    /// How often each event was applied and replayed.
    pub async fn stats(&self) -> anyhow::Result<CaStats> {
        json(self.http.get(format!("{}/v1/stats", self.base)).send().await).await
    }

    /// A responder certificate (PEM) for `issuer` and the DER public key,
    /// valid for only `validity`: to see what a responder does when its
    /// certificate runs out.
    pub async fn short_lived_responder(
        &self,
        issuer: &str,
        public_key: &[u8],
        validity: Duration,
    ) -> anyhow::Result<String> {
        let request = hotline_ca::ResponderRequest::new(public_key, Some(validity.as_secs()));
        let url = format!("{}/v1/issuers/{issuer}/ocsp-responder", self.base);
        let answer: hotline_ca::ResponderCertificate = json(self.http.post(url).json(&request).send().await).await?;
        Ok(answer.certificate_pem)
    }

    /// Drops a CRL entry without an event, as a CA that lost a change would.
    pub async fn forget(&self, issuer: &str, serial: &str) -> anyhow::Result<()> {
        let url = format!("{}/v1/issuers/{issuer}/entries/{serial}", self.base);
        successful(self.http.delete(url).send().await).await.map(drop)
    }
}

async fn successful(response: reqwest::Result<reqwest::Response>) -> anyhow::Result<reqwest::Response> {
    let response = response.context("ca-sim did not answer")?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("ca-sim answered {status}: {body}");
    }
    Ok(response)
}

async fn json<T: DeserializeOwned>(response: reqwest::Result<reqwest::Response>) -> anyhow::Result<T> {
    Ok(successful(response).await?.json().await?)
}
