-- Worker registry, heartbeats, and the leases on the rows a worker holds.
--
-- A worker claims rows of both queues (deliveries, outbox) with a lease. The
-- heartbeat extends what it holds. A dead worker's rows are put back by
-- whichever worker runs the periodic requeue_expired_* next (about once a
-- second): at once when the dead worker's liveness lock is free (its
-- database session ended: SIGKILL, OOM, a host whose connection was reset;
-- see 0016_worker_liveness.sql), else when its lease runs out (a network
-- partition: its session, and maybe the worker, still alive). A worker whose
-- round failed (the database went away) gives back its own. Each statement
-- comes in one flavour per queue, side by side.

-- name: take_worker_lock
-- On the worker's own connection, held for its life: the proof that it is
-- alive. The two-key form keeps these apart from every one-key advisory lock.
SELECT pg_try_advisory_lock(1852602219, $1::int);

-- name: release_worker_lock
SELECT pg_advisory_unlock(1852602219, $1::int);

-- name: worker_register
-- $4: the key of the liveness lock the worker holds (NULL: none).
INSERT INTO workers (worker_id, host, pid, lock_key) VALUES ($1, $2, $3, $4)
ON CONFLICT (worker_id) DO UPDATE
SET host = excluded.host, pid = excluded.pid, started_at = now(), last_seen_at = now(),
    current_issue_id = NULL, lock_key = excluded.lock_key;

-- name: worker_lock_retaken
-- The liveness lock was lost with its connection and taken again under $2.
UPDATE workers SET lock_key = $2, last_seen_at = now() WHERE worker_id = $1;

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
-- A worker died: its liveness lock is free, or (the lock cannot tell: a
-- partition, or a worker without one) its leases ran out. Both read the
-- 'sending' rows alone, through the partial index deliveries_leased: a few
-- batches per worker. The attempt stays counted: the message may have been
-- handed to SMTP just before the crash. Rows of a cancelled issue (or resend
-- round) become final ('skipped') instead.
WITH dead AS (
    -- Holders of rows whose liveness lock nobody holds: their session is
    -- gone. The lock taken here to find out lasts until this statement's
    -- transaction ends; a live worker's lock is never free, and $1 (the
    -- worker asking) is left out, so it never takes back its own rows.
    SELECT w.worker_id FROM workers w
    WHERE w.lock_key IS NOT NULL AND w.worker_id <> $1
      AND EXISTS (SELECT 1 FROM deliveries x WHERE x.status = 'sending' AND x.worker = w.worker_id)
      AND pg_try_advisory_xact_lock(1852602219, w.lock_key)
)
UPDATE deliveries d
SET status = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'skipped' ELSE 'queued' END,
    last_error = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'issue cancelled'
                      ELSE d.last_error END,
    reason = CASE WHEN i.status IN ('cancelled', 'sent') THEN 'cancelled' ELSE d.reason END,
    lease_until = NULL, worker = NULL, next_attempt_at = now()
FROM issues i
WHERE d.status = 'sending' AND i.id = d.issue_id
  AND (d.lease_until < now() OR d.worker IN (SELECT worker_id FROM dead));

-- name: requeue_expired_outbox
-- The same for transactional mail, through the partial index outbox_leased.
-- The attempt stays counted.
WITH dead AS (
    -- Holders of rows whose liveness lock nobody holds: their session is
    -- gone. The lock taken here to find out lasts until this statement's
    -- transaction ends; a live worker's lock is never free, and $1 (the
    -- worker asking) is left out, so it never takes back its own rows.
    SELECT w.worker_id FROM workers w
    WHERE w.lock_key IS NOT NULL AND w.worker_id <> $1
      AND EXISTS (SELECT 1 FROM outbox x WHERE x.status = 'sending' AND x.worker = w.worker_id)
      AND pg_try_advisory_xact_lock(1852602219, w.lock_key)
)
UPDATE outbox
SET status = 'queued', lease_until = NULL, worker = NULL, next_attempt_at = now()
WHERE status = 'sending'
  AND (lease_until < now() OR worker IN (SELECT worker_id FROM dead));

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
