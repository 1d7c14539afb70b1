-- The language a resident reads the city's mail in (the pages they signed up
-- on): confirmation requests and result notices follow it. Issues do not;
-- they go out in the editors' language. A constant default: PostgreSQL 11+
-- adds the column without rewriting the table.
ALTER TABLE subscribers ADD COLUMN language text NOT NULL DEFAULT 'ko'
    CHECK (language IN ('ko', 'en'));

-- What a sent issue said, as data (title, intro, items), frozen when sending
-- starts like rendered_html: the archive shows it as a web page of its own,
-- not as the mail, and later edits to a news item never change a sent issue.
ALTER TABLE issues ADD COLUMN web_content jsonb;

-- Proof-of-work answers already used on the signup form: each challenge
-- counts once. Rows live only until their challenge would have expired
-- anyway; the worker's hourly prune drops them.
CREATE TABLE spent_challenges (
    signature  text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX spent_challenges_expiry ON spent_challenges (expires_at);
