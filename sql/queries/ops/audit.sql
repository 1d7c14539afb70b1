-- The audit trail: who changed what, when.

-- name: insert_audit
INSERT INTO audit_log (api_key_id, actor, action, target, details, user_id)
VALUES ($1, $2, $3, $4, $5, $6);
