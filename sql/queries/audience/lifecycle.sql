-- Erasure and the daily consent lifecycle: re-confirmation, lapse, retention.

-- name: roster_lock_by_id
SELECT id, email, status FROM subscribers WHERE id = $1 FOR UPDATE;

-- name: roster_lock_by_email
SELECT id, email, status FROM subscribers WHERE lower(email) = lower($1) FOR UPDATE;

-- name: suppress_hash
-- Erasure wins over any earlier reason (bounce, complaint): it is the strongest.
INSERT INTO suppressions (email_hash, reason) VALUES ($1, $2)
ON CONFLICT (email_hash) DO UPDATE SET reason = excluded.reason;

-- name: suppress_hash_keep
-- Retention purge of an already-suppressed row: keep whatever reason exists.
INSERT INTO suppressions (email_hash, reason) VALUES ($1, $2)
ON CONFLICT (email_hash) DO NOTHING;

-- name: erase_personal_data
-- Everything that names the person, in one statement: queued issue mail is
-- skipped (deliveries keep the row, subscriber_id becomes NULL by the FK),
-- transactional mail that carries the address is deleted (signup limit hits
-- are keyed by a hash, never the address), and the subscriber row with its consent
-- events (ON DELETE CASCADE) is deleted. $1 id, $2 address.
WITH skipped AS (
    UPDATE deliveries SET status = 'skipped', last_error = 'erased', reason = 'erased'
    WHERE subscriber_id = $1 AND status = 'queued'
), mails AS (
    DELETE FROM outbox WHERE subscriber_id IS NULL AND lower(recipient) = lower($2::text)
)
DELETE FROM subscribers WHERE id = $1;

-- name: remember_departed
INSERT INTO departed_addresses (email_hash, reason)
SELECT unnest($1::text[]), $2
ON CONFLICT (email_hash) DO NOTHING;

-- name: claim_daily_job
-- Exactly once per day across every worker: the upsert only "wins" when the
-- stored date is older than today's. A second worker racing for the same row
-- waits on the row lock, then re-checks the WHERE against the committed date
-- and gets no row back. If the job fails, its transaction rolls the date
-- back and the next worker tick retries.
INSERT INTO jobs (name, last_run_on, last_run_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE
SET last_run_on = excluded.last_run_on, last_run_at = excluded.last_run_at
WHERE jobs.last_run_on < excluded.last_run_on
RETURNING name;

-- name: finish_daily_job
UPDATE jobs SET last_result = $2 WHERE name = $1;

-- name: lifecycle_reconfirm_due
-- Active subscribers whose last consent is older than $2 days get one
-- re-confirmation mail ($3 outbox priority, $4 grace days for the deadline).
-- A sequential scan once a day is fine even at a million rows.
WITH due AS (
    UPDATE subscribers
    SET reconfirm_sent_at = $1::timestamptz, updated_at = $1::timestamptz
    WHERE status = 'active' AND reconfirm_sent_at IS NULL
      AND coalesce(last_consent_at, confirmed_at, created_at)
          <= $1::timestamptz - make_interval(days => $2::int)
    RETURNING id, email, name, language,
              coalesce(last_consent_at, confirmed_at, created_at) AS consented_at
)
INSERT INTO outbox (kind, priority, recipient, subscriber_id, payload)
SELECT 'reconfirm', $3::smallint, email, id,
       jsonb_build_object('subscriber_id', id, 'name', name, 'consented_at', consented_at,
                          'deadline', $1::timestamptz + make_interval(days => $4::int),
                          'language', language)
FROM due
RETURNING subscriber_id;

-- name: lifecycle_lapse
-- No answer within $2 days of the re-confirmation mail: the subscription
-- lapses, queued issue mail is skipped, the lapse is recorded as consent
-- evidence and the result notice (sender, date, result) is queued.
WITH lapsed AS (
    UPDATE subscribers
    SET status = 'lapsed', unsubscribed_at = $1::timestamptz, updated_at = $1::timestamptz
    WHERE status = 'active' AND reconfirm_sent_at IS NOT NULL
      AND reconfirm_sent_at <= $1::timestamptz - make_interval(days => $2::int)
    RETURNING id, email, name, language
), skipped AS (
    UPDATE deliveries d SET status = 'skipped', last_error = 'lapsed', reason = 'lapsed'
    FROM lapsed l WHERE d.subscriber_id = l.id AND d.status = 'queued'
), evidence AS (
    INSERT INTO consent_events (subscriber_id, kind, occurred_at, source, recorded_by)
    SELECT id, 'lapse', $1::timestamptz, 'no re-confirmation', 'lifecycle' FROM lapsed
)
INSERT INTO outbox (kind, priority, recipient, subscriber_id, payload)
SELECT 'reconfirm_notice', $3::smallint, email, id,
       jsonb_build_object('subscriber_id', id, 'name', name, 'at', $1::timestamptz,
                          'result', 'lapsed', 'language', language)
FROM lapsed
RETURNING subscriber_id;

-- name: lifecycle_purge
-- Destroy leavers' personal data after the retention period ($2 days):
-- unsubscribed and lapsed rows, suppressed rows (their hash stays in
-- suppressions), and pending rows nobody confirmed within $3 days.
-- Consent events and outbox rows go with them (ON DELETE CASCADE);
-- deliveries keep their counts (ON DELETE SET NULL). The addresses come
-- back once so the caller can keep their keyed hashes.
DELETE FROM subscribers
WHERE (status IN ('unsubscribed', 'lapsed', 'suppressed')
       AND coalesce(unsubscribed_at, updated_at) <= $1::timestamptz - make_interval(days => $2::int))
   OR (status = 'pending' AND created_at <= $1::timestamptz - make_interval(days => $3::int))
RETURNING id, email, status, suppressed_reason;

-- name: reconfirm_subscriber
-- The resident answered the re-confirmation mail: consent is fresh again.
-- Only while a request is open (reconfirm_sent_at, cleared here): the link
-- acts once, and a replay of it changes nothing and mails nobody.
UPDATE subscribers
SET last_consent_at = $2::timestamptz, reconfirm_sent_at = NULL, updated_at = $2::timestamptz
WHERE id = $1 AND status = 'active' AND reconfirm_sent_at IS NOT NULL
RETURNING id;

-- name: insert_consent_event_at
INSERT INTO consent_events (subscriber_id, kind, occurred_at, ip, user_agent, source,
                            consent_version, recorded_by)
VALUES ($1, $2, $3, $4::inet, $5, $6, $7, $8);
