-- name: signup_hit
-- Count one hit in the current fixed window ($2 = 'hour' or 'day') and return
-- the running total. One row per bucket and window keeps this an index upsert.
INSERT INTO signup_counters (bucket, window_start)
VALUES ($1, date_trunc($2, now()))
ON CONFLICT (bucket, window_start) DO UPDATE SET hits = signup_counters.hits + 1
RETURNING hits;

-- name: prune_signup_counters
DELETE FROM signup_counters WHERE window_start < now() - interval '2 days';

-- name: is_suppressed
SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = $1);

-- name: upsert_signup
-- New address: a pending row. Known address: keep its status (a signup never
-- activates anybody by itself), refresh the name only while still pending.
INSERT INTO subscribers (email, name, source)
VALUES ($1, $2, $3)
ON CONFLICT ((lower(email))) DO UPDATE
SET name = CASE WHEN subscribers.status = 'pending'
                THEN coalesce(excluded.name, subscribers.name)
                ELSE subscribers.name END,
    updated_at = now()
RETURNING id, status;

-- name: lock_subscriber
SELECT id, email, name, status, unsubscribed_at FROM subscribers WHERE id = $1 FOR UPDATE;

-- name: get_subscriber
SELECT id, email, name, status, source, created_at, updated_at, confirmed_at,
       unsubscribed_at, last_consent_at, soft_bounces, suppressed_reason
FROM subscribers WHERE id = $1;

-- name: get_subscriber_by_email
SELECT id, email, name, status, source, created_at, updated_at, confirmed_at,
       unsubscribed_at, last_consent_at, soft_bounces, suppressed_reason
FROM subscribers WHERE lower(email) = lower($1);

-- name: activate_subscriber
UPDATE subscribers
SET status = 'active', confirmed_at = now(), last_consent_at = now(),
    unsubscribed_at = NULL, reconfirm_sent_at = NULL, updated_at = now()
WHERE id = $1
RETURNING now();

-- name: deactivate_subscriber
UPDATE subscribers
SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
WHERE id = $1
RETURNING now();

-- name: insert_consent_event
INSERT INTO consent_events (subscriber_id, kind, ip, user_agent, source, consent_version)
VALUES ($1, $2, $3::inet, $4, $5, $6);

-- name: consent_events_for
SELECT kind, occurred_at, host(ip) AS ip, user_agent, source, consent_version
FROM consent_events WHERE subscriber_id = $1 ORDER BY occurred_at, id;

-- name: skip_queued_deliveries
-- Takes effect for every message not yet claimed by a worker; the worker
-- re-checks the subscriber's status for rows it already holds.
UPDATE deliveries SET status = 'skipped', last_error = $2
WHERE subscriber_id = $1 AND status = 'queued';

-- name: cancel_queued_outbox
UPDATE outbox SET status = 'cancelled'
WHERE subscriber_id = $1 AND status = 'queued';
