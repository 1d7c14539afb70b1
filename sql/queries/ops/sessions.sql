-- Console sessions (server-side, revocable) and login throttling.

-- name: insert_session
INSERT INTO sessions (token_hash, user_id, stage, csrf_token, expires_at, ip, user_agent)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::int), $6::inet, $7);

-- name: load_session
-- Primary-key lookup plus the account it belongs to. An expired, idle
-- ($2 seconds) or disabled-account session is simply not found.
SELECT s.token_hash, s.stage, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at,
       s.flash, s.totp_pending, now() AS now, u.*
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.token_hash = $1
  AND s.expires_at > now()
  AND s.last_seen_at > now() - make_interval(secs => $2::int)
  AND u.disabled_at IS NULL;

-- name: touch_session
-- At most once a minute per session, so a busy page does not write on every
-- request; the idle timeout is minutes long.
UPDATE sessions SET last_seen_at = now()
WHERE token_hash = $1 AND last_seen_at < now() - interval '1 minute';

-- name: delete_session
DELETE FROM sessions WHERE token_hash = $1;

-- name: delete_user_sessions
-- Every session of a person except, optionally, the one in use ($2).
DELETE FROM sessions WHERE user_id = $1 AND ($2::bytea IS NULL OR token_hash <> $2);

-- name: list_user_sessions
SELECT token_hash, stage, created_at, last_seen_at, expires_at, host(ip) AS ip, user_agent
FROM sessions
WHERE user_id = $1 AND expires_at > now()
ORDER BY last_seen_at DESC;

-- name: prune_sessions
-- Sessions past their end; sessions_expiry keeps this a range scan.
DELETE FROM sessions WHERE expires_at < now();

-- name: set_session_flash
UPDATE sessions SET flash = $2 WHERE token_hash = $1;

-- name: pop_session_flash
UPDATE sessions SET flash = NULL WHERE token_hash = $1 AND flash IS NOT NULL;

-- name: take_login_attempt
-- Count and record one attempt of bucket $1 in one statement: the conflict
-- path locks the bucket's row and sees the latest committed attempts, so
-- concurrent requests queue here and only $3 within the window ($2 seconds)
-- get a row back. No row: the bucket is full and nothing was recorded.
INSERT INTO login_attempts AS a (bucket, recent) VALUES ($1, ARRAY[clock_timestamp()])
ON CONFLICT (bucket) DO UPDATE
SET recent = ARRAY(
        SELECT t FROM unnest(a.recent) t
        WHERE t > now() - make_interval(secs => $2::int) ORDER BY t
    ) || clock_timestamp(),
    last_at = now()
WHERE (
    SELECT count(*) FROM unnest(a.recent) t WHERE t > now() - make_interval(secs => $2::int)
) < $3::int
RETURNING recent[cardinality(recent)] AS taken;

-- name: add_login_failure
-- A failure counted without asking (input refused before any check); the
-- array keeps its newest 100 entries whatever happens.
INSERT INTO login_attempts AS a (bucket, recent) VALUES ($1, ARRAY[clock_timestamp()])
ON CONFLICT (bucket) DO UPDATE
SET recent = (a.recent || clock_timestamp())[greatest(cardinality(a.recent) - 98, 1):],
    last_at = now();

-- name: login_attempts_within
-- The bucket's attempts within the window ($2 seconds), oldest first: when
-- it is full, the one that leaves the window first says how long to wait.
SELECT ARRAY(
    SELECT t FROM unnest(recent) t WHERE t > now() - make_interval(secs => $2::int) ORDER BY t
) AS recent, now() AS now
FROM login_attempts WHERE bucket = $1;

-- name: forgive_login_attempt
-- A right password or code: the attempt it took does not count against anyone.
UPDATE login_attempts SET recent = array_remove(recent, $2) WHERE bucket = $1;

-- name: prune_login_attempts
-- login_attempts_last keeps this a range scan.
DELETE FROM login_attempts WHERE last_at < now() - interval '1 day';

-- name: keep_totp_pending
-- The secret shown for enrolment: the one already kept for this session, or
-- $2 if there is none yet (two tabs show the same secret).
UPDATE sessions SET totp_pending = coalesce(totp_pending, $2)
WHERE token_hash = $1
RETURNING totp_pending;

-- name: clear_totp_pending
UPDATE sessions SET totp_pending = NULL WHERE token_hash = $1;
