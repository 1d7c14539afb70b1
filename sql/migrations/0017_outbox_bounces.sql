-- A bounce of a transactional mail (confirmation, notice), matched by the
-- signed VERP sender or Message-ID the mail carries, names its outbox row,
-- as a bounce of an issue names its delivery. That link is also how one mail
-- counts at most one soft bounce however often its report arrives.
ALTER TABLE bounce_events
    ADD COLUMN outbox_id bigint REFERENCES outbox (id) ON DELETE SET NULL;

CREATE INDEX bounce_events_outbox ON bounce_events (outbox_id) WHERE outbox_id IS NOT NULL;
