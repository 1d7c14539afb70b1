-- The editors' console: people's accounts and their server-side sessions,
-- login throttling, uploaded images, feed-import previews, background CSV
-- imports with progress, the person behind each audit entry, and where a
-- subscriber came from (so imports are counted apart from signups).

-- People who log in to /admin. API keys stay for automation; a person has
-- an account of their own so the audit trail names them.
CREATE TABLE users (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email            text NOT NULL,
    name             text NOT NULL,
    role             text NOT NULL CHECK (role IN ('editor', 'ops', 'admin')),
    -- argon2id (argon2-cffi's encoded form, parameters included); NULL for
    -- an account that logs in only through the city's SSO.
    password_hash    text,
    -- After an admin's reset the person must choose their own password.
    must_change_password boolean NOT NULL DEFAULT false,
    -- TOTP (RFC 6238) secret once enrolled; an admin can require it.
    totp_secret      text,
    totp_required    boolean NOT NULL DEFAULT false,
    -- The last time step accepted, so an observed code cannot be replayed.
    totp_last_step   bigint,
    -- The city SSO's subject identifier once this account has logged in with it.
    oidc_subject     text UNIQUE,
    disabled_at      timestamptz,
    last_login_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Server-side sessions: the browser holds a random token, the table only its
-- SHA-256, so a leaked backup cannot be replayed as a login. Logging out,
-- disabling the account or resetting its password deletes the rows.
CREATE TABLE sessions (
    token_hash       bytea PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- 'password': the password was right, the second factor is still due;
    -- 'full': logged in.
    stage            text NOT NULL CHECK (stage IN ('password', 'full')),
    csrf_token       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    ip               inet,
    user_agent       text,
    -- One message for the next page (e.g. "저장했습니다" after a redirect).
    flash            text
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Failed logins, per account and per client address, as a sliding log (as
-- signup_hits): counting the last few minutes' rows of one bucket is an index
-- range scan, and no hot counter row serialises concurrent attempts.
CREATE TABLE login_failures (
    bucket           text NOT NULL,
    at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_bucket ON login_failures (bucket, at);

-- Images uploaded for news items: already resized and re-encoded without
-- metadata. Mail clients fetch them from /media/<key>, so the key is the
-- content's hash (immutable, cacheable for ever, not a guessable counter).
CREATE TABLE media (
    key              text PRIMARY KEY,
    content_type     text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png')),
    width            integer NOT NULL,
    height           integer NOT NULL,
    data             bytea NOT NULL,
    original_name    text,
    uploaded_by      bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- A fetched or uploaded feed waiting for the editor to confirm what it adds.
-- Kept an hour at most; the preview and the import read the same bytes.
CREATE TABLE feed_previews (
    id               text PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source           text NOT NULL,
    data             bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- CSV imports started from the console run in the background; the page
-- polls this row for its progress bar and, at the end, the report.
CREATE TABLE roster_imports (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          bigint REFERENCES users (id) ON DELETE SET NULL,
    mode             text NOT NULL CHECK (mode IN ('confirmed', 'invite')),
    source           text,
    filename         text,
    status           text NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'done', 'failed')),
    done_bytes       bigint NOT NULL DEFAULT 0,
    total_bytes      bigint NOT NULL DEFAULT 0,
    report           jsonb,
    error            text,
    started_at       timestamptz NOT NULL DEFAULT now(),
    -- Moves with the progress: a 'running' row that stops moving belonged to
    -- a web process that went away (the page says so).
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);

-- The person behind an audit entry (the API key column stays for keys).
ALTER TABLE audit_log ADD COLUMN user_id bigint REFERENCES users (id);
CREATE INDEX audit_log_user ON audit_log (user_id, occurred_at) WHERE user_id IS NOT NULL;

-- Where a subscriber came from: a resident's own signup or an admin's import
-- (confirmed or invite). The ops view counts signups and imports apart; a
-- constant default adds the column without rewriting the table.
ALTER TABLE subscribers ADD COLUMN origin text NOT NULL DEFAULT 'signup'
    CHECK (origin IN ('signup', 'import', 'invite'));
UPDATE subscribers s SET origin = e.kind
FROM (SELECT DISTINCT ON (subscriber_id) subscriber_id, kind
      FROM consent_events ORDER BY subscriber_id, occurred_at, id) e
WHERE e.subscriber_id = s.id AND e.kind IN ('import', 'invite');
