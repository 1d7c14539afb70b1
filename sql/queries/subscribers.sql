-- name: sign_up
-- The whole signup in one statement (one round trip, one implicit
-- transaction), so the public form stays fast under load:
--   1. the per-IP limit: fewer than $2 accepted hits for bucket $1 in the last
--      hour (counting stops at the limit, so this reads at most $2 index rows);
--   2. skip addresses whose keyed hash is suppressed ($3);
--   3. upsert the subscriber ($4 email, $5 name, $6 source) — a known address
--      keeps its status; only rows that may need a confirmation mail come back
--      (not active, not suppressed);
--   4. the per-address limit: fewer than $8 mails for bucket $7 in a day;
--   5. record the signup evidence ($9 ip, $10 user agent, $11 consent version),
--      log the hits and queue the confirmation mail.
-- Every CTE sees one snapshot; ON CONFLICT makes concurrent signups of one
-- address converge on a single row.
WITH gate AS (
    SELECT (SELECT count(*) FROM (
                SELECT 1 FROM signup_hits
                WHERE bucket = $1 AND at > now() - interval '1 hour' LIMIT $2::int
            ) recent) < $2::int AS ip_ok,
           NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = $3) AS not_suppressed
), ip_hit AS (
    INSERT INTO signup_hits (bucket) SELECT $1 FROM gate WHERE ip_ok
), upserted AS (
    INSERT INTO subscribers (email, name, source)
    SELECT $4, $5, $6 FROM gate WHERE ip_ok AND not_suppressed
    ON CONFLICT ((lower(email))) DO UPDATE
    SET name = CASE WHEN subscribers.status = 'pending'
                    THEN coalesce(excluded.name, subscribers.name)
                    ELSE subscribers.name END,
        updated_at = now()
    WHERE subscribers.status NOT IN ('active', 'suppressed')
    RETURNING id, email, name
), mailable AS (
    SELECT id, email, name FROM upserted
    WHERE (SELECT count(*) FROM (
               SELECT 1 FROM signup_hits
               WHERE bucket = $7 AND at > now() - interval '1 day' LIMIT $8::int
           ) recent) < $8::int
), address_hit AS (
    INSERT INTO signup_hits (bucket) SELECT $7 FROM mailable
), evidence AS (
    INSERT INTO consent_events (subscriber_id, kind, ip, user_agent, source, consent_version)
    SELECT id, 'signup', $9::inet, $10, $6, $11 FROM mailable
), mail AS (
    INSERT INTO outbox (kind, priority, recipient, subscriber_id, payload)
    SELECT 'confirm', 0, email, id, jsonb_build_object('subscriber_id', id, 'name', name)
    FROM mailable
)
SELECT ip_ok FROM gate;

-- name: prune_signup_hits
-- Hits older than the longest window (a day) no longer count.
DELETE FROM signup_hits WHERE at < now() - interval '1 day';

-- name: is_suppressed
SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = $1);

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

-- name: address_hash_key
SELECT value FROM instance_keys WHERE name = 'address_hash';
