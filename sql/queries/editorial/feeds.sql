-- Feed imports: links already known, and previews waiting for a decision.

-- name: known_news_links
-- Which of these links are already news items (the partial unique index
-- news_items_link answers each one).
SELECT link FROM news_items WHERE link = ANY($1::text[]);

-- name: insert_feed_preview
INSERT INTO feed_previews (id, user_id, source, data) VALUES ($1, $2, $3, $4);

-- name: get_feed_preview
-- Only the person who fetched it, and only within the hour.
SELECT source, data FROM feed_previews
WHERE id = $1 AND user_id = $2 AND created_at > now() - interval '1 hour';

-- name: delete_feed_preview
DELETE FROM feed_previews WHERE id = $1;

-- name: prune_feed_previews
DELETE FROM feed_previews WHERE created_at < now() - interval '1 hour';
