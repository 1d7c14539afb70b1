-- What the relay taught us: the send rate it accepts, learned from its
-- push-back (AIMD, see delivery/ratelimit.py), and how each relay fared.

-- The learned rate lives beside the bucket it limits, so the one UPDATE
-- that takes tokens also lowers or raises it: every worker on every host
-- sees the same value at once, and reports that arrive together collapse
-- into one change under the row lock. NULL: nothing learned, the configured
-- RATE_PER_SECOND holds.
ALTER TABLE rate_buckets
    ADD COLUMN learned_rate   double precision,
    ADD COLUMN learned_reason text,          -- the relay's words at the last decrease
    ADD COLUMN decreased_at   timestamptz,   -- the last decrease (one per episode)
    ADD COLUMN raised_at      timestamptz;   -- the last additive increase

-- Per relay (host:port, never credentials), summed over every worker: what
-- each one sent, pushed back, refused, and its circuit breaker's state as
-- the last worker to report saw it. Workers add their counts every few
-- seconds (relay_report), never per message.
CREATE TABLE relay_health (
    relay          text PRIMARY KEY,
    state          text NOT NULL DEFAULT 'closed'
                   CHECK (state IN ('closed', 'open', 'half-open')),
    sent           bigint NOT NULL DEFAULT 0,
    pushed_back    bigint NOT NULL DEFAULT 0,
    refused        bigint NOT NULL DEFAULT 0,   -- connections refused or failed
    connections    integer NOT NULL DEFAULT 0,  -- allowed by the last reporter
    last_error     text,
    last_error_at  timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
