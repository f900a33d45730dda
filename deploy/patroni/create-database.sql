-- The service's role and database on a freshly bootstrapped cluster, run
-- once through HAProxy as the superuser (compose's `db-init`); safe to run
-- again. pg_monitor lets the service read pg_stat_replication's sync_state,
-- which hotline_db_synchronous_standbys reports (without it the count is -1).
SELECT 'CREATE ROLE hotline LOGIN PASSWORD ''hotline'''
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hotline') \gexec
GRANT pg_monitor TO hotline;
SELECT 'CREATE DATABASE hotline OWNER hotline'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'hotline') \gexec
