-- Nothing to change on SQLite: text is compared byte by byte (BINARY)
-- unless a column says otherwise. The migration is recorded so both
-- databases carry the same version.
SELECT 1;
