-- name: kept_issue_checks
SELECT content_version, checked_at, findings FROM issue_checks WHERE issue_id = $1;

-- name: keep_issue_checks
-- One row per issue: the newest run replaces the one before.
INSERT INTO issue_checks (issue_id, content_version, checked_at, findings)
VALUES ($1, $2, now(), $3::jsonb)
ON CONFLICT (issue_id) DO UPDATE
SET content_version = excluded.content_version, checked_at = excluded.checked_at,
    findings = excluded.findings
RETURNING checked_at;

-- name: recipient_counts_for_checks
-- Who an issue starting now would reach, and who it would not (and why),
-- from the status column alone (no personal data is read).
SELECT count(*) FILTER (WHERE status = 'active') AS active,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'suppressed') AS suppressed
FROM subscribers;

-- name: longest_recipient_name_bytes
-- The largest name a mail will carry, in bytes: the size check personalises
-- with a name this long (the length only; no name is read).
SELECT coalesce(max(octet_length(name)), 0) FROM subscribers WHERE status = 'active';
