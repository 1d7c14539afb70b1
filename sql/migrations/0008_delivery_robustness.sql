-- Server trouble (relay unreachable or refusing us, connection drops, 421)
-- is never counted as an attempt: it is not the recipient's doing. It still
-- needs a count of its own so its retries back off exponentially instead of
-- knocking every 30 s forever. A constant default: PostgreSQL 11+ adds the
-- column without rewriting the table.
ALTER TABLE deliveries ADD COLUMN deferrals integer NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN deferrals integer NOT NULL DEFAULT 0;
