-- The transactional outbox: web requests only insert here.

-- name: enqueue_outbox
INSERT INTO outbox (kind, priority, recipient, subscriber_id, payload)
VALUES ($1, $2, $3, $4, $5)
RETURNING id;

-- name: lock_outbox_recipient
-- Notices to one address queue one at a time (till the transaction ends), so
-- the cap below counts every earlier one, even from a concurrent request.
SELECT pg_advisory_xact_lock(hashtextextended('outbox:' || lower($1::text), 0));

-- name: enqueue_notice_capped
-- A notice, unless the address already got $6 transactional mails in the
-- last day (editors' test copies, priority $7, do not count). The index
-- outbox_recipient_recent serves the count, which stops at the cap.
INSERT INTO outbox (kind, priority, recipient, subscriber_id, payload)
SELECT $1, $2, $3, $4, $5
WHERE (
    SELECT count(*) FROM (
        SELECT 1 FROM outbox
        WHERE lower(recipient) = lower($3::text) AND created_at > now() - interval '1 day'
          AND priority <> $7
        LIMIT $6
    ) recent
) < $6
RETURNING id;
