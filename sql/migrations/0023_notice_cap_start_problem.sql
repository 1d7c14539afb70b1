-- Transactional mail to one address is capped per day (mail/outbox.py):
-- the count of an address's recent rows reads this index, not the outbox.
CREATE INDEX outbox_recipient_recent ON outbox (lower(recipient), created_at);

-- A scheduled issue the scheduler cannot start goes back to draft with the
-- reason here (editors see it in the API and the console) instead of being
-- tried again every few seconds for ever; scheduling or starting clears it.
ALTER TABLE issues ADD COLUMN start_problem text;
