-- The delivery record of an issue: who did not get it, and why. The reason
-- codes are set where a delivery becomes final or is put back to wait
-- (0015_engagement.sql lists them); the enhanced status code (RFC 3463) of
-- the last reply, stored beside it (core/replies.py reads it), lets the words
-- tell "mailbox unknown" from "mailbox full".

-- name: delivery_record_counts
-- One final status ($2: failed, bounced, skipped) of issue $1, grouped by
-- what explains it; `active` counts the rows whose subscriber is still active
-- (what a resend would take). deliveries_issue_stats (issue_id, status) reads
-- only those rows, never the sent ones.
SELECT d.reason, d.smtp_code,
       d.enhanced_code AS enhanced,
       count(*) AS count,
       count(*) FILTER (WHERE s.status = 'active') AS active
FROM deliveries d
LEFT JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.issue_id = $1 AND d.status = $2
GROUP BY 1, 2, 3;

-- name: delivery_record_waiting_counts
-- Deferred: tried, and waiting to be tried again (the partial index
-- deliveries_waiting holds exactly these rows).
SELECT d.reason, d.smtp_code,
       d.enhanced_code AS enhanced,
       count(*) AS count, 0::bigint AS active
FROM deliveries d
WHERE d.issue_id = $1 AND d.status IN ('queued', 'sending') AND d.reason IS NOT NULL
GROUP BY 1, 2, 3;

-- name: delivery_record_page
-- Keyset page (id > $3, $4 rows) of one final status, with the address (admins
-- only; the caller decides). An erased subscriber leaves NULL address and name.
SELECT d.id, d.subscriber_id, s.email, s.name, d.status, d.reason, d.smtp_code,
       d.enhanced_code AS enhanced,
       d.last_error, d.attempts, d.deferrals, d.round, d.next_attempt_at, d.sent_at,
       d.bounced_at
FROM deliveries d
LEFT JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.issue_id = $1 AND d.status = $2 AND d.id > $3
ORDER BY d.id
LIMIT $4;

-- name: delivery_record_waiting_page
-- The same for deferred rows, in id order straight from deliveries_waiting.
SELECT d.id, d.subscriber_id, s.email, s.name, d.status, d.reason, d.smtp_code,
       d.enhanced_code AS enhanced,
       d.last_error, d.attempts, d.deferrals, d.round, d.next_attempt_at, d.sent_at,
       d.bounced_at
FROM deliveries d
LEFT JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.issue_id = $1 AND d.status IN ('queued', 'sending') AND d.reason IS NOT NULL
  AND d.id > $2
ORDER BY d.id
LIMIT $3;

-- name: delivery_record_issue
SELECT id, status, round FROM issues WHERE id = $1;
