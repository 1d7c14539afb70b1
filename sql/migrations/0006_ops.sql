-- Ops view: indexes that keep the delivery stats cheap while workers run.
--
-- Why indexes and not counters: a counter row per (issue, status) would be
-- updated by every worker for every message, so all workers would queue on the
-- same few rows (a hot spot exactly when we want throughput), and a counter that
-- drifts from the real rows is worse than none. The figures are read a few
-- times a minute by people and one scraper; the deliveries rows are written
-- hundreds of times a second. So we pay on the rare read and keep it to one
-- grouped pass over the issue's rows plus short range scans for the recent
-- sends: about 40 ms for an issue of 100,000 deliveries, 5-9x a bare count(*)
-- of the same table (BENCHMARKS.md "## Stats").

-- Everything the per-issue pass needs (status, attempts, smtp_code, sent_at)
-- sits in the index, so once the table holds many issues `WHERE issue_id = $1`
-- reads only that issue's slice, index-only (the heap is visited only for pages
-- a running send has just changed). While one issue is the whole table the
-- planner rightly prefers a sequential scan; the cost is the same either way.
CREATE INDEX deliveries_issue_stats ON deliveries (issue_id, status)
    INCLUDE (attempts, smtp_code, sent_at);
-- 0001's (issue_id, status) index is a strict prefix of the one above: keeping
-- both would make every delivery update maintain two identical trees.
DROP INDEX IF EXISTS deliveries_issue_status;

-- Send rate over the last minute and the per-minute chart read only the most
-- recent sends of one issue: an index-only range scan at the end of this
-- index, however many messages went out before (sent_at is set only when SMTP
-- accepted the message, so no status test is needed).
CREATE INDEX deliveries_issue_sent_at ON deliveries (issue_id, sent_at)
    WHERE sent_at IS NOT NULL;

-- Growth per day (last 30 days) reads a thin slice of subscribers by time.
CREATE INDEX subscribers_created_at ON subscribers (created_at);
CREATE INDEX subscribers_confirmed_at ON subscribers (confirmed_at)
    WHERE confirmed_at IS NOT NULL;
CREATE INDEX subscribers_unsubscribed_at ON subscribers (unsubscribed_at)
    WHERE unsubscribed_at IS NOT NULL;
