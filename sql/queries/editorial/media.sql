-- Uploaded images, keyed by the hash of their (re-encoded) bytes.

-- name: insert_media
-- The same picture uploaded twice is one row: the key is its content hash.
INSERT INTO media (key, content_type, width, height, data, original_name, uploaded_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (key) DO NOTHING;

-- name: get_media
SELECT content_type, data FROM media WHERE key = $1;
