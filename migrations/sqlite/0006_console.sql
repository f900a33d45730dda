-- Console sessions: a person signs in once with their token and then works
-- with a cookie. Only the SHA-256 of the cookie's secret is kept, as for
-- tokens, so a copy of this table lets nobody in. A session ends when it is
-- signed out (ended_at), when it has been idle too long (last_seen_at), or
-- when its token is revoked.
CREATE TABLE console_sessions (
    session_hash TEXT PRIMARY KEY,
    token_id     TEXT NOT NULL REFERENCES api_tokens (id),
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    ended_at     TEXT
);
CREATE INDEX console_sessions_by_token ON console_sessions (token_id);

-- The identity documents a clerk checked before a release, as words of the
-- IdentityDocument vocabulary, comma-separated.
ALTER TABLE suspensions ADD COLUMN documents_checked TEXT;
