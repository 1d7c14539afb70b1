-- People's console accounts. The table holds a few dozen rows: every lookup
-- is by primary key or the unique lower(email) index.

-- name: insert_user
INSERT INTO users (email, name, role, password_hash, must_change_password, totp_required)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: user_by_email
SELECT * FROM users WHERE lower(email) = lower($1);

-- name: user_by_id
SELECT * FROM users WHERE id = $1;

-- name: user_by_oidc_subject
SELECT * FROM users WHERE oidc_subject = $1;

-- name: list_users
SELECT * FROM users ORDER BY disabled_at IS NOT NULL, lower(name), id;

-- name: set_user_password
-- $3: whether the person must choose a new one at the next login (after an
-- admin's reset) or not (they chose it themselves).
UPDATE users SET password_hash = $2, must_change_password = $3, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: rehash_user_password
-- Same password, stronger argon2 parameters: no other field changes.
UPDATE users SET password_hash = $2 WHERE id = $1;

-- name: set_user_disabled
UPDATE users
SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) ELSE NULL END,
    updated_at = now()
WHERE id = $1
RETURNING *;

-- name: set_user_role
UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING *;

-- name: set_user_totp_required
UPDATE users SET totp_required = $2, updated_at = now() WHERE id = $1 RETURNING *;

-- name: set_user_totp
-- Enrol ($2 a secret) or remove ($2 NULL) the second factor; $3 the step
-- just used to prove it, so that very code cannot log in again.
UPDATE users SET totp_secret = $2, totp_last_step = $3, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: use_totp_step
-- Accept a code's time step only if it is newer than the last one accepted:
-- a conditional UPDATE, so two requests racing with one code cannot both win.
UPDATE users SET totp_last_step = $2
WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)
RETURNING id;

-- name: set_user_oidc_subject
UPDATE users SET oidc_subject = $2, updated_at = now() WHERE id = $1;

-- name: touch_user_login
UPDATE users SET last_login_at = now() WHERE id = $1;

-- name: count_active_admins
SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL;
