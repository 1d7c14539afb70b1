-- Delivery engine: the shared rate-limit bucket, worker heartbeats, bounce
-- bookkeeping.

-- One token bucket per named limit, shared by every worker on every host.
-- A worker takes tokens with one atomic UPDATE (see take_rate_tokens), so the
-- limit holds for all of them together without any coordinator process.
CREATE TABLE rate_buckets (
    name             text PRIMARY KEY,
    tokens           double precision NOT NULL,
    refilled_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Optional per-hour cap: a fixed window counter beside the bucket.
    hour_start       timestamptz NOT NULL DEFAULT date_trunc('hour', now()),
    hour_count       integer NOT NULL DEFAULT 0
);
INSERT INTO rate_buckets (name, tokens) VALUES ('smtp', 0);

-- Live workers, for ops (`newsletter status`, stats). A row whose
-- last_seen_at is older than a few lease periods belongs to a dead process.
CREATE TABLE workers (
    worker_id        text PRIMARY KEY,
    host             text NOT NULL,
    pid              integer NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    current_issue_id bigint REFERENCES issues (id) ON DELETE SET NULL
);

ALTER TABLE subscribers ADD COLUMN last_bounce_at timestamptz;
ALTER TABLE deliveries ADD COLUMN bounced_at timestamptz;

-- Every bounce we acted on: SMTP 5xx replies at send time and DSNs that
-- arrived later. Keeps the evidence for a suppression.
CREATE TABLE bounce_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      bigint REFERENCES deliveries (id) ON DELETE SET NULL,
    subscriber_id    bigint REFERENCES subscribers (id) ON DELETE SET NULL,
    kind             text NOT NULL CHECK (kind IN ('hard', 'soft')),
    source           text NOT NULL CHECK (source IN ('smtp', 'dsn')),
    smtp_code        integer,
    detail           text,
    received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bounce_events_subscriber ON bounce_events (subscriber_id, received_at);

-- Looking deliveries up by subscriber: unsubscribe/erase skip the queued
-- ones, bounces find the latest one, and ON DELETE SET NULL on erase needs
-- it too. Without it each of those is a sequential scan of every delivery
-- ever made (20,000 rows per issue, two issues a month).
CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id);
