-- What happened to an issue: click counts that name nobody, why each
-- delivery ended as it did, and second rounds for the deliveries that failed
-- through no fault of the recipient.

-- The links an issue mailed, as they were when it started sending. The click
-- redirect answers from here, so a news item edited or deleted afterwards
-- never changes where a link in mail already sent leads. No foreign key to
-- news_items for that reason.
CREATE TABLE issue_links (
    issue_id         bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    news_item_id     bigint NOT NULL,
    position         integer NOT NULL,  -- the item's place in the issue, for reports
    title            text NOT NULL,
    url              text NOT NULL,
    PRIMARY KEY (issue_id, news_item_id)
);

-- Clicks per issue, item and hour: counts only, nothing about who clicked.
-- Each web process adds up clicks in memory and writes them about once a
-- second with one upsert, so a burst of clicks is a handful of row updates,
-- not one locked row per click (see newsletter/editorial/clicks.py).
CREATE TABLE click_counts (
    issue_id         bigint NOT NULL,
    news_item_id     bigint NOT NULL,
    hour             timestamptz NOT NULL,
    clicks           bigint NOT NULL CHECK (clicks >= 0),
    PRIMARY KEY (issue_id, news_item_id, hour),
    FOREIGN KEY (issue_id, news_item_id) REFERENCES issue_links ON DELETE CASCADE
);

-- Why a delivery is final (failed, bounced, skipped) or waiting to be tried
-- again, as a code the resend and the delivery record read: set by the
-- statement that makes the row final or puts it back. NULL for a row never
-- tried yet and for a sent one. While waiting: server_trouble (deferred, not
-- an attempt) or temporary_refusal (a 4xx retry). Final:
--   refused            5xx to RCPT/DATA: the recipient's server said no
--   retries_exhausted  temporary refusals up to MAX_ATTEMPTS
--   sender_refused     the relay kept refusing our MAIL FROM (ours)
--   server_trouble     relay unreachable/refusing us past the maximum age (ours)
--   bounce_hard, bounce_soft  a delivery status notification came back later
--   unsubscribed, suppressed, erased, lapsed, pending, cancelled  (skipped)
-- No default or a constant one: adding these columns rewrites no table.
ALTER TABLE deliveries ADD COLUMN reason text;
-- The send round that last queued the row: 1, or the resend that re-queued it.
ALTER TABLE deliveries ADD COLUMN round smallint NOT NULL DEFAULT 1;
-- When a resend queued the row again: the maximum age of server trouble counts
-- from here instead of from the snapshot (created_at).
ALTER TABLE deliveries ADD COLUMN requeued_at timestamptz;
ALTER TABLE issues ADD COLUMN round smallint NOT NULL DEFAULT 1;

-- One row per round after the first (and the first, written when the second
-- starts): when, how many were re-queued, on whose request.
CREATE TABLE issue_rounds (
    issue_id         bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    round            smallint NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    deliveries       integer NOT NULL,
    requested_by     text,
    PRIMARY KEY (issue_id, round)
);

-- Figures per round read only the re-queued rows: a small partial index.
CREATE INDEX deliveries_resent ON deliveries (issue_id, round, status) WHERE round > 1;
-- "Deferred" in the delivery record: rows waiting to be tried again. Without
-- this the listing would read every queued row of a running send.
CREATE INDEX deliveries_waiting ON deliveries (issue_id, id)
    WHERE status IN ('queued', 'sending') AND reason IS NOT NULL;

-- Rows made final before this migration get the code their last_error implies.
UPDATE deliveries
SET reason = CASE
    WHEN status = 'failed' AND last_error LIKE 'gave up, server trouble%' THEN 'server_trouble'
    WHEN status = 'failed' AND smtp_code >= 500 THEN 'refused'
    WHEN status = 'failed' THEN 'retries_exhausted'
    WHEN status = 'bounced' THEN coalesce(
        (SELECT 'bounce_' || b.kind FROM bounce_events b
         WHERE b.delivery_id = deliveries.id ORDER BY b.id DESC LIMIT 1), 'bounce_soft')
    WHEN last_error IN ('erased', 'subscriber erased') THEN 'erased'
    WHEN last_error IN ('unsubscribed', 'subscriber unsubscribed') THEN 'unsubscribed'
    WHEN last_error LIKE 'suppressed%' OR last_error = 'subscriber suppressed' THEN 'suppressed'
    WHEN last_error IN ('lapsed', 'subscriber lapsed') THEN 'lapsed'
    WHEN last_error = 'subscriber pending' THEN 'pending'
    ELSE 'cancelled'
END
WHERE status IN ('failed', 'bounced', 'skipped') AND reason IS NULL;
