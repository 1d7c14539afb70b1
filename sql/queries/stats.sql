-- Ops figures. newsletter/stats.py runs these inside one REPEATABLE READ,
-- READ ONLY transaction, so every figure of a report comes from the same
-- snapshot (and the same now()) even while workers keep updating rows.

-- name: stats_subscriber_counts
-- Index-only scan of subscribers_status (status, id).
SELECT status, count(*) AS count FROM subscribers GROUP BY status;

-- name: stats_subscriber_growth
-- $1 = time zone, $2 = number of days (today included). Each series is a
-- range scan of its own time index (0006_ops.sql) over the window only.
WITH bounds AS (
    SELECT (now() AT TIME ZONE $1)::date - ($2::int - 1) AS first_day,
           (now() AT TIME ZONE $1)::date AS last_day
), since AS (
    SELECT first_day, (first_day::timestamp AT TIME ZONE $1) AS since FROM bounds
), signups AS (
    SELECT (created_at AT TIME ZONE $1)::date AS day, count(*) AS n
    FROM subscribers, since WHERE created_at >= since.since GROUP BY 1
), confirmations AS (
    SELECT (confirmed_at AT TIME ZONE $1)::date AS day, count(*) AS n
    FROM subscribers, since WHERE confirmed_at >= since.since GROUP BY 1
), leaves AS (
    SELECT (unsubscribed_at AT TIME ZONE $1)::date AS day, count(*) AS n
    FROM subscribers, since WHERE unsubscribed_at >= since.since GROUP BY 1
)
SELECT d::date AS day,
       coalesce(s.n, 0) AS signups,
       coalesce(c.n, 0) AS confirmations,
       coalesce(l.n, 0) AS leaves
FROM bounds, generate_series(bounds.first_day, bounds.last_day, interval '1 day') AS d
LEFT JOIN signups s ON s.day = d::date
LEFT JOIN confirmations c ON c.day = d::date
LEFT JOIN leaves l ON l.day = d::date
ORDER BY day;

-- name: stats_recent_issues
-- Issues that have begun sending (or were meant to), the one sending first.
-- A handful of rows from a small table.
SELECT id, number, title, status, started_at, finished_at, now() AS as_of
FROM issues
WHERE status IN ('sending', 'paused', 'sent', 'cancelled') OR started_at IS NOT NULL
ORDER BY (status = 'sending') DESC, started_at DESC NULLS LAST, id DESC
LIMIT $1;

-- name: stats_issue_header
SELECT id, number, title, status, started_at, finished_at, now() AS as_of
FROM issues WHERE id = $1;

-- name: stats_delivery_counts
-- One pass per issue over deliveries_issue_stats (issue_id, status) INCLUDE
-- (attempts, smtp_code, sent_at): an index-only scan, no heap rows decoded.
-- Every figure is a FILTER over the same rows, so queued + sending + done
-- always equals recipients: nothing can be negative or exceed 100 %.
SELECT issue_id,
       count(*) AS recipients,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'sending') AS sending,
       count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'bounced') AS bounced,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       coalesce(sum(attempts), 0)::bigint AS attempts,
       count(*) FILTER (WHERE status IN ('sent', 'bounced')
                          AND sent_at > now() - interval '60 seconds') AS sent_last_minute
FROM deliveries
WHERE issue_id = ANY($1::bigint[])
GROUP BY issue_id;

-- name: stats_error_codes
-- Why messages did not go: final failures and bounces, plus rows waiting to
-- retry after a transient error. smtp_code NULL means no SMTP reply at all
-- (connection refused, timeout). Served by the same covering index.
SELECT issue_id, smtp_code, count(*) AS count
FROM deliveries
WHERE issue_id = ANY($1::bigint[])
  AND (status IN ('failed', 'bounced') OR (status = 'queued' AND attempts > 0))
GROUP BY issue_id, smtp_code
ORDER BY issue_id, count DESC, smtp_code NULLS LAST;

-- name: stats_sends_per_minute
-- $1 issue, $2 end of the chart, $3 minutes. A range scan at the end of
-- deliveries_issue_sent_at, so the cost depends on the window, not the issue.
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', $2::timestamptz) - ($3::int - 1) * interval '1 minute',
                           date_trunc('minute', $2::timestamptz), interval '1 minute') AS minute
), sends AS (
    SELECT date_trunc('minute', sent_at) AS minute, count(*) AS n
    FROM deliveries
    WHERE issue_id = $1 AND sent_at IS NOT NULL
      AND sent_at >= date_trunc('minute', $2::timestamptz) - ($3::int - 1) * interval '1 minute'
      AND sent_at < date_trunc('minute', $2::timestamptz) + interval '1 minute'
      AND status IN ('sent', 'bounced')
    GROUP BY 1
)
SELECT m.minute, coalesce(s.n, 0) AS sent
FROM minutes m LEFT JOIN sends s USING (minute)
ORDER BY m.minute;

-- name: stats_outbox_depth
-- Transactional mail waiting or in flight: the partial indexes outbox_due and
-- outbox_leased hold exactly these rows.
SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'sending') AS sending,
       now() AS as_of
FROM outbox WHERE status IN ('queued', 'sending');

-- name: metrics_delivery_results
-- Per issue, status and SMTP code, for /metrics. Same covering index as
-- stats_delivery_counts; bounded to the issues stats_recent_issues returns.
SELECT issue_id, status, smtp_code, count(*) AS count
FROM deliveries
WHERE issue_id = ANY($1::bigint[])
GROUP BY issue_id, status, smtp_code;

-- name: ops_session_key
-- The /ops login cookie names a key id; revoking the key ends the session at
-- the next page load. Primary-key lookup.
SELECT id, name, role FROM api_keys WHERE id = $1 AND revoked_at IS NULL;
