-- A page of the snapshot (a cache rebuild, an instance filling its
-- near-cache, reconciliation) reads each not-good certificate's status,
-- reason and since. With the partial index carrying them after its key,
-- a page is read from the index alone (SQLite's covering index), in key
-- order, instead of looking up each entry's row.
DROP INDEX certificates_not_good;
CREATE INDEX certificates_not_good ON certificates (issuer, serial, status, reason, since) WHERE status <> 'good';
