-- A page of the snapshot (a cache rebuild, an instance filling its
-- near-cache, reconciliation) reads each not-good certificate's status,
-- reason and since. With the partial index carrying them, a page is an
-- index-only scan: its index's leaves, in key order, instead of one heap
-- page per entry, for entries spread over the whole registry. At national
-- size the heap (hundreds of GB) is not in memory and the index (about
-- 100 bytes per not-good certificate) is, so a rebuild reads memory
-- instead of making a random read per entry.
DROP INDEX certificates_not_good;
CREATE INDEX certificates_not_good ON certificates (issuer, serial) INCLUDE (status, reason, since)
    WHERE status <> 'good';
