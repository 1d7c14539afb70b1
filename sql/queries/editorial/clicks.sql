-- Click redirects: where a link leads, and the counts (never who clicked).

-- name: store_issue_links
-- The issue's links as it starts sending ($2 item ids, $3 titles, $4 links,
-- in the issue's order): what the redirect answers from then on.
INSERT INTO issue_links (issue_id, news_item_id, position, title, url)
SELECT $1, l.news_item_id, l.position, l.title, l.url
FROM unnest($2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY
     AS l(news_item_id, title, url, position)
ON CONFLICT (issue_id, news_item_id) DO NOTHING;

-- name: click_target
-- Where /c/<issue>/<item>/<sig> leads. Once the issue has started: the link
-- stored with its snapshot. Before that (preview, test copies): the item's
-- current link, if the draft lists the item. Primary keys only.
SELECT i.started_at,
       CASE WHEN i.started_at IS NOT NULL THEN l.url ELSE n.link END AS url
FROM issues i
LEFT JOIN issue_links l ON l.issue_id = i.id AND l.news_item_id = $2
LEFT JOIN news_items n ON n.id = $2 AND n.id = ANY(i.news_item_ids)
WHERE i.id = $1;

-- name: add_clicks
-- One web process's clicks since its last write, one row per (issue, item,
-- hour): a single upsert however many clicks it carries. Rows are touched in
-- key order so two processes writing at once never deadlock. The join drops a
-- pair with no stored link (cannot happen: only started issues are counted)
-- rather than let one bad key fail every count in the statement.
INSERT INTO click_counts AS c (issue_id, news_item_id, hour, clicks)
SELECT k.issue_id, k.news_item_id, to_timestamp(k.hour), k.clicks
FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::bigint[])
     AS k(issue_id, news_item_id, hour, clicks)
JOIN issue_links l USING (issue_id, news_item_id)
ORDER BY k.issue_id, k.news_item_id, k.hour
ON CONFLICT (issue_id, news_item_id, hour) DO UPDATE SET clicks = c.clicks + excluded.clicks;
