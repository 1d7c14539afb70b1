-- Bounces: matching a bounce to its delivery, recording it, the bounce policy.

-- name: delivery_for_bounce
SELECT d.id, d.issue_id, d.subscriber_id, d.status FROM deliveries d WHERE d.id = $1;

-- name: latest_delivery_for_email
-- Bounce matched by the failed address only: the subscriber and their most
-- recent delivery (deliveries_subscriber index).
SELECT s.id AS subscriber_id,
       (SELECT d.id FROM deliveries d WHERE d.subscriber_id = s.id
        ORDER BY d.id DESC LIMIT 1) AS delivery_id
FROM subscribers s WHERE lower(s.email) = lower($1);

-- name: insert_bounce_event
INSERT INTO bounce_events (delivery_id, subscriber_id, kind, source, smtp_code, detail)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: mark_delivery_bounced
-- $3 is the bounce kind (hard, soft): reason bounce_hard or bounce_soft.
UPDATE deliveries SET status = 'bounced', bounced_at = now(), lease_until = NULL,
    last_error = coalesce($2, last_error), reason = 'bounce_' || $3::text
WHERE id = $1 AND status IN ('sent', 'failed', 'sending', 'queued');

-- name: suppress_subscriber
-- Hard bounce: stop mailing the address at once (queued deliveries are
-- skipped by the caller in the same transaction).
UPDATE subscribers
SET status = 'suppressed', suppressed_reason = $2, last_bounce_at = now(), updated_at = now()
WHERE id = $1 AND status <> 'suppressed'
RETURNING id;

-- name: count_soft_bounce
UPDATE subscribers
SET soft_bounces = soft_bounces + 1, last_bounce_at = now(), updated_at = now()
WHERE id = $1
RETURNING soft_bounces, status;
