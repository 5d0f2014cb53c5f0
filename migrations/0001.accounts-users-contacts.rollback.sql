-- Drop the accounts, users and contacts tables.
SET lock_timeout = '5s';

DROP TABLE contacts;
DROP TABLE users;
DROP TABLE accounts;
