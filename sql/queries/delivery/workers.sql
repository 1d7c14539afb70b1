-- Worker registry and heartbeats.

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
