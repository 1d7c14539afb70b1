-- The one global send rate, a token bucket shared by every worker, and the
-- rate the relay taught us (AIMD, see delivery/ratelimit.py).

-- name: take_rate_tokens
-- The global token bucket. $1 bucket name, $2 configured rate per second
-- (the ceiling), $3 burst as a fraction of a second's worth, $4 tokens
-- wanted, $5 per-hour cap or NULL; what this worker saw since its last
-- take: $6 messages the relay accepted, $7 the relay's words if it pushed
-- back, else NULL; AIMD constants: $8 floor rate, $9 seconds a decrease
-- holds (one per episode), $10 increase per second of success (msgs/s).
--
-- All under the row lock of one UPDATE: workers serialise on this row for
-- microseconds, and whatever their number the grants in any interval of t
-- seconds never exceed rate * t + capacity. The learned rate changes here
-- too, so many workers reporting the same push-back at once lower it once
-- (the second finds decreased_at within $9 s), and the increase is computed
-- from the time elapsed since the last one, not per report: ten workers
-- raise it no faster than one. While nothing was learned (learned_rate
-- NULL) none of it applies and the statement is as cheap as before.
WITH clock AS (SELECT clock_timestamp() AS now_ts),
bucket AS (
    SELECT b.name, c.now_ts, b.tokens, b.refilled_at, b.learned_rate, b.decreased_at,
           least($2::float8, coalesce(b.learned_rate, $2::float8)) AS was_rate,
           CASE WHEN b.hour_start = date_trunc('hour', c.now_ts) THEN b.hour_count ELSE 0 END
               AS used_this_hour,
           $7::text IS NOT NULL AND (b.decreased_at IS NULL
               OR c.now_ts - b.decreased_at >= make_interval(secs => $9::float8)) AS decrease,
           $7::text IS NULL AND $6::int > 0 AND b.learned_rate IS NOT NULL
               AND c.now_ts - b.decreased_at >= make_interval(secs => $9::float8) AS increase,
           greatest(extract(epoch FROM c.now_ts - greatest(b.raised_at, b.decreased_at)), 0)
               AS since_change
    FROM rate_buckets b, clock c
    WHERE b.name = $1
    FOR UPDATE OF b
),
learned AS (
    SELECT bucket.*,
           CASE WHEN decrease THEN greatest($8::float8, was_rate * 0.5)
                -- Success for at most 2 s counts: an idle gap is not success.
                WHEN increase THEN least($2::float8, was_rate + $10::float8 * least(since_change, 2.0))
                ELSE was_rate END AS new_rate
    FROM bucket
),
refilled AS (
    SELECT learned.*,
           least(greatest(1.0, new_rate * $3::float8),
                 tokens + was_rate * greatest(extract(epoch FROM now_ts - refilled_at), 0)
           ) AS available
    FROM learned
),
grant_ AS (
    SELECT refilled.*,
           greatest(0, least($4::int, floor(available)::int,
                             coalesce($5::int - used_this_hour, $4::int)))::int AS granted
    FROM refilled
)
UPDATE rate_buckets r
SET tokens = g.available - g.granted, refilled_at = g.now_ts,
    hour_start = date_trunc('hour', g.now_ts), hour_count = g.used_this_hour + g.granted,
    -- Back at the ceiling: nothing learned any more (the reason stays, with its time).
    learned_rate = CASE WHEN g.new_rate >= $2::float8 THEN NULL ELSE g.new_rate END,
    learned_reason = CASE WHEN g.decrease THEN $7::text ELSE r.learned_reason END,
    decreased_at = CASE WHEN g.decrease THEN g.now_ts ELSE r.decreased_at END,
    raised_at = CASE WHEN g.increase OR g.decrease THEN g.now_ts ELSE r.raised_at END
FROM grant_ g
WHERE r.name = g.name
RETURNING g.granted, g.available - g.granted AS tokens_left,
          g.used_this_hour + g.granted AS used_this_hour,
          g.new_rate AS rate, g.decrease AS decreased,
          CASE WHEN g.new_rate < $2::float8 THEN coalesce(r.learned_reason, $7::text) END
              AS reason;

-- name: ensure_rate_bucket
INSERT INTO rate_buckets (name, tokens) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING;

-- name: rate_learned
-- What ops sees: the learned rate (NULL: at the configured ceiling), why, since when.
SELECT learned_rate, learned_reason, decreased_at
FROM rate_buckets WHERE name = $1;

-- name: relay_report
-- A worker adds what its connections saw since its last report: $1 a JSON
-- array of {relay, state, sent, pushed_back, refused, connections,
-- last_error}, one per relay. One statement for every relay, every few seconds.
INSERT INTO relay_health AS h (relay, state, sent, pushed_back, refused, connections,
                               last_error, last_error_at, updated_at)
SELECT r.relay, r.state, r.sent, r.pushed_back, r.refused, r.connections, r.last_error,
       CASE WHEN r.last_error IS NOT NULL THEN now() END, now()
FROM jsonb_to_recordset($1::jsonb) AS r(relay text, state text, sent bigint,
                                        pushed_back bigint, refused bigint,
                                        connections int, last_error text)
ON CONFLICT (relay) DO UPDATE
SET state = excluded.state,
    sent = h.sent + excluded.sent,
    pushed_back = h.pushed_back + excluded.pushed_back,
    refused = h.refused + excluded.refused,
    connections = excluded.connections,
    last_error = coalesce(excluded.last_error, h.last_error),
    last_error_at = coalesce(excluded.last_error_at, h.last_error_at),
    updated_at = now();

-- name: relay_health
-- Relays some worker reported within the hour (they report every few
-- seconds while running): one taken out of SMTP_URL drops out of sight.
SELECT relay, state, sent, pushed_back, refused, connections, last_error, last_error_at,
       updated_at
FROM relay_health WHERE updated_at > now() - interval '1 hour' ORDER BY relay;

-- name: prune_relay_health
-- Relays nobody has reported for a week: gone from SMTP_URL everywhere.
DELETE FROM relay_health WHERE updated_at < now() - interval '7 days';
