-- Nothing to change on SQLite: an INTEGER PRIMARY KEY takes a given id or
-- makes one, and its bulk path is batched multi-row INSERTs, not COPY. The
-- migration is recorded so both databases carry the same version.
SELECT 1;
