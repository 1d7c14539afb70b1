-- The resident's lifecycle: signup, confirm, unsubscribe, consent evidence.

-- name: sign_up
-- Any number of signups in one statement (one round trip, one commit for all
-- of them: newsletter/signup_batch.py gathers the ones arriving together).
-- Row n of the arrays is one signup: $1 ip bucket, $2 ip limit per hour,
-- $3 keyed address hash, $4 email, $5 name, $6 source, $7 address (mailbox) bucket,
-- $8 address limit per day, $9 ip, $10 user agent, $11 consent version,
-- $12 language (of the page signed up on; a known address keeps its own).
-- The caller never sends one address twice (ON CONFLICT cannot touch a row
-- twice in one statement). For each row, as for a lone signup:
--   1. the per-IP limit: the hits already logged for its bucket in the last
--      hour (counting stops at the limit, so at most limit index rows) plus
--      its rank among this statement's rows of the same bucket must stay
--      within the limit — exact however many come from one IP;
--   2. skip addresses whose keyed hash is suppressed;
--   3. insert new addresses; a known address is left exactly as it is, and
--      only rows that may need a confirmation mail go on (not active, not
--      suppressed);
--   4. the per-address limit: fewer than the limit mails for its bucket a day;
--   5. record the signup evidence, log the hits and queue the confirmation mail.
-- Every CTE sees one snapshot; ON CONFLICT makes concurrent signups of one
-- address (from other statements) converge on a single row (a signup racing
-- another statement's insert of the same new address sends no second mail:
-- the other statement does). Returns ip_ok per
-- row, in input order.
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::int[], $9::text[], $10::text[],
                         $11::text[], $12::text[])
        WITH ORDINALITY AS t(ip_bucket, ip_limit, email_hash, email, name, source,
                             email_bucket, address_limit, ip, user_agent,
                             consent_version, language, n)
), gate AS MATERIALIZED (
    SELECT input.*,
           (SELECT count(*) FROM (
                SELECT 1 FROM signup_hits
                WHERE bucket = input.ip_bucket AND at > now() - interval '1 hour'
                LIMIT input.ip_limit
            ) recent)
           + row_number() OVER (PARTITION BY input.ip_bucket ORDER BY input.n)
           <= input.ip_limit AS ip_ok,
           NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = input.email_hash)
               AS not_suppressed
    FROM input
), ip_hit AS (
    INSERT INTO signup_hits (bucket) SELECT ip_bucket FROM gate WHERE ip_ok
), upserted AS (
    -- A known address is never changed by a signup: whoever typed it need not
    -- own it (its language stays too). DO NOTHING returns only new rows; known
    -- ones that may need a confirmation mail come from `known` (not active,
    -- not suppressed).
    INSERT INTO subscribers (email, name, source, language)
    -- Address order, not arrival order: two web processes' batches that share
    -- addresses then take their locks in the same order and cannot deadlock.
    SELECT email, name, source, language FROM gate WHERE ip_ok AND not_suppressed ORDER BY lower(email)
    ON CONFLICT ((lower(email))) DO NOTHING
    RETURNING id, email, language
), asked AS (
    -- Each row that may get a mail, by its input row n. A new row comes back
    -- with its address exactly as given, so plain equality finds its input
    -- row (a hash join). Not lower() = lower() on both sides: the planner
    -- expects a handful of rows and nests the loop, and at a batch of 50 its
    -- 5,000 lower() calls took longer than the rest of the statement.
    SELECT gate.n, upserted.id, upserted.email, upserted.language
    FROM upserted JOIN gate ON gate.email = upserted.email
    UNION ALL
    SELECT gate.n, s.id, s.email, s.language FROM gate
    JOIN subscribers s ON lower(s.email) = lower(gate.email)
    WHERE gate.ip_ok AND gate.not_suppressed AND s.status NOT IN ('active', 'suppressed')
), mailable AS (
    SELECT asked.id, asked.email, asked.language, gate.email_bucket, gate.ip,
           gate.user_agent, gate.source, gate.consent_version
    FROM asked JOIN gate USING (n)
    WHERE (SELECT count(*) FROM (
               SELECT 1 FROM signup_hits
               WHERE bucket = gate.email_bucket AND at > now() - interval '1 day'
               LIMIT gate.address_limit
           ) recent) < gate.address_limit
), address_hit AS (
    INSERT INTO signup_hits (bucket) SELECT email_bucket FROM mailable
), evidence AS (
    INSERT INTO consent_events (subscriber_id, kind, ip, user_agent, source, consent_version)
    SELECT id, 'signup', ip::inet, user_agent, source, consent_version FROM mailable
), mail AS (
    INSERT INTO outbox (kind, priority, recipient, subscriber_id, payload)
    SELECT 'confirm', 0, email, id,
           jsonb_build_object('subscriber_id', id, 'language', language)
    FROM mailable
)
SELECT ip_ok FROM gate ORDER BY n;

-- name: prune_signup_hits
-- Hits older than the longest window (a day) no longer count.
DELETE FROM signup_hits WHERE at < now() - interval '1 day';

-- name: lock_subscriber
SELECT id, email, name, status, unsubscribed_at, language
FROM subscribers WHERE id = $1 FOR UPDATE;

-- name: subscriber_status
-- What a signed link's page tells its owner (e.g. "already unsubscribed").
SELECT status FROM subscribers WHERE id = $1;

-- name: spend_challenge
-- A proof-of-work answer counts once: the second use of a signature inserts
-- nothing and so returns no row.
INSERT INTO spent_challenges (signature, expires_at) VALUES ($1, $2)
ON CONFLICT (signature) DO NOTHING
RETURNING signature;

-- name: prune_spent_challenges
-- Past their expiry a challenge is refused anyway; its row no longer matters.
DELETE FROM spent_challenges WHERE expires_at < now();

-- name: lock_subscriber_by_public_id
-- A link names its subscriber by public id (subscribers_public_id index).
SELECT id, email, name, status, unsubscribed_at, language FROM subscribers WHERE public_id = $1
FOR UPDATE;

-- name: subscriber_id_by_public_id
SELECT id FROM subscribers WHERE public_id = $1;

-- name: subscriber_name
SELECT name FROM subscribers WHERE id = $1;

-- name: get_subscriber
SELECT id, public_id, email, name, status, source, created_at, updated_at, confirmed_at,
       unsubscribed_at, last_consent_at, soft_bounces, suppressed_reason
FROM subscribers WHERE id = $1;

-- name: get_subscriber_by_email
SELECT id, public_id, email, name, status, source, created_at, updated_at, confirmed_at,
       unsubscribed_at, last_consent_at, soft_bounces, suppressed_reason
FROM subscribers WHERE lower(email) = lower($1);

-- name: activate_subscriber
-- $2: the name the address's owner confirmed (or none), replacing whatever
-- was typed at signup.
UPDATE subscribers
SET status = 'active', name = $2, confirmed_at = now(), last_consent_at = now(),
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
-- $3 is the reason code (unsubscribed, suppressed).
UPDATE deliveries SET status = 'skipped', last_error = $2, reason = $3
WHERE subscriber_id = $1 AND status = 'queued';

-- name: cancel_queued_outbox
UPDATE outbox SET status = 'cancelled'
WHERE subscriber_id = $1 AND status = 'queued';
