-- Bulk delivery: claiming, send-time checks, outcomes (leases: workers.sql).

-- name: sending_issue_ids
-- Issues workers should be sending, oldest first. Tiny: a handful of rows.
SELECT id FROM issues WHERE status = 'sending' ORDER BY started_at NULLS LAST, id;

-- name: issue_for_sending
SELECT id, status, subject, rendered_html, rendered_text FROM issues WHERE id = $1;

-- name: claim_deliveries
-- Claim up to $3 due deliveries of issue $2 for worker $1, leased for $4 s.
-- The ORDER BY matches the partial index deliveries_due (issue_id,
-- next_attempt_at, id) WHERE status = 'queued', so this reads exactly the
-- rows it claims; SKIP LOCKED lets workers claim side by side without
-- waiting on each other. Expired leases are put back by
-- requeue_expired_deliveries (workers.sql), which keeps this scan
-- index-only on one state.
WITH due AS (
    SELECT id FROM deliveries
    WHERE issue_id = $2 AND status = 'queued' AND next_attempt_at <= now()
      AND EXISTS (SELECT 1 FROM issues WHERE id = $2 AND status = 'sending')
    ORDER BY next_attempt_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d
SET status = 'sending', worker = $1, lease_until = now() + make_interval(secs => $4),
    attempts = d.attempts + 1
FROM due
WHERE d.id = due.id
RETURNING d.id, d.subscriber_id, d.attempts, d.deferrals, d.pushbacks;

-- name: delivery_gate
-- The send-time check, once per small chunk just before the chunk is handed
-- to SMTP: is the issue still sending, is each subscriber still active, and
-- do we still hold the row (our lease did not expire and pass to another
-- worker)? Fresh address and name come along. Always returns at least the
-- issue row (d.id NULL when none of $2 qualifies).
SELECT i.status AS issue_status, d.id, d.subscriber_id, s.public_id, s.email, s.name,
       s.status AS subscriber_status
FROM issues i
LEFT JOIN deliveries d
       ON d.id = ANY($2::bigint[]) AND d.issue_id = i.id AND d.status = 'sending' AND d.worker = $3
LEFT JOIN subscribers s ON s.id = d.subscriber_id
WHERE i.id = $1;

-- name: deliveries_sent
-- Recorded in groups (one statement per ~100 messages). A row that lost its
-- lease and went back to the queue is marked too, so nobody sends it again.
UPDATE deliveries
SET status = 'sent', sent_at = now(), lease_until = NULL, smtp_code = 250, last_error = NULL,
    enhanced_code = NULL, reason = NULL
WHERE id = ANY($1::bigint[]) AND status IN ('sending', 'queued');

-- name: delivery_retry
-- A 4xx: back to the queue after $2 seconds (failures.backoff on the
-- attempt count); the attempt stays counted. Only while worker $5 still
-- holds the row: one whose rows were taken over (its lease ran out, its
-- liveness lock was lost) must not put another worker's claim back in the
-- queue mid-send, or a third claim would mail the same person again. The
-- same holds for delivery_defer and deliveries_release. In every statement
-- that records a reply, its enhanced status code comes last (core/replies.py
-- reads it; SQL filters on the column, never on the text).
UPDATE deliveries
SET status = 'queued', lease_until = NULL, worker = NULL, reason = 'temporary_refusal',
    next_attempt_at = now() + make_interval(secs => $2), last_error = $3, smtp_code = $4,
    enhanced_code = $6
WHERE id = $1 AND status = 'sending' AND worker = $5;

-- name: delivery_defer
-- Server trouble (connection lost, relay refusing us) or push-back (421,
-- 4.7.x: the relay asks us to slow down): the attempt does not count, it is
-- not the recipient's doing. Due again in $2 s: failures.backoff on the
-- deferral count for server trouble, 0 for a push-back (the global rate
-- limit slows us down, not a pause on this row). $6 deferrals are added: 1
-- for server trouble, 0 for a push-back. Still waiting $5 s after the issue
-- started (its snapshot made this row), the delivery is failed -- not a
-- bounce, the subscriber is untouched -- so the issue can finish. Either way
-- the reason is 'server_trouble' (a failed one may be resent; its age then
-- counts from requeued_at). RETURNING says which of the two it was. $7:
-- the worker writing it, which must still hold the row (see delivery_retry).
-- $8: 1 for a push-back (counted in a row: pushbacks), 0 for server trouble,
-- which ends a run of push-backs.
UPDATE deliveries
SET status = CASE WHEN coalesce(requeued_at, created_at) < now() - make_interval(secs => $5)
                  THEN 'failed' ELSE 'queued' END,
    reason = 'server_trouble',
    lease_until = NULL, worker = NULL, attempts = greatest(attempts - 1, 0),
    deferrals = deferrals + $6::int,
    pushbacks = CASE WHEN $8::int > 0 THEN pushbacks + $8::int ELSE 0 END,
    next_attempt_at = now() + make_interval(secs => $2),
    last_error = CASE WHEN coalesce(requeued_at, created_at) < now() - make_interval(secs => $5)
                      THEN 'gave up, server trouble past the maximum age: ' || $3::text
                      ELSE $3::text END,
    smtp_code = $4, enhanced_code = $9
WHERE id = $1 AND status = 'sending' AND worker = $7
RETURNING status;

-- name: delivery_failed
-- $4 says why (the reason codes are listed in 0015_engagement.sql).
UPDATE deliveries
SET status = 'failed', lease_until = NULL, last_error = $2, smtp_code = $3, reason = $4,
    enhanced_code = $5
WHERE id = $1 AND status IN ('sending', 'queued');

-- name: deliveries_skipped
-- The send-time check's verdict is "subscriber <status>" (or "subscriber
-- erased"): that status is the reason code.
UPDATE deliveries
SET status = 'skipped', lease_until = NULL, last_error = $2,
    reason = regexp_replace($2::text, '^subscriber ', '')
WHERE id = ANY($1::bigint[]) AND status = 'sending';

-- name: deliveries_release
-- Claimed but not handed to SMTP (pause, shutdown): back to the queue as if
-- never claimed, without spending an attempt. If the issue was cancelled
-- meanwhile (or its resend round was: the issue is 'sent' again), the rows are
-- final instead: nobody will ever send them. $2: the worker giving them
-- back, which must still hold them (see delivery_retry).
UPDATE deliveries d
SET status = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'skipped' ELSE 'queued' END,
    last_error = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'issue cancelled'
                      ELSE d.last_error END,
    reason = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'cancelled' ELSE d.reason END,
    lease_until = NULL, worker = NULL, attempts = greatest(d.attempts - 1, 0)
FROM issues i
WHERE d.id = ANY($1::bigint[]) AND d.status = 'sending' AND d.worker = $2
  AND i.id = d.issue_id;

-- name: finish_issue
-- 'sent' only when every delivery is final; the (issue_id, status) index
-- answers the NOT EXISTS without touching the finished rows.
UPDATE issues
SET status = 'sent', finished_at = now(), updated_at = now()
WHERE id = $1 AND status = 'sending'
  AND NOT EXISTS (
      SELECT 1 FROM deliveries WHERE issue_id = $1 AND status IN ('queued', 'sending')
  )
RETURNING id;
