-- `newsletter dev`: demo news items and the demo editor key.

-- name: count_news_items
SELECT count(*) FROM news_items;

-- name: insert_demo_news_item
INSERT INTO news_items (title, summary, link, category, published_at)
VALUES ($1, $2, $3, $4, $5);

-- name: revoke_api_keys_named
UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL;
