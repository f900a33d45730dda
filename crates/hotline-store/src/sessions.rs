//! Console sessions: a person signs in with their token once, and the browser
//! then carries a random session secret in a cookie. Sessions are rows of the
//! store (so they survive a restart and work on every instance), kept only as
//! the SHA-256 of their secret, like tokens. A session is live while it is
//! not signed out, its token is not revoked and it was used within the idle
//! timeout; each use moves its idle clock on.

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;

use crate::rows::text;
use crate::tokens::{hash_secret, token_record};
use crate::{Store, TokenRecord, format_instant};

/// A session secret as the cookie carries it: 256 random bits, `hs_` and hex.
fn fresh_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("hs_{}", hex::encode(bytes))
}

impl Store {
    /// Opens a session for a token already authenticated; returns the secret, which is not kept.
    pub async fn open_session(&self, token: &TokenRecord, now: DateTime<Utc>) -> crate::Result<String> {
        let secret = fresh_secret();
        let at = format_instant(now);
        sqlx::query(
            "INSERT INTO console_sessions (session_hash, token_id, created_at, last_seen_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash_secret(&secret))
        .bind(&token.id)
        .bind(&at)
        .bind(&at)
        .execute(self.pool())
        .await?;
        Ok(secret)
    }

    /// The token behind a live session, its idle clock moved to `now`; `None`
    /// for a session unknown, signed out, idle for longer than `idle`, or whose
    /// token was revoked. One statement, so two instances using one session
    /// at once cannot revive it after it lapsed.
    pub async fn use_session(
        &self,
        secret: &str,
        now: DateTime<Utc>,
        idle: Duration,
    ) -> crate::Result<Option<TokenRecord>> {
        let touched = sqlx::query(
            "UPDATE console_sessions SET last_seen_at = $1
              WHERE session_hash = $2 AND ended_at IS NULL AND last_seen_at >= $3
             RETURNING token_id",
        )
        .bind(format_instant(now))
        .bind(hash_secret(secret))
        .bind(format_instant(now - idle))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = touched else { return Ok(None) };
        let token_id = text(&row, "token_id")?;
        let token = sqlx::query("SELECT id, name, role FROM api_tokens WHERE id = $1 AND revoked_at IS NULL")
            .bind(&token_id)
            .fetch_optional(self.pool())
            .await?;
        token.as_ref().map(token_record).transpose()
    }

    /// Signs a session out, on every instance at once; whether it was live.
    pub async fn end_session(&self, secret: &str, now: DateTime<Utc>) -> crate::Result<bool> {
        let ended =
            sqlx::query("UPDATE console_sessions SET ended_at = $1 WHERE session_hash = $2 AND ended_at IS NULL")
                .bind(format_instant(now))
                .bind(hash_secret(secret))
                .execute(self.pool())
                .await?;
        Ok(ended.rows_affected() == 1)
    }
}
