-- Console sessions (server-side, revocable) and login throttling.

-- name: insert_session
INSERT INTO sessions (token_hash, user_id, stage, csrf_token, expires_at, ip, user_agent)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::int), $6::inet, $7);

-- name: load_session
-- Primary-key lookup plus the account it belongs to. An expired, idle
-- ($2 seconds) or disabled-account session is simply not found.
SELECT s.token_hash, s.stage, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at,
       s.flash, now() AS now, u.*
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

-- name: recent_login_failures
-- Failures of one bucket within the window ($2 seconds), counted up to the
-- limit ($3) only, and the oldest of them (when the bucket frees up again).
SELECT count(*) AS failures, min(at) AS oldest, now() AS now
FROM (
    SELECT at FROM login_failures
    WHERE bucket = $1 AND at > now() - make_interval(secs => $2::int)
    ORDER BY at DESC
    LIMIT $3
) recent;

-- name: insert_login_failure
INSERT INTO login_failures (bucket) VALUES ($1);

-- name: prune_login_failures
DELETE FROM login_failures WHERE at < now() - interval '1 day';
