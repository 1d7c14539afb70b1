-- The transactional outbox: web requests only insert here.

-- name: enqueue_outbox
INSERT INTO outbox (kind, priority, recipient, subscriber_id, payload)
VALUES ($1, $2, $3, $4, $5)
RETURNING id;
