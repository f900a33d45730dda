//! ca-sim: a real X.509 certificate authority for development and tests.
//!
//! It keeps one issuing CA per issuer (keys and certificates in its data
//! directory), applies hold / release / revoke events idempotently by event
//! id, and publishes DER X.509 v2 CRLs signed by each issuer, re-signed with
//! a higher CRL number whenever they change. Faults (latency, 503s, hangs,
//! lost responses, bad CRL signatures) are set at start-up or at run time,
//! so the worker's handling of a misbehaving CA can be tested for real.
//! The HTTP API is described in ARCHITECTURE.md.

mod authority;
pub mod cli;
pub mod control;
mod http;
mod ledger;

use std::path::Path;
use std::sync::{Arc, Mutex};

use hotline_ca::Faults;
use tokio::net::TcpListener;

pub use http::router;

/// The issuers ca-sim serves unless told otherwise.
pub const DEFAULT_ISSUERS: [&str; 2] = ["jpki-sign", "jpki-auth"];

/// A running CA's shared state.
#[derive(Clone)]
pub struct CaSim {
    inner: Arc<Inner>,
}

struct Inner {
    authorities: Vec<authority::Authority>,
    ledger: Mutex<ledger::Ledger>,
    crls: Mutex<http::CrlCache>,
    faults: Mutex<Faults>,
}

impl CaSim {
    /// Opens (creating on first start) the CA kept in `data_dir`.
    pub fn open(data_dir: &Path, faults: Faults) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let issuers: Vec<String> = DEFAULT_ISSUERS.iter().map(|s| (*s).to_owned()).collect();
        let authorities = issuers
            .iter()
            .map(|name| authority::Authority::open(data_dir, name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ledger = ledger::Ledger::open(data_dir, &issuers)?;
        Ok(Self {
            inner: Arc::new(Inner {
                authorities,
                ledger: Mutex::new(ledger),
                crls: Mutex::new(http::CrlCache::default()),
                faults: Mutex::new(faults),
            }),
        })
    }

    /// Serves the HTTP API on `listener` until the future resolves or fails.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        axum::serve(listener, router(self)).await
    }

    /// The issuer's CA certificate, PEM.
    pub fn issuer_pem(&self, issuer: &str) -> Option<&str> {
        self.inner.authorities.iter().find(|a| a.name == issuer).map(|a| a.certificate_pem.as_str())
    }
}
