-- Drop the accounts, users and contacts tables and the extensions they use.
--
-- squawk-ignore-file ban-drop-table
-- A rollback drops only the tables its own migration created. It runs in
-- development and in the round-trip test, never in a deploy: deploys roll
-- forward.
SET lock_timeout = '5s';
SET statement_timeout = '10s';

DROP TABLE contacts;
DROP TABLE users;
DROP TABLE accounts;
DROP EXTENSION btree_gin;
DROP EXTENSION pg_trgm;
