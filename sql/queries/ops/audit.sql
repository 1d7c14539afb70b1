-- The audit trail: who changed what, when.

-- name: insert_audit
INSERT INTO audit_log (api_key_id, actor, action, target, details, user_id)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: recent_audit
-- Newest first, keyset-paged by id ($1: show entries below this id; $2 rows;
-- $3 optional action prefix). The primary key walks backwards from $1.
SELECT a.id, a.occurred_at, a.actor, a.action, a.target, a.details, a.user_id, a.api_key_id
FROM audit_log a
WHERE a.id < $1 AND ($3::text IS NULL OR a.action LIKE $3 || '%')
ORDER BY a.id DESC
LIMIT $2;

-- name: last_change_of
-- Who changed a row ($1: its target, e.g. 'issue:7') last, and when: what an
-- editor is told when someone else saved the same draft first. The partial
-- index audit_log_target (target, id) finds it in one step.
SELECT actor, occurred_at FROM audit_log
WHERE target = $1
ORDER BY id DESC
LIMIT 1;
