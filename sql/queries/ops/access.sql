-- The /ops page session.

-- name: ops_session_key
-- The /ops login cookie names a key id; revoking the key ends the session at
-- the next page load. Primary-key lookup.
SELECT id, name, role FROM api_keys WHERE id = $1 AND revoked_at IS NULL;
