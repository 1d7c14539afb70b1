-- name: readyz_worker_check
-- Issues in 'sending' and the workers alive to send them (heartbeat within
-- the last minute). Both tables hold a handful of rows.
SELECT coalesce(array_agg(i.id ORDER BY i.id), '{}') AS sending_issue_ids,
       (SELECT count(*) FROM workers
        WHERE last_seen_at > now() - interval '60 seconds') AS live_workers,
       (SELECT max(last_seen_at) FROM workers) AS last_heartbeat
FROM issues i WHERE i.status = 'sending';

-- name: stats_workers
-- Worker heartbeats for /metrics and `newsletter status`. Rows of workers
-- gone for more than a day are ignored (the worker loop prunes them anyway).
SELECT worker_id, host, pid, started_at, last_seen_at, current_issue_id,
       last_seen_at > now() - interval '60 seconds' AS alive
FROM workers
WHERE last_seen_at > now() - interval '1 day'
ORDER BY worker_id;
