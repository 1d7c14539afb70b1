-- Hostile input and the privacy officer's safeguards: opaque public ids,
-- bounce reports applied once and only when signed, and the access log of
-- every read of personal data.

-- Links and mailto addresses name a subscriber by this, never by the
-- sequential row id (which told anyone holding one link how many people had
-- signed up, and when). 64 random bits as 16 hex digits: short in a URL, and
-- safe in an address local part that a mail server may fold to one case.
-- The volatile default rewrites the table once, giving every existing
-- subscriber an id of their own.
ALTER TABLE subscribers ADD COLUMN public_id text NOT NULL
    DEFAULT left(encode(sha256(decode(replace(gen_random_uuid()::text, '-', ''), 'hex')), 'hex'), 16);
CREATE UNIQUE INDEX subscribers_public_id ON subscribers (public_id);

-- Every bounce report processed, by its Message-ID or a hash of its bytes:
-- the same report read again (a cron job re-reading a mailbox) is a no-op.
CREATE TABLE bounce_reports (
    key              text PRIMARY KEY,
    received_at      timestamptz NOT NULL DEFAULT now(),
    outcome          text NOT NULL DEFAULT 'processing'
);

-- A report that matched a subscriber by address only, without our signature,
-- is kept as evidence for ops (verified = false) and changes nobody.
ALTER TABLE bounce_events ADD COLUMN verified boolean NOT NULL DEFAULT true;
-- "Has this delivery bounced before?" (one soft bounce per delivery).
CREATE INDEX bounce_events_delivery ON bounce_events (delivery_id) WHERE verified;
CREATE INDEX bounce_events_unverified ON bounce_events (id) WHERE NOT verified;

-- Every read of personal data (PIPA safeguards, art. 8): who (an API key, a
-- console user, an operator at the command line), from where, when, what and
-- whose. Append-only: updates are refused, and so is deleting an entry
-- younger than a year; the daily job removes entries past
-- ACCESS_LOG_RETENTION_DAYS (two years by default).
CREATE TABLE access_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at      timestamptz NOT NULL DEFAULT now(),
    actor_kind       text NOT NULL CHECK (actor_kind IN ('api_key', 'user', 'cli')),
    actor_ref        text NOT NULL,   -- api_key:3, user:5, cli
    actor_name       text NOT NULL,   -- as it was then (keys and people get renamed)
    role             text NOT NULL,
    ip               inet,            -- NULL at the command line (actor_name names the host)
    action           text NOT NULL,   -- subscribers.list, subscriber.get, subscribers.export...
    subscriber_ids   bigint[] NOT NULL DEFAULT '{}',  -- whose data was shown
    query            jsonb NOT NULL DEFAULT '{}',     -- the filters that chose them
    row_count        integer
);
CREATE INDEX access_log_time ON access_log (occurred_at);
CREATE INDEX access_log_subscribers ON access_log USING gin (subscriber_ids);

CREATE FUNCTION access_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'access_log is append-only';
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'access_log entries are kept at least a year';
    END IF;
    IF OLD.occurred_at > now() - interval '365 days' THEN
        RAISE EXCEPTION 'access_log entries are kept at least a year';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER access_log_guard BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_guard();
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_guard();
