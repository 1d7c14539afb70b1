-- CSV imports started from the console, run in the background.

-- name: insert_import_job
INSERT INTO roster_imports (user_id, mode, source, filename, total_bytes)
VALUES ($1, $2, $3, $4, $5)
RETURNING id;

-- name: import_job_progress
UPDATE roster_imports SET done_bytes = $2, total_bytes = $3, updated_at = now()
WHERE id = $1 AND status = 'running';

-- name: finish_import_job
UPDATE roster_imports
SET status = $2, report = $3, error = $4, finished_at = now(), updated_at = now(),
    done_bytes = CASE WHEN $2 = 'done' THEN total_bytes ELSE done_bytes END
WHERE id = $1;

-- name: get_import_job
SELECT *, now() - updated_at > interval '2 minutes' AS stalled FROM roster_imports WHERE id = $1;

-- name: recent_import_jobs
SELECT id, mode, filename, status, started_at, finished_at, report FROM roster_imports
ORDER BY id DESC LIMIT $1;
