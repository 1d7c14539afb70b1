-- The access log: every read of personal data (see newsletter/ops/access_log.py).

-- name: insert_access_log
INSERT INTO access_log (actor_kind, actor_ref, actor_name, role, ip, action,
                        subscriber_ids, query, row_count)
VALUES ($1, $2, $3, $4, $5::inet, $6, $7, $8, $9);

-- name: access_log_entries
-- Newest first, keyset-paged by id ($6: entries older than this id). Each
-- filter is optional. By subscriber: the GIN index access_log_subscribers;
-- by time: access_log_time; the rest are read from the (recent) slice.
SELECT id, occurred_at, actor_kind, actor_ref, actor_name, role, host(ip) AS ip, action,
       subscriber_ids, query, row_count
FROM access_log
WHERE ($1::timestamptz IS NULL OR occurred_at >= $1)
  AND ($2::timestamptz IS NULL OR occurred_at < $2)
  AND ($3::text IS NULL OR actor_name = $3 OR actor_ref = $3)
  AND ($4::bigint IS NULL OR subscriber_ids @> ARRAY[$4::bigint])
  AND ($5::text IS NULL OR action = $5)
  AND ($6::bigint IS NULL OR id < $6)
ORDER BY id DESC
LIMIT $7;

-- name: purge_access_log
-- The daily job: entries past the retention period. The table's trigger
-- refuses any younger than a year, whatever $1 says.
WITH gone AS (
    DELETE FROM access_log WHERE occurred_at < now() - make_interval(days => $1) RETURNING 1
)
SELECT count(*) FROM gone;
