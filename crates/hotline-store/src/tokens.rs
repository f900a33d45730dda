//! API tokens: a random secret shown once, stored only as its SHA-256.
//! A plain hash suffices because the secret has 256 random bits.

use hotline_core::Role;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::Store;
use crate::rows::{text, word};

/// A token as the API sees it after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// A token from a row with its `id`, `name` and `role`.
pub(crate) fn token_record(row: &sqlx::any::AnyRow) -> crate::Result<TokenRecord> {
    Ok(TokenRecord { id: text(row, "id")?, name: text(row, "name")?, role: word(row, "role")? })
}

/// The SHA-256 of a secret: what identifies a token without keeping its secret.
pub fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The stored form of a secret: its digest in hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(secret_digest(secret))
}

impl Store {
    /// Creates a token; returns its record and the secret, which is not kept.
    pub async fn create_token(&self, role: Role, name: &str) -> crate::Result<(TokenRecord, String)> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("hl_{}", hex::encode(bytes));
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query("INSERT INTO api_tokens (id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(name)
            .bind(role.as_str())
            .bind(hash_secret(&secret))
            .bind(crate::format_instant(chrono::Utc::now()))
            .execute(self.pool())
            .await?;
        Ok((TokenRecord { id, name: name.to_owned(), role }, secret))
    }

    /// The live token whose secret this is.
    pub async fn find_token(&self, secret: &str) -> crate::Result<Option<TokenRecord>> {
        let row = sqlx::query("SELECT id, name, role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(hash_secret(secret))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(token_record).transpose()
    }

    /// Whether any token exists (the embedded default seeds on first start only).
    pub async fn has_tokens(&self) -> crate::Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens").fetch_one(self.pool()).await?;
        Ok(n > 0)
    }
}
