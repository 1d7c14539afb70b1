-- Sending the transactional outbox: claim and outcomes (leases: workers.sql).

-- name: claim_outbox
-- Claim up to $2 due messages for worker $1 with a lease of $3 seconds.
-- SKIP LOCKED lets any number of workers claim concurrently without waiting
-- on each other; the partial index outbox_due serves the ORDER BY. Expired
-- leases are put back by requeue_expired_outbox (workers.sql), as for
-- deliveries, which keeps this scan on one state.
WITH due AS (
    SELECT id FROM outbox
    WHERE status = 'queued' AND next_attempt_at <= now()
    ORDER BY priority, next_attempt_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o
SET status = 'sending', worker = $1, lease_until = now() + make_interval(secs => $3),
    attempts = o.attempts + 1
FROM due
WHERE o.id = due.id
RETURNING o.id, o.kind, o.recipient, o.subscriber_id, o.payload, o.attempts, o.deferrals,
    o.pushbacks,
    o.created_at,
    (SELECT s.public_id FROM subscribers s WHERE s.id = o.subscriber_id) AS public_id;

-- name: outbox_sent
UPDATE outbox
SET status = 'sent', sent_at = now(), lease_until = NULL, smtp_code = $2, message_id = $3,
    last_error = NULL, enhanced_code = NULL
WHERE id = $1 AND status = 'sending';

-- name: outbox_retry
-- Transient failure: back to the queue after $2 seconds (failures.backoff on
-- the attempt count). Only while worker $5 still holds the row (as for
-- deliveries: see delivery_retry); the same for outbox_defer and outbox_release.
-- The reply's enhanced status code comes last, as for deliveries.
UPDATE outbox
SET status = 'queued', lease_until = NULL, worker = NULL,
    next_attempt_at = now() + make_interval(secs => $2), last_error = $3, smtp_code = $4,
    enhanced_code = $6
WHERE id = $1 AND status = 'sending' AND worker = $5;

-- name: outbox_defer
-- Server trouble (relay down or refusing us) or push-back (421, 4.7.x): not
-- the recipient's doing, so the attempt does not count and no outage,
-- however long, uses up MAX_ATTEMPTS. Due again in $2 s (failures.backoff
-- on the deferral count; 0 for a push-back, which the global rate limit
-- slows down), $6 deferrals added (0 for a push-back). A mail still
-- undelivered $5 s after it was queued (the confirm link's lifetime: later
-- it would be useless) is failed. $8: 1 for a push-back (counted in a row:
-- pushbacks), 0 for server trouble.
UPDATE outbox
SET status = CASE WHEN created_at < now() - make_interval(secs => $5) THEN 'failed'
                  ELSE 'queued' END,
    lease_until = NULL, worker = NULL, attempts = greatest(attempts - 1, 0),
    deferrals = deferrals + $6::int,
    pushbacks = CASE WHEN $8::int > 0 THEN pushbacks + $8::int ELSE 0 END,
    next_attempt_at = now() + make_interval(secs => $2),
    last_error = $3, smtp_code = $4, enhanced_code = $9
WHERE id = $1 AND status = 'sending' AND worker = $7
RETURNING status;

-- name: outbox_failed
UPDATE outbox
SET status = 'failed', lease_until = NULL, last_error = $2, smtp_code = $3, enhanced_code = $4
WHERE id = $1 AND status = 'sending';

-- name: outbox_release
-- Graceful shutdown: hand claimed-but-unsent rows back without spending an
-- attempt; $2 is the worker, which must still hold them.
UPDATE outbox
SET status = 'queued', lease_until = NULL, worker = NULL, attempts = greatest(attempts - 1, 0)
WHERE id = ANY($1::bigint[]) AND status = 'sending' AND worker = $2;
