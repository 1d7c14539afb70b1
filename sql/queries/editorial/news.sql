-- News items: what editors collect for an issue.

-- name: insert_news_item
INSERT INTO news_items (title, summary, body, link, image_url, category, published_at,
                        image_alt, image_caption)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING *;

-- name: import_news_item
-- Feed import: the partial unique index news_items_link makes de-duplication
-- by link one statement; a known link returns no row.
INSERT INTO news_items (title, summary, body, link, image_url, category, published_at,
                        image_alt, image_caption)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (link) WHERE link IS NOT NULL DO NOTHING
RETURNING id;

-- name: get_news_item
SELECT * FROM news_items WHERE id = $1;

-- name: lock_news_item
-- A replace reads the item under its row lock first, so the version it
-- compares with the writer's is the one it overwrites.
SELECT * FROM news_items WHERE id = $1 FOR UPDATE;

-- name: news_items_by_ids
SELECT * FROM news_items WHERE id = ANY($1::bigint[]);

-- name: update_news_item
UPDATE news_items
SET title = $2, summary = $3, body = $4, link = $5, image_url = $6, category = $7,
    published_at = $8, image_alt = $9, image_caption = $10, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: delete_news_item
DELETE FROM news_items WHERE id = $1;

-- name: unsent_issues_using_news_item
-- Few issues are ever unsent at once, so scanning them is cheap.
SELECT id FROM issues
WHERE status IN ('draft', 'scheduled') AND $1::bigint = ANY(news_item_ids)
ORDER BY id;

-- name: list_news_items
-- Newest first; news_items_published (published_at DESC, id DESC) serves both
-- the order and the optional date range. NULL bounds mean "open". $5 is an
-- optional LIKE pattern (already escaped) for the console's search box over
-- title and summary: a filter on the rows the index walks, fine for a city's
-- few thousand items.
SELECT * FROM news_items
WHERE ($1::timestamptz IS NULL OR published_at >= $1)
  AND ($2::timestamptz IS NULL OR published_at <= $2)
  AND ($5::text IS NULL OR title ILIKE $5 OR summary ILIKE $5)
ORDER BY published_at DESC, id DESC
LIMIT $3 OFFSET $4;

-- name: count_news_items_between
SELECT count(*) FROM news_items
WHERE ($1::timestamptz IS NULL OR published_at >= $1)
  AND ($2::timestamptz IS NULL OR published_at <= $2)
  AND ($3::text IS NULL OR title ILIKE $3 OR summary ILIKE $3);
