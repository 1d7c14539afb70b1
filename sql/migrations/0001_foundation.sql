-- Foundation schema: subscribers and their consent evidence, the transactional
-- outbox, signup limits, API keys and the audit trail, news items, issues and
-- the per-recipient delivery queue.

CREATE TABLE subscribers (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Normalised by email-validator: local part as typed, domain lower-case
    -- ASCII (IDNA). Uniqueness is case-insensitive (see index below).
    email            text NOT NULL,
    name             text,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'active', 'unsubscribed', 'suppressed', 'lapsed')),
    source           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    confirmed_at     timestamptz,
    unsubscribed_at  timestamptz,
    last_consent_at  timestamptz,
    reconfirm_sent_at timestamptz,
    suppressed_reason text,
    soft_bounces     integer NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX subscribers_email_key ON subscribers (lower(email));
-- Recipient snapshots scan active subscribers in id order.
CREATE INDEX subscribers_active ON subscribers (id) WHERE status = 'active';
CREATE INDEX subscribers_status ON subscribers (status, id);

-- Evidence of every consent decision (PIPA): who, when, from where, which text.
CREATE TABLE consent_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id    bigint NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    kind             text NOT NULL,
    occurred_at      timestamptz NOT NULL DEFAULT now(),
    ip               inet,
    user_agent       text,
    source           text,
    consent_version  text
);
CREATE INDEX consent_events_subscriber ON consent_events (subscriber_id, occurred_at);

-- Addresses that must never be mailed again, kept only as a salted hash so
-- an erased person leaves no readable trace.
CREATE TABLE suppressions (
    email_hash       text PRIMARY KEY,
    reason           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Transactional mail (confirmations, result notices, test sends). Rendered by
-- the worker from `kind` + `payload`, so the HTTP request only inserts a row.
CREATE TABLE outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    priority         smallint NOT NULL DEFAULT 0,  -- lower goes first
    recipient        text NOT NULL,
    subscriber_id    bigint REFERENCES subscribers (id) ON DELETE CASCADE,
    payload          jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    worker           text,
    last_error       text,
    smtp_code        integer,
    message_id       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
-- The claim query reads only due, queued rows in priority order; a partial
-- index keeps it small however much history accumulates.
CREATE INDEX outbox_due ON outbox (priority, next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX outbox_leased ON outbox (lease_until) WHERE status = 'sending';

-- Signup limits (per IP, per address) as a sliding log of accepted hits.
-- Append-only on purpose: a counter row per IP would be one hot row that every
-- signup from a shared address (a school, an office NAT) locks until commit,
-- serialising them. Counting at most limit+1 index entries is cheap instead.
CREATE TABLE signup_hits (
    bucket           text NOT NULL,
    at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signup_hits_bucket ON signup_hits (bucket, at);

CREATE TABLE api_keys (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text NOT NULL,
    role             text NOT NULL CHECK (role IN ('editor', 'ops', 'admin')),
    prefix           text NOT NULL,
    key_hash         bytea NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz,
    last_used_at     timestamptz
);

CREATE TABLE audit_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    api_key_id       bigint REFERENCES api_keys (id),
    actor            text NOT NULL,
    action           text NOT NULL,
    target           text,
    details          jsonb NOT NULL DEFAULT '{}',
    occurred_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_time ON audit_log (occurred_at);

CREATE TABLE news_items (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title            text NOT NULL,
    summary          text NOT NULL DEFAULT '',
    body             text NOT NULL DEFAULT '',
    link             text,
    image_url        text,
    category         text,
    published_at     timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Feed imports de-duplicate by link.
CREATE UNIQUE INDEX news_items_link ON news_items (link) WHERE link IS NOT NULL;
CREATE INDEX news_items_published ON news_items (published_at DESC, id DESC);

CREATE TABLE issues (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Public archive number, given when the issue starts sending.
    number           integer UNIQUE,
    title            text NOT NULL,
    intro            text NOT NULL DEFAULT '',
    news_item_ids    bigint[] NOT NULL DEFAULT '{}',
    is_advertisement boolean NOT NULL DEFAULT false,
    status           text NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled')),
    send_at          timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    -- Snapshot taken when sending starts: what every recipient gets.
    subject          text,
    rendered_html    text,
    rendered_text    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX issues_due ON issues (send_at) WHERE status = 'scheduled';

-- One row per (issue, subscriber): the bulk delivery queue.
CREATE TABLE deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issue_id         bigint NOT NULL REFERENCES issues (id),
    -- Set to NULL when a subscriber is erased: history keeps counts only.
    subscriber_id    bigint REFERENCES subscribers (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'bounced', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    worker           text,
    smtp_code        integer,
    last_error       text,
    message_id       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    UNIQUE (issue_id, subscriber_id)
);
CREATE INDEX deliveries_due ON deliveries (issue_id, next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE status = 'sending';
CREATE INDEX deliveries_issue_status ON deliveries (issue_id, status);
