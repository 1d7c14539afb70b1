-- Ops figures. newsletter/ops/stats.py runs these inside one REPEATABLE READ,
-- READ ONLY transaction, so every figure of a report comes from the same
-- snapshot (and the same now()) even while workers keep updating rows.

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
    -- Residents' own signups and admins' imports are counted apart: an import
    -- of 5,000 names is not a surge of interest.
    SELECT (created_at AT TIME ZONE $1)::date AS day,
           count(*) FILTER (WHERE origin = 'signup') AS n,
           count(*) FILTER (WHERE origin <> 'signup') AS imported
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
       coalesce(s.imported, 0) AS imports,
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
SELECT id, number, title, status, round, started_at, finished_at, now() AS as_of
FROM issues
WHERE status IN ('sending', 'paused', 'sent', 'cancelled') OR started_at IS NOT NULL
ORDER BY (status = 'sending') DESC, started_at DESC NULLS LAST, id DESC
LIMIT $1;

-- name: stats_issue_header
SELECT id, number, title, status, round, started_at, finished_at, now() AS as_of
FROM issues WHERE id = $1;

-- name: stats_delivery_groups
-- The one pass over an issue's deliveries that every figure is derived from
-- (in Python: status counts, attempts, error codes, /metrics counters). One
-- GROUP BY with few aggregates costs about a third of the same figures as a
-- row of FILTER clauses, each of which is evaluated for every row. Grouped
-- output is tiny: statuses x SMTP codes. With many issues in the table,
-- deliveries_issue_stats (issue_id, status) INCLUDE (attempts, smtp_code,
-- sent_at) serves it as an index-only scan of just this issue's range.
-- Every row lands in exactly one group, so queued + sending + done always
-- equals recipients: nothing can be negative or exceed 100 %.
SELECT issue_id, status, smtp_code,
       count(*) AS count,
       count(*) FILTER (WHERE attempts > 0) AS tried,
       coalesce(sum(attempts), 0)::bigint AS attempts
FROM deliveries
WHERE issue_id = ANY($1::bigint[])
GROUP BY issue_id, status, smtp_code;

-- name: stats_sent_last_minute
-- Messages accepted by SMTP in the last 60 s. Only an accepted message gets
-- a sent_at (a later DSN bounce keeps it), so no status test is needed and
-- this is an index-only range scan at the end of deliveries_issue_sent_at.
SELECT issue_id, count(*) AS count
FROM deliveries
WHERE issue_id = ANY($1::bigint[])
  AND sent_at > now() - interval '60 seconds'
GROUP BY issue_id;

-- name: stats_sends_per_minute
-- $1 issue, $2 end of the chart, $3 minutes. An index-only range scan of
-- deliveries_issue_sent_at (sent_at is set only when SMTP accepted the
-- message), so the cost depends on the window, not on the issue's size.
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', $2::timestamptz) - ($3::int - 1) * interval '1 minute',
                           date_trunc('minute', $2::timestamptz), interval '1 minute') AS minute
), sends AS (
    SELECT date_trunc('minute', sent_at) AS minute, count(*) AS n
    FROM deliveries
    WHERE issue_id = $1 AND sent_at IS NOT NULL
      AND sent_at >= date_trunc('minute', $2::timestamptz) - ($3::int - 1) * interval '1 minute'
      AND sent_at < date_trunc('minute', $2::timestamptz) + interval '1 minute'
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

-- name: stats_next_scheduled
-- The issue due next; issues_due (send_at) WHERE status = 'scheduled' serves it.
SELECT id, number, title, send_at FROM issues
WHERE status = 'scheduled'
ORDER BY send_at, id
LIMIT 1;

-- name: stats_last_sent
-- The issue that finished last (a handful of rows).
SELECT id FROM issues WHERE status = 'sent' ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1;

-- name: stats_issue_clicks
-- Clicks per item and hour for the issues $1, every linked item listed (with
-- no hours yet if nobody clicked). Both tables are tiny: a few links per
-- issue, at most one row per link and hour.
SELECT l.issue_id, l.news_item_id, l.title, l.url, c.hour, coalesce(c.clicks, 0) AS clicks
FROM issue_links l
LEFT JOIN click_counts c USING (issue_id, news_item_id)
WHERE l.issue_id = ANY($1::bigint[])
ORDER BY l.issue_id, l.position, c.hour;

-- name: stats_issue_rounds
-- The rounds of issues that were resent (issue_rounds holds nothing for the others).
SELECT issue_id, round, started_at, finished_at, deliveries, requested_by
FROM issue_rounds
WHERE issue_id = ANY($1::bigint[])
ORDER BY issue_id, round;

-- name: stats_round_results
-- Where the re-queued deliveries are now, per round: an index-only scan of
-- the small partial index deliveries_resent (round > 1). Round 1's figures
-- are the issue's minus these.
SELECT issue_id, round, status, count(*) AS count
FROM deliveries
WHERE issue_id = ANY($1::bigint[]) AND round > 1
GROUP BY issue_id, round, status;
