-- The audit chain and the change stream, sealed after commit (see the
-- PostgreSQL migration of the same number). SQLite has one writer at a time
-- already; the schema is the same so that one code path serves both.

CREATE TABLE audit_pending (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL
);

CREATE TABLE status_changes_pending (
    id     INTEGER PRIMARY KEY,
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('good', 'suspended', 'revoked')),
    reason TEXT,
    since  TEXT NOT NULL
);

ALTER TABLE audit_head ADD COLUMN sealed_as_of TEXT NOT NULL DEFAULT '1970-01-01T00:00:00.000000Z';
ALTER TABLE audit_head ADD COLUMN sealer TEXT;
ALTER TABLE audit_head ADD COLUMN sealer_until TEXT;

-- A card report looks up the holder's newest card that is not revoked:
-- this index gives it at once, whatever the planner thinks of the holder.
CREATE INDEX cards_by_holder_newest ON cards (holder_id, id);
DROP INDEX cards_by_holder;
