-- A worker proves it is alive by holding a session-level advisory lock,
-- pg_advisory_lock(1852602219 /* "nlwk" */, lock_key), on a connection it
-- keeps for its whole life. When its process dies (SIGKILL, OOM, a lost
-- host whose TCP session ends) PostgreSQL drops the session and with it the
-- lock, so the other workers can tell at once that the rows it holds are
-- nobody's and put them back, instead of waiting for the lease to run out.
-- NULL for a worker that takes no such lock: its rows wait for the lease.
ALTER TABLE workers ADD COLUMN lock_key integer;
