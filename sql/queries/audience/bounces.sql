-- Bounces: matching a bounce to its delivery, recording it, the bounce policy.

-- name: delivery_for_bounce
-- Locked: two reports about one delivery (an MTA retrying its DSN) are
-- applied one after the other, so the soft-bounce check below sees the first.
SELECT d.id, d.issue_id, d.subscriber_id, d.status FROM deliveries d WHERE d.id = $1
FOR UPDATE;

-- name: outbox_for_bounce
-- The transactional mail a signed report names, locked like a delivery (two
-- reports about one mail are applied one after the other). ``bounced``: a
-- genuine bounce of this mail is recorded already (bounce_events_outbox), the
-- once-per-mail soft-bounce check, as delivery_bounce_counted is for deliveries.
SELECT o.id, o.kind, o.subscriber_id, o.status,
       EXISTS (SELECT 1 FROM bounce_events b WHERE b.outbox_id = o.id AND b.verified)
           AS bounced,
       s.status AS subscriber_status
FROM outbox o LEFT JOIN subscribers s ON s.id = o.subscriber_id
WHERE o.id = $1
FOR UPDATE OF o;

-- name: mark_outbox_bounced
-- A mail the relay took but the recipient's server bounced did not arrive:
-- the row says failed, and why ($2, with its enhanced status code $3 when the
-- report has one). Rows not yet sent are left alone.
UPDATE outbox SET status = 'failed', lease_until = NULL, last_error = $2,
    enhanced_code = coalesce($3::text, enhanced_code)
WHERE id = $1 AND status IN ('sent', 'failed');

-- name: delivery_bounce_counted
-- Has a genuine bounce of this delivery been counted already? (bounce_events_delivery)
SELECT EXISTS (SELECT 1 FROM bounce_events WHERE delivery_id = $1 AND verified);

-- name: claim_bounce_report
-- The first time a report (by Message-ID or content hash) is seen it is
-- inserted and processed; a repeat finds the key taken and changes nothing.
-- A concurrent repeat waits here for the first one's commit.
INSERT INTO bounce_reports (key) VALUES ($1) ON CONFLICT (key) DO NOTHING RETURNING true;

-- name: note_bounce_report
UPDATE bounce_reports SET outcome = $2 WHERE key = $1;

-- name: unverified_bounce_count
-- Unsigned reports naming a subscriber's address, for ops (bounce_events_unverified).
SELECT count(*) FROM bounce_events WHERE NOT verified AND received_at > now() - make_interval(days => $1);

-- name: unverified_bounces
-- The latest unsigned reports, newest first, keyset-paged by id.
SELECT b.id, b.received_at, b.subscriber_id, b.delivery_id, b.kind, b.detail
FROM bounce_events b
WHERE NOT b.verified AND b.id < $1
ORDER BY b.id DESC
LIMIT $2;

-- name: latest_delivery_for_email
-- A report naming only the failed address: the subscriber and their most
-- recent delivery, to record it as unverified (deliveries_subscriber index).
SELECT s.id AS subscriber_id,
       (SELECT d.id FROM deliveries d WHERE d.subscriber_id = s.id
        ORDER BY d.id DESC LIMIT 1) AS delivery_id
FROM subscribers s WHERE lower(s.email) = lower($1);

-- name: insert_bounce_event
-- $7 verified: false for a report matched by address only (recorded, never
-- applied). $8 the transactional mail it is about, if it is (else $1 the delivery).
INSERT INTO bounce_events
    (delivery_id, subscriber_id, kind, source, smtp_code, detail, verified, outbox_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: mark_delivery_bounced
-- $3 is the bounce kind (hard, soft): reason bounce_hard or bounce_soft; $4
-- the report's enhanced status code (core/replies.py), when it has one.
UPDATE deliveries SET status = 'bounced', bounced_at = now(), lease_until = NULL,
    last_error = coalesce($2, last_error), reason = 'bounce_' || $3::text,
    enhanced_code = coalesce($4::text, enhanced_code)
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
