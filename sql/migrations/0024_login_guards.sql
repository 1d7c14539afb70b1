-- Login throttling that guesses cannot race and owners are not locked out
-- by, and a second factor's secret kept on our side while it is set up.

-- One row per bucket (a client address, an account, an account from one
-- address, a trusted browser; passwords and second-factor codes apart)
-- holding the times of its recent attempts. Taking an attempt is one
-- INSERT ... ON CONFLICT DO UPDATE that counts and appends under the row's
-- lock, so eighty concurrent guesses cannot all see "nine so far": the log
-- of separate rows it replaces was counted and written in two steps.
DROP TABLE login_failures;
CREATE TABLE login_attempts (
    bucket           text PRIMARY KEY,
    -- Attempts within the window, oldest first; never longer than the limit.
    recent           timestamptz[] NOT NULL,
    last_at          timestamptz NOT NULL DEFAULT now()
);
-- Pruning buckets nobody has tried for a day is a range scan.
CREATE INDEX login_attempts_last ON login_attempts (last_at);

-- The TOTP secret generated for this session's enrolment page. The form no
-- longer carries it back: the browser could send any secret it likes.
ALTER TABLE sessions ADD COLUMN totp_pending text;
