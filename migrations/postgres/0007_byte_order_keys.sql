-- Issuer ids, serials and keyed fingerprints are ASCII keys: they are
-- compared byte by byte. Under a database's default collation (C.UTF-8,
-- en_US.UTF-8, …) every comparison in their indexes goes through the C
-- library's locale-aware strcoll and sorts cannot use abbreviated keys; under
-- "C" they are a memcmp. Same answers for ASCII, in the order Rust compares
-- strings, with index builds (a first load, a rebuild) and every insertion
-- into these indexes several times cheaper.
ALTER TABLE issuers ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE certificates ALTER COLUMN issuer TYPE TEXT COLLATE "C", ALTER COLUMN serial TYPE TEXT COLLATE "C";
ALTER TABLE holders ALTER COLUMN number_hmac TYPE TEXT COLLATE "C";
