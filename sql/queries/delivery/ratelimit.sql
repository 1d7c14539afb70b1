-- The one global send rate, a token bucket shared by every worker.

-- name: take_rate_tokens
-- The global token bucket. $1 bucket name, $2 rate per second, $3 capacity
-- (the largest burst), $4 tokens wanted, $5 per-hour cap or NULL.
-- Refill by the time elapsed, grant what is there (at most $4), all under
-- the row lock of one UPDATE: workers serialise on this row for
-- microseconds, and whatever their number the grants in any interval of t
-- seconds never exceed rate * t + capacity.
WITH clock AS (SELECT clock_timestamp() AS now_ts),
bucket AS (
    SELECT b.name, c.now_ts,
           least($3::float8,
                 b.tokens + $2::float8 * greatest(extract(epoch FROM c.now_ts - b.refilled_at), 0)
           ) AS available,
           CASE WHEN b.hour_start = date_trunc('hour', c.now_ts) THEN b.hour_count ELSE 0 END
               AS used_this_hour
    FROM rate_buckets b, clock c
    WHERE b.name = $1
    FOR UPDATE OF b
),
grant_ AS (
    SELECT bucket.*,
           greatest(0, least($4::int, floor(available)::int,
                             coalesce($5::int - used_this_hour, $4::int)))::int AS granted
    FROM bucket
)
UPDATE rate_buckets r
SET tokens = g.available - g.granted, refilled_at = g.now_ts,
    hour_start = date_trunc('hour', g.now_ts), hour_count = g.used_this_hour + g.granted
FROM grant_ g
WHERE r.name = g.name
RETURNING g.granted, g.available - g.granted AS tokens_left,
          g.used_this_hour + g.granted AS used_this_hour;

-- name: ensure_rate_bucket
INSERT INTO rate_buckets (name, tokens) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING;
