-- The pre-send check's latest result per issue, kept with the content version
-- it was run on: the same content answers from here at once; a change to the
-- issue or one of its items makes the version differ, and the kept result
-- is then stale (shown as such, run again when asked).
CREATE TABLE issue_checks (
    issue_id bigint PRIMARY KEY REFERENCES issues (id) ON DELETE CASCADE,
    content_version text NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    findings jsonb NOT NULL
);
