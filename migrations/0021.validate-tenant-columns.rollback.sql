-- Validation changes no schema, so there is nothing to undo; the
-- constraints go with their columns when 0020 is rolled back.
SET lock_timeout = '5s';
SET statement_timeout = '10s';
