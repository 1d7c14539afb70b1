-- The database itself: the migration runner's bookkeeping and the installation's
-- address key (see migration 0007).

-- name: migration_lock
-- Serialises concurrent `newsletter migrate` runs (any host): the second waits here.
SELECT pg_advisory_lock($1);

-- name: migration_unlock
SELECT pg_advisory_unlock($1);

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: record_migration
INSERT INTO schema_migrations (version, name) VALUES ($1, $2);

-- name: applied_migrations
SELECT version FROM schema_migrations;

-- name: schema_migrations_exists
SELECT to_regclass('schema_migrations') IS NOT NULL;

-- name: address_hash_key
SELECT value FROM instance_keys WHERE name = 'address_hash';
