-- The ordered stream of certificate status changes that the revocation cache
-- follows. Positions are allocated while the transaction holds the audit
-- chain's head row, which it keeps until commit: so changes commit in
-- position order, and a reader that sees position P sees every position
-- below it. (A plain sequence would not do: its values commit out of order.)

ALTER TABLE audit_head ADD COLUMN change_position BIGINT NOT NULL DEFAULT 0;

CREATE TABLE status_changes (
    position BIGINT PRIMARY KEY,
    issuer   TEXT NOT NULL,
    serial   TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('good', 'suspended', 'revoked')),
    reason   TEXT,
    since    TEXT NOT NULL
);

-- Validators' snapshot for a cache rebuild reads every certificate that is not good.
CREATE INDEX certificates_not_good ON certificates (issuer, serial) WHERE status <> 'good';
