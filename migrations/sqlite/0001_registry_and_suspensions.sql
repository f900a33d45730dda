-- The registry, suspensions, outbox, idempotency records, API tokens and the
-- audit log. Instants are stored as RFC 3339 UTC text with microseconds
-- (fixed width, so text order is time order) so that PostgreSQL and SQLite
-- hold them the same way.

CREATE TABLE issuers (
    id   TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('signature', 'user_identification'))
);
INSERT INTO issuers (id, kind) VALUES ('jpki-sign', 'signature'), ('jpki-auth', 'user_identification');

CREATE TABLE holders (
    id            INTEGER PRIMARY KEY,
    -- HMAC-SHA256 of the Individual Number under the PII key; never the number itself.
    number_hmac   TEXT NOT NULL UNIQUE,
    date_of_birth TEXT NOT NULL
);

CREATE TABLE cards (
    id           INTEGER PRIMARY KEY,
    holder_id    INTEGER NOT NULL REFERENCES holders (id),
    status       TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    status_since TEXT NOT NULL
);
CREATE INDEX cards_by_holder ON cards (holder_id);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('operator', 'supervisor', 'clerk', 'validator')),
    -- SHA-256 of the secret; the secret itself is shown once and never stored.
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE suspensions (
    id                   TEXT PRIMARY KEY,
    reference            TEXT NOT NULL UNIQUE,
    holder_id            INTEGER NOT NULL REFERENCES holders (id),
    item                 TEXT NOT NULL,
    cause                TEXT NOT NULL,
    language             TEXT NOT NULL,
    call_id              TEXT NOT NULL,
    device_id            TEXT,
    police_report_number TEXT,
    operator_token_id    TEXT NOT NULL REFERENCES api_tokens (id),
    rules_version        TEXT NOT NULL,
    mode                 TEXT NOT NULL CHECK (mode IN ('day', 'night')),
    decided_at           TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('suspended', 'released')),
    released_at          TEXT,
    released_by_token_id TEXT REFERENCES api_tokens (id),
    verified_with        TEXT,
    release_note         TEXT,
    ca_sync              TEXT NOT NULL DEFAULT 'pending' CHECK (ca_sync IN ('pending', 'confirmed', 'failed'))
);
CREATE INDEX suspensions_by_holder ON suspensions (holder_id);

CREATE TABLE certificates (
    id            INTEGER PRIMARY KEY,
    holder_id     INTEGER NOT NULL REFERENCES holders (id),
    issuer        TEXT NOT NULL REFERENCES issuers (id),
    serial        TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('signature', 'user_identification')),
    medium        TEXT NOT NULL CHECK (medium IN ('card', 'smartphone')),
    card_id       INTEGER REFERENCES cards (id),
    device_id     TEXT,
    status        TEXT NOT NULL CHECK (status IN ('good', 'suspended', 'revoked')),
    reason        TEXT,
    since         TEXT NOT NULL,
    -- The suspension that holds this certificate now, if any.
    -- Deferred: a transaction holds the certificates first and records the
    -- suspension only if it held anything.
    suspension_id TEXT REFERENCES suspensions (id) DEFERRABLE INITIALLY DEFERRED,
    UNIQUE (issuer, serial),
    CHECK ((medium = 'card') = (card_id IS NOT NULL)),
    CHECK ((medium = 'smartphone') = (device_id IS NOT NULL))
);
CREATE INDEX certificates_by_card ON certificates (card_id);
CREATE INDEX certificates_by_device ON certificates (holder_id, device_id);

CREATE TABLE suspension_certificates (
    suspension_id  TEXT NOT NULL REFERENCES suspensions (id),
    certificate_id INTEGER NOT NULL REFERENCES certificates (id),
    PRIMARY KEY (suspension_id, certificate_id)
);

-- One row per certificate status change, committed with the change; drained to the CA.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    certificate_id  INTEGER NOT NULL REFERENCES certificates (id),
    issuer          TEXT NOT NULL,
    serial          TEXT NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('hold', 'release', 'revoke')),
    reason          TEXT NOT NULL,
    suspension_id   TEXT REFERENCES suspensions (id),
    created_at      TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    done_at         TEXT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- The first answer to each (token, Idempotency-Key), replayed on a retry.
CREATE TABLE idempotency (
    token_id            TEXT NOT NULL REFERENCES api_tokens (id),
    idempotency_key     TEXT NOT NULL,
    -- Keyed digest of method, path and body: tells a retry from a reused key.
    request_fingerprint TEXT NOT NULL,
    status_code         INTEGER NOT NULL,
    body                TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    PRIMARY KEY (token_id, idempotency_key)
);

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

-- The head of the hash chain: one row, locked by each append, so appends are
-- serialised and the removal of the last record is detectable.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: the service's own connections cannot rewrite history.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
