-- Issues: drafts, states, the recipient snapshot, the scheduler and the archive.

-- name: insert_issue
INSERT INTO issues (title, intro, news_item_ids, is_advertisement, greeting)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: get_issue
SELECT * FROM issues WHERE id = $1;

-- name: lock_issue
-- Every state change reads the issue under a row lock first, so two editors
-- (or an editor and the scheduler) never both act on the same old state.
SELECT * FROM issues WHERE id = $1 FOR UPDATE;

-- name: update_issue_draft
UPDATE issues
SET title = $2, intro = $3, news_item_ids = $4, is_advertisement = $5, greeting = $6,
    updated_at = now()
WHERE id = $1
RETURNING *;

-- name: delete_issue
DELETE FROM issues WHERE id = $1;

-- name: list_issues
SELECT * FROM issues
WHERE ($1::text IS NULL OR status = $1)
ORDER BY id DESC
LIMIT $2 OFFSET $3;

-- name: count_issues
SELECT count(*) FROM issues WHERE ($1::text IS NULL OR status = $1);

-- name: set_issue_schedule
UPDATE issues SET status = 'scheduled', send_at = $2, start_problem = NULL, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: unschedule_issue
UPDATE issues SET status = 'draft', send_at = NULL, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: set_issue_status
UPDATE issues SET status = $2, updated_at = now(),
    finished_at = CASE WHEN $2 IN ('sent', 'cancelled') THEN coalesce(finished_at, now())
                       ELSE finished_at END
WHERE id = $1
RETURNING *;

-- name: lock_issue_numbers
-- Archive numbers are gap-free (a sequence would leave holes on rollback), so
-- whoever starts an issue holds this transaction-scoped lock while taking one.
SELECT pg_advisory_xact_lock(7234561001);

-- name: try_lock_issue_numbers
-- The scheduler's variant: if another worker is starting issues right now it
-- will start every due one in send_at order, so this one need not wait. That
-- also keeps archive numbers in due order when several issues fall due at once.
SELECT pg_try_advisory_xact_lock(7234561001);

-- name: next_issue_number
SELECT coalesce(max(number), 0) + 1 FROM issues;

-- name: issue_numbers_of_items
-- Which of the news items $1 already went out, in which numbered issues
-- (other than $2): marks in the console's item picker. Only issues that
-- started sending have a number; they are few next to the items, and the
-- array overlap test reads each once.
SELECT item AS news_item_id, array_agg(i.number ORDER BY i.number) AS numbers
FROM issues i, unnest(i.news_item_ids) AS item
WHERE i.number IS NOT NULL
  AND i.news_item_ids && $1::bigint[]
  AND item = ANY($1::bigint[])
  AND ($2::bigint IS NULL OR i.id <> $2)
GROUP BY item;

-- name: store_issue_snapshot
UPDATE issues
SET number = $2, subject = $3, rendered_html = $4, rendered_text = $5, web_content = $6,
    status = 'sending', started_at = now(), updated_at = now(), start_problem = NULL
WHERE id = $1;

-- name: snapshot_recipients
-- The recipient snapshot: one set-based INSERT ... SELECT, no round trip per
-- subscriber. The partial index subscribers_active (id) WHERE status = 'active'
-- feeds it in id order, so deliveries are created in the order they are sent.
-- ON CONFLICT keeps exactly one row per (issue, subscriber) even if rerun.
INSERT INTO deliveries (issue_id, subscriber_id)
SELECT $1, s.id FROM subscribers s
WHERE s.status = 'active'
ORDER BY s.id
ON CONFLICT (issue_id, subscriber_id) DO NOTHING;

-- name: skip_issue_queued_deliveries
-- Cancel: whatever has not been handed to SMTP yet is never sent.
UPDATE deliveries
SET status = 'skipped', lease_until = NULL, last_error = 'issue cancelled', reason = 'cancelled'
WHERE issue_id = $1 AND status = 'queued';

-- name: claim_due_issue
-- One scheduled issue whose time has come. SKIP LOCKED: a second scheduler
-- passes over an issue another is starting; once that one commits the row is
-- 'sending' and no longer matches, so each issue starts exactly once.
-- issues_due (send_at) WHERE status = 'scheduled' keeps this a tiny scan.
SELECT id FROM issues
WHERE status = 'scheduled' AND send_at <= now() AND NOT (id = ANY($1::bigint[]))
ORDER BY send_at, id
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: issue_start_failed
-- The scheduler could not start it: back to draft with why ($2), so it is not
-- tried again until an editor has looked (schedule and start clear the reason).
UPDATE issues SET status = 'draft', send_at = NULL, start_problem = $2, updated_at = now()
WHERE id = $1 AND status = 'scheduled';

-- name: archive_issues
-- Issues whose mail has gone out (or is going out: recipients may already be
-- clicking "웹에서 보기").
SELECT number, title, subject, started_at, finished_at FROM issues
WHERE number IS NOT NULL AND status IN ('sending', 'paused', 'sent')
ORDER BY number DESC
LIMIT $1 OFFSET $2;

-- name: count_archive_issues
SELECT count(*) FROM issues
WHERE number IS NOT NULL AND status IN ('sending', 'paused', 'sent');

-- name: archive_issue
-- web_content is NULL for issues sent before the archive had pages of its
-- own; rendered_html stays the fallback for those.
SELECT number, title, subject, rendered_html, web_content, started_at FROM issues
WHERE number = $1 AND status IN ('sending', 'paused', 'sent');

-- name: count_recipients
-- Who an issue would go to if it started now (for the confirmation page);
-- an index-only count on the partial index subscribers_active.
SELECT count(*) FROM subscribers WHERE status = 'active';

-- name: requeue_for_resend
-- A further round ($2) of a sent issue: its failed deliveries whose reason is
-- in $3 (not the recipient's doing) go back to the queue as new -- attempts,
-- deferrals and the old error cleared, the maximum age counted from now --
-- if the subscriber is still active. The caller holds the issue's row lock,
-- so two resends never both see these rows failed. deliveries_issue_stats
-- (issue_id, status) finds the failed rows without reading the sent ones.
UPDATE deliveries d
SET status = 'queued', round = $2, reason = NULL, attempts = 0, deferrals = 0,
    last_error = NULL, smtp_code = NULL, next_attempt_at = now(), requeued_at = now(),
    lease_until = NULL, worker = NULL
FROM subscribers s
WHERE d.issue_id = $1 AND d.status = 'failed' AND d.reason = ANY($3::text[])
  AND s.id = d.subscriber_id AND s.status = 'active';

-- name: start_issue_round
-- The issue sends again ($2 = the new round, $3 deliveries re-queued, $4 who
-- asked). The round that just ended is written down first (the first round
-- gets its row only now, with every delivery of the issue), then the new one.
WITH ended AS (
    INSERT INTO issue_rounds (issue_id, round, started_at, finished_at, deliveries)
    SELECT i.id, i.round, coalesce(i.started_at, now()), i.finished_at,
           (SELECT count(*) FROM deliveries d WHERE d.issue_id = i.id)
    FROM issues i WHERE i.id = $1
    ON CONFLICT (issue_id, round) DO UPDATE SET finished_at = excluded.finished_at
), started AS (
    INSERT INTO issue_rounds (issue_id, round, started_at, deliveries, requested_by)
    VALUES ($1, $2, now(), $3, $4)
)
UPDATE issues SET status = 'sending', round = $2, finished_at = NULL, updated_at = now()
WHERE id = $1
RETURNING *;
