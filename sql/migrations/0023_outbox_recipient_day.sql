-- Transactional mail to one address is capped per day (mail/outbox.py):
-- the count of an address's recent rows reads this index, not the outbox.
CREATE INDEX outbox_recipient_recent ON outbox (lower(recipient), created_at);
