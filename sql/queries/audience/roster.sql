-- The roster as a whole: CSV import merge, listing, search and export.

-- name: roster_lock_staging
-- TRUNCATE takes an ACCESS EXCLUSIVE lock until commit: concurrent imports
-- queue up here instead of mixing their rows. Leftovers are impossible (the
-- import truncates again before committing), this is belt and braces.
TRUNCATE roster_staging;

-- name: roster_analyze_staging
-- Fresh statistics right after COPY, so the merge below hash-joins a million
-- staged rows instead of looping over them.
ANALYZE roster_staging;

-- name: roster_merge_confirmed
-- The whole confirmed-consent import in one statement. $1 now, $2 stated
-- consent source, $3 who records it, $4 how many skipped lines to list.
-- The first line of each address counts (later lines are merged into it);
-- suppressed, departed, unsubscribed and lapsed addresses are never
-- (re-)activated; pending ones become active with consent evidence.
-- Fast because every step is a set operation: one sort for DISTINCT ON,
-- hash joins against subscribers/suppressions, bulk INSERT ... SELECT.
WITH firsts AS MATERIALIZED (
    SELECT DISTINCT ON (email_key) line, email, email_key, email_hash, name, subscribed_at, source
    FROM roster_staging
    ORDER BY email_key, line
), classified AS MATERIALIZED (
    SELECT f.*, s.id AS subscriber_id,
           CASE
               WHEN x.email_hash IS NOT NULL OR s.status = 'suppressed' THEN 'suppressed'
               WHEN s.id IS NULL AND d.email_hash IS NOT NULL THEN 'departed'
               WHEN s.id IS NULL THEN 'new'
               ELSE s.status
           END AS outcome,
           (s.id IS NOT NULL AND f.name IS NOT NULL AND f.name IS DISTINCT FROM s.name) AS renamed
    FROM firsts f
    LEFT JOIN subscribers s ON lower(s.email) = f.email_key
    LEFT JOIN suppressions x ON x.email_hash = f.email_hash
    LEFT JOIN departed_addresses d ON d.email_hash = f.email_hash
), inserted AS (
    INSERT INTO subscribers (email, name, status, source, created_at, updated_at,
                             confirmed_at, last_consent_at, origin)
    SELECT email, name, 'active', coalesce(source, $2::text), $1::timestamptz, $1::timestamptz,
           coalesce(subscribed_at, $1::timestamptz), coalesce(subscribed_at, $1::timestamptz),
           'import'
    FROM classified WHERE outcome = 'new'
    -- In address order, new entries append to the right edge of both e-mail
    -- indexes instead of landing on random pages: markedly faster at 1M rows.
    ORDER BY email_key
    -- A resident signing up at this very moment wins; the line is reported.
    ON CONFLICT ((lower(email))) DO NOTHING
    RETURNING id, source, last_consent_at
), activated AS (
    UPDATE subscribers s
    SET status = 'active', name = coalesce(c.name, s.name),
        source = coalesce(c.source, s.source, $2::text),
        confirmed_at = coalesce(c.subscribed_at, $1::timestamptz),
        last_consent_at = coalesce(c.subscribed_at, $1::timestamptz),
        unsubscribed_at = NULL, reconfirm_sent_at = NULL, updated_at = $1::timestamptz
    FROM classified c
    WHERE c.outcome = 'pending' AND s.id = c.subscriber_id AND s.status = 'pending'
    RETURNING s.id, s.source, s.last_consent_at
), renamed AS (
    UPDATE subscribers s SET name = c.name, updated_at = $1::timestamptz
    FROM classified c
    WHERE c.outcome = 'active' AND c.renamed AND s.id = c.subscriber_id AND s.status = 'active'
    RETURNING s.id
), evidence AS (
    INSERT INTO consent_events (subscriber_id, kind, occurred_at, source, recorded_by)
    SELECT id, 'import', last_consent_at, source, $3::text FROM inserted
    UNION ALL
    SELECT id, 'import', last_consent_at, source, $3::text FROM activated
)
SELECT
    (SELECT count(*) FROM inserted) AS inserted,
    (SELECT count(*) FROM activated) + (SELECT count(*) FROM renamed) AS updated,
    (SELECT count(*) FROM classified WHERE outcome = 'active') - (SELECT count(*) FROM renamed)
        AS unchanged,
    (SELECT count(*) FROM roster_staging) - (SELECT count(*) FROM firsts) AS duplicates,
    (SELECT count(*) FROM classified WHERE outcome = 'new') - (SELECT count(*) FROM inserted)
        AS raced,
    0::bigint AS invited,
    (SELECT count(*) FROM classified
     WHERE outcome IN ('suppressed', 'departed', 'unsubscribed', 'lapsed')) AS skipped,
    (SELECT coalesce(json_agg(json_build_object('line', line, 'outcome', outcome) ORDER BY line),
                     '[]')
     FROM (SELECT line, outcome FROM classified
           WHERE outcome IN ('suppressed', 'departed', 'unsubscribed', 'lapsed')
           ORDER BY line LIMIT $4) k) AS skipped_rows;

