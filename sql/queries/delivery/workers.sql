-- Worker registry, heartbeats, and the leases on the rows a worker holds.
--
-- A worker claims rows of both queues (deliveries, outbox) with a lease. The
-- heartbeat extends what it holds; a worker that stops beating (SIGKILL,
-- lost host) has its rows put back by whichever worker runs the periodic
-- requeue_expired_* next; a worker whose round failed (the database went
-- away) gives back its own. Each statement comes in one flavour per queue,
-- side by side.

-- name: worker_register
INSERT INTO workers (worker_id, host, pid) VALUES ($1, $2, $3)
ON CONFLICT (worker_id) DO UPDATE
SET host = excluded.host, pid = excluded.pid, started_at = now(), last_seen_at = now(),
    current_issue_id = NULL;

-- name: worker_heartbeat
UPDATE workers SET last_seen_at = now(), current_issue_id = $2 WHERE worker_id = $1;

-- name: worker_unregister
DELETE FROM workers WHERE worker_id = $1;

-- name: prune_dead_workers
-- Rows of processes that stopped beating long ago (SIGKILL leaves them behind).
DELETE FROM workers WHERE last_seen_at < now() - make_interval(secs => $1);

-- --- leases ------------------------------------------------------------

-- name: extend_delivery_leases
-- Heartbeat: a live worker keeps what it holds however slow the rate limit.
UPDATE deliveries SET lease_until = now() + make_interval(secs => $2)
WHERE status = 'sending' AND worker = $1;

-- name: extend_outbox_leases
-- ... and of the transactional mail it holds.
UPDATE outbox SET lease_until = now() + make_interval(secs => $2)
WHERE status = 'sending' AND worker = $1;

-- name: requeue_expired_deliveries
-- A worker died (SIGKILL, lost host): its leases ran out. Served by the
-- partial index deliveries_leased. The attempt stays counted: the message
-- may have been handed to SMTP just before the crash.
-- Rows of a cancelled issue (or resend round) become final ('skipped') instead.
UPDATE deliveries d
SET status = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'skipped' ELSE 'queued' END,
    last_error = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'issue cancelled'
                      ELSE d.last_error END,
    reason = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'cancelled' ELSE d.reason END,
    lease_until = NULL, worker = NULL, next_attempt_at = now()
FROM issues i
WHERE d.status = 'sending' AND d.lease_until < now() AND i.id = d.issue_id;

-- name: requeue_expired_outbox
-- The same for transactional mail, served by the partial index outbox_leased.
-- The attempt stays counted.
UPDATE outbox
SET status = 'queued', lease_until = NULL, worker = NULL, next_attempt_at = now()
WHERE status = 'sending' AND lease_until < now();

-- name: requeue_own_deliveries
-- After a failed round (the database went away mid-batch) the worker gives
-- back every row it still has marked as its own: the heartbeat would otherwise
-- keep extending their leases for ever. Like lease expiry, the attempt stays
-- counted: a message may have reached SMTP just before the failure.
UPDATE deliveries d
SET status = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'skipped' ELSE 'queued' END,
    last_error = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'issue cancelled'
                      ELSE d.last_error END,
    reason = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'cancelled' ELSE d.reason END,
    lease_until = NULL, worker = NULL, next_attempt_at = now()
FROM issues i
WHERE d.status = 'sending' AND d.worker = $1 AND i.id = d.issue_id;

-- name: requeue_own_outbox
-- The same for transactional mail; the attempt stays counted.
UPDATE outbox SET status = 'queued', lease_until = NULL, worker = NULL
WHERE status = 'sending' AND worker = $1;
