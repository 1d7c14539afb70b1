-- Roster management: CSV import staging, the once-a-day lifecycle job, the
-- hashes of purged leavers (so an import cannot bring them back by mistake)
-- and an index for e-mail prefix search.

-- Import staging. UNLOGGED: its rows live for one transaction (an import
-- TRUNCATEs it before and after the merge), so WAL for them is wasted work.
-- TRUNCATE takes an exclusive lock, which also serialises concurrent imports.
CREATE UNLOGGED TABLE roster_staging (
    line             integer NOT NULL,
    email            text NOT NULL,
    email_key        text NOT NULL,   -- lower(email), the roster's unique key
    email_hash       text NOT NULL,   -- suppression_hash(secret, email)
    name             text,
    subscribed_at    timestamptz,
    source           text
);

-- One row per daily job. A worker claims today's run with a conditional
-- upsert (see claim_daily_job), so it runs once per day however many
-- workers there are.
CREATE TABLE jobs (
    name             text PRIMARY KEY,
    last_run_on      date NOT NULL,
    last_run_at      timestamptz,
    last_result      jsonb NOT NULL DEFAULT '{}'
);

-- Leavers whose personal data the retention purge destroyed. Only a keyed
-- hash stays. Unlike `suppressions`, a departed resident may sign up again
-- on their own (double opt-in); only an admin's CSV import is refused.
CREATE TABLE departed_addresses (
    email_hash       text PRIMARY KEY,
    reason           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Who put a consent record there (an import names the admin's API key or
-- the CLI; signups leave it NULL: the resident did).
ALTER TABLE consent_events ADD COLUMN recorded_by text;

-- "e-mail starts with" search: text_pattern_ops lets LIKE 'prefix%' use the
-- index whatever the database collation is.
CREATE INDEX subscribers_email_prefix ON subscribers (lower(email) text_pattern_ops);
