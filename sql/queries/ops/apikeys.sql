-- API keys, stored hashed.

-- name: insert_api_key
INSERT INTO api_keys (name, role, prefix, key_hash)
VALUES ($1, $2, $3, $4)
RETURNING id;

-- name: use_api_key
-- Looked up by the unique key_hash index; last_used_at is refreshed at most
-- once a minute so a busy client does not write on every request.
WITH found AS (
    SELECT id, name, role, last_used_at FROM api_keys
    WHERE key_hash = $1 AND revoked_at IS NULL
), touched AS (
    UPDATE api_keys SET last_used_at = now()
    WHERE id = (SELECT id FROM found)
      AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT id, name, role FROM found;

-- name: revoke_api_key_by_id
UPDATE api_keys SET revoked_at = now()
WHERE id = $1 AND revoked_at IS NULL
RETURNING id;

-- name: revoke_api_key_by_key
UPDATE api_keys SET revoked_at = now()
WHERE key_hash = $1 AND revoked_at IS NULL
RETURNING id;
