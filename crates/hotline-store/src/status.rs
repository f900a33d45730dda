//! Certificate status for validators, with CRL semantics: a serial the
//! registry does not list is good (`None`), an issuer it does not know is an
//! error (callers check it against [`Store::issuers`]).

use hotline_core::{CertificateKind, IssuerId, Serial, StatusRecord};

use crate::Store;
use crate::rows::status_record;

/// How many keys one batch query asks for at most (keeps parameters under both databases' limits).
const BATCH_QUERY: usize = 500;

impl Store {
    /// The issuers the registry knows.
    pub async fn issuers(&self) -> crate::Result<Vec<IssuerId>> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT id FROM issuers ORDER BY id").fetch_all(self.pool()).await?;
        names.iter().map(|n| IssuerId::parse(n).map_err(|e| crate::error::unexpected!("issuer {n:?}: {e}"))).collect()
    }

    /// The issuers the registry knows, each with the kind of certificate it issues.
    pub async fn issuer_kinds(&self) -> crate::Result<Vec<(IssuerId, CertificateKind)>> {
        let rows = sqlx::query("SELECT id, kind FROM issuers ORDER BY id").fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                let id = crate::rows::text(row, "id")?;
                let issuer = IssuerId::parse(&id).map_err(|e| anyhow::anyhow!("issuer {id:?}: {e}"))?;
                Ok((issuer, crate::rows::word(row, "kind")?))
            })
            .collect()
    }

    /// The status of each (issuer, serial) listed in the registry; `None` for a
    /// serial it does not list. Issuers are not checked here.
    pub async fn certificate_statuses(&self, keys: &[(IssuerId, Serial)]) -> crate::Result<Vec<Option<StatusRecord>>> {
        let mut found = std::collections::HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_QUERY) {
            let sql = format!(
                "SELECT issuer, serial, status, reason, since FROM certificates WHERE (issuer, serial) IN (VALUES {})",
                crate::rows::value_pairs(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for (issuer, serial) in chunk {
                q = q.bind(issuer.as_str()).bind(serial.as_str());
            }
            for row in q.fetch_all(self.pool()).await? {
                let key = (crate::rows::text(&row, "issuer")?, crate::rows::text(&row, "serial")?);
                found.insert(key, status_record(&row)?);
            }
        }
        Ok(keys.iter().map(|(i, s)| found.get(&(i.as_str().to_owned(), s.as_str().to_owned())).copied()).collect())
    }
}
