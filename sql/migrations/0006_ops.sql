-- Ops view: indexes that keep the delivery stats cheap while workers run.
--
-- Why indexes and not counters: a counter row per (issue, status) would be
-- updated by every worker for every message, so all workers would queue on the
-- same few rows (a hot spot exactly when we want throughput), and a counter that
-- drifts from the real rows is worse than none. The figures are read a few
-- times a minute by people and one scraper; the deliveries rows are written
-- hundreds of times a second. So we pay on the rare read, and make that read
-- one pass over a compact index instead of the wide heap (subject-free rows but
-- with last_error text): at 100,000 deliveries the whole per-issue aggregate
-- is an index-only range scan (see BENCHMARKS.md "## Stats" for the figures).

-- Everything the per-issue counts need (status, attempts, smtp_code, sent_at)
-- sits in the index, so `WHERE issue_id = $1` aggregates with an index-only
-- scan; the heap is visited only for pages a running send has just changed.
CREATE INDEX deliveries_issue_stats ON deliveries (issue_id, status)
    INCLUDE (attempts, smtp_code, sent_at);
-- 0001's (issue_id, status) index is a strict prefix of the one above: keeping
-- both would make every delivery update maintain two identical trees.
DROP INDEX IF EXISTS deliveries_issue_status;

-- Send rate over the last minute and the per-minute chart read only the most
-- recent sends of one issue: a range scan at the end of this index, however
-- many messages went out before.
CREATE INDEX deliveries_issue_sent_at ON deliveries (issue_id, sent_at)
    WHERE sent_at IS NOT NULL;

-- Growth per day (last 30 days) reads a thin slice of subscribers by time.
CREATE INDEX subscribers_created_at ON subscribers (created_at);
CREATE INDEX subscribers_confirmed_at ON subscribers (confirmed_at)
    WHERE confirmed_at IS NOT NULL;
CREATE INDEX subscribers_unsubscribed_at ON subscribers (unsubscribed_at)
    WHERE unsubscribed_at IS NOT NULL;