-- name: roster_merge_invite
-- Invite import: new addresses become pending and get a confirmation mail
-- (nobody is activated without clicking). $1 now, $2 stated source, $3 who,
-- $4 how many skipped lines to list, $5 outbox priority, $6 invitations per
-- second: the mails are spread over time (next_attempt_at) so a big list
-- never crowds out residents' own signup confirmations. Scheduling uses the
-- database clock because the worker's claim query does.
WITH firsts AS MATERIALIZED (
    SELECT DISTINCT ON (email_key) line, email, email_key, email_hash, name, source
    FROM roster_staging
    ORDER BY email_key, line
), classified AS MATERIALIZED (
    SELECT f.*, s.id AS subscriber_id,
           CASE
               WHEN x.email_hash IS NOT NULL OR s.status = 'suppressed' THEN 'suppressed'
               WHEN s.id IS NULL AND d.email_hash IS NOT NULL THEN 'departed'
               WHEN s.id IS NULL THEN 'new'
               ELSE s.status
           END AS outcome
    FROM firsts f
    LEFT JOIN subscribers s ON lower(s.email) = f.email_key
    LEFT JOIN suppressions x ON x.email_hash = f.email_hash
    LEFT JOIN departed_addresses d ON d.email_hash = f.email_hash
), inserted AS (
    INSERT INTO subscribers (email, name, status, source, created_at, updated_at, origin)
    SELECT email, name, 'pending', coalesce(source, $2::text), $1::timestamptz, $1::timestamptz,
           'invite'
    FROM classified WHERE outcome = 'new'
    ORDER BY email_key
    ON CONFLICT ((lower(email))) DO NOTHING
    RETURNING id, email, name, source
), evidence AS (
    INSERT INTO consent_events (subscriber_id, kind, occurred_at, source, recorded_by)
    SELECT id, 'invite', $1::timestamptz, source, $3::text FROM inserted
), mails AS (
    INSERT INTO outbox (kind, priority, recipient, subscriber_id, payload, next_attempt_at)
    SELECT 'confirm', $5::smallint, email, id,
           -- The name came from the city's own list, so the mail may greet by it.
           jsonb_build_object('subscriber_id', id, 'name', name, 'greet_by_name', true),
           now() + make_interval(secs => (row_number() OVER (ORDER BY id) - 1) / $6::float8)
    FROM inserted
    RETURNING 1
)
SELECT
    (SELECT count(*) FROM inserted) AS inserted,
    0::bigint AS updated,
    (SELECT count(*) FROM classified WHERE outcome IN ('active', 'pending')) AS unchanged,
    (SELECT count(*) FROM roster_staging) - (SELECT count(*) FROM firsts) AS duplicates,
    (SELECT count(*) FROM classified WHERE outcome = 'new') - (SELECT count(*) FROM inserted)
        AS raced,
    (SELECT count(*) FROM mails) AS invited,
    (SELECT count(*) FROM classified
     WHERE outcome IN ('suppressed', 'departed', 'unsubscribed', 'lapsed')) AS skipped,
    (SELECT coalesce(json_agg(json_build_object('line', line, 'outcome', outcome) ORDER BY line),
                     '[]')
     FROM (SELECT line, outcome FROM classified
           WHERE outcome IN ('suppressed', 'departed', 'unsubscribed', 'lapsed')
           ORDER BY line LIMIT $4) k) AS skipped_rows;

-- name: roster_page
-- Keyset page in id order ($1 = last id seen): the primary key index walks
-- straight to the next page, however deep, unlike OFFSET.
SELECT id, email, name, status, source, created_at, confirmed_at, unsubscribed_at,
       last_consent_at, reconfirm_sent_at
FROM subscribers
WHERE id > $1
ORDER BY id
LIMIT $2;

-- name: roster_page_by_status
-- Served by subscribers_status (status, id): an index range scan per page.
SELECT id, email, name, status, source, created_at, confirmed_at, unsubscribed_at,
       last_consent_at, reconfirm_sent_at
FROM subscribers
WHERE status = $2 AND id > $1
ORDER BY id
LIMIT $3;

-- name: roster_search_prefix
-- "E-mail starts with $2" (lower-cased): a byte-wise range on the
-- text_pattern_ops index subscribers_email_prefix. Addresses are ASCII, so
-- chr(127) is above every character they can contain. $3 optional status.
SELECT id, email, name, status, source, created_at, confirmed_at, unsubscribed_at,
       last_consent_at, reconfirm_sent_at
FROM subscribers
WHERE lower(email) ~>=~ $2::text AND lower(email) ~<~ ($2::text || chr(127))
  AND ($3::text IS NULL OR status = $3::text)
  AND id > $1
ORDER BY id
LIMIT $4;

-- name: roster_get
SELECT id, email, name, status, source, created_at, updated_at, confirmed_at, unsubscribed_at,
       last_consent_at, reconfirm_sent_at, suppressed_reason, soft_bounces
FROM subscribers WHERE id = $1;

-- name: roster_consent_events
SELECT kind, occurred_at, host(ip) AS ip, user_agent, source, consent_version, recorded_by
FROM consent_events WHERE subscriber_id = $1 ORDER BY occurred_at, id;
