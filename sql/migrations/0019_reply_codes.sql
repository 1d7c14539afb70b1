-- What an SMTP reply means is decided once, in core/replies.py. Two things
-- follow for what is stored:
--
-- 1. The enhanced status code (RFC 3463) of the last reply a delivery or an
--    outbox mail got has its own column, written with the outcome, so the
--    delivery record filters and groups on a column instead of running a
--    regular expression over the text of every row.
-- 2. Replies quote addresses ("450 4.2.0 <kim@example.org>: ... Greylisted")
--    and are shown to ops and editors: every stored reply is masked. New
--    ones are masked before they are written (core/replies.py, with the
--    logs' pattern: h***@example.com); the text already stored is masked
--    here the same way: a quoted local part becomes "***", any other keeps
--    its first character.
ALTER TABLE deliveries ADD COLUMN enhanced_code text;
ALTER TABLE outbox ADD COLUMN enhanced_code text;

CREATE FUNCTION pg_temp.mask_addresses(reply text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(
        regexp_replace(
            reply,
            '"(?:[^"\\\r\n]|\\.){1,64}"(?=@[A-Za-z0-9[\u0080-\U0010ffff])', '"***"', 'g'),
        '(?<![A-Za-z0-9!#$%&''*+/=?^_`{|}~.\-\u0080-\U0010ffff])'
        '([A-Za-z0-9!#$%&''*+/=?^_`{|}~.\-\u0080-\U0010ffff])'
        '[A-Za-z0-9!#$%&''*+/=?^_`{|}~.\-\u0080-\U0010ffff]*'
        '(?=@[A-Za-z0-9[\u0080-\U0010ffff])',
        '\1***', 'g')
$$;

-- Read from the masked text, as replies.parse does: an address cannot pose as a code.
CREATE FUNCTION pg_temp.enhanced_code(reply text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT substring(reply FROM '(?<![[:alnum:]_.])[245]\.[0-9]{1,3}\.[0-9]{1,3}(?!\.?[0-9])')
$$;

UPDATE deliveries SET last_error = pg_temp.mask_addresses(last_error)
WHERE last_error LIKE '%@%';
UPDATE deliveries SET enhanced_code = pg_temp.enhanced_code(last_error)
WHERE last_error IS NOT NULL AND status <> 'sent';

UPDATE outbox SET last_error = pg_temp.mask_addresses(last_error)
WHERE last_error LIKE '%@%';
UPDATE outbox SET enhanced_code = pg_temp.enhanced_code(last_error)
WHERE last_error IS NOT NULL AND status <> 'sent';

UPDATE relay_health SET last_error = pg_temp.mask_addresses(last_error)
WHERE last_error LIKE '%@%';
UPDATE rate_buckets SET learned_reason = pg_temp.mask_addresses(learned_reason)
WHERE learned_reason LIKE '%@%';
UPDATE bounce_events SET detail = pg_temp.mask_addresses(detail)
WHERE detail LIKE '%@%';
UPDATE subscribers SET suppressed_reason = pg_temp.mask_addresses(suppressed_reason)
WHERE suppressed_reason LIKE '%@%';

DROP FUNCTION pg_temp.mask_addresses(text);
DROP FUNCTION pg_temp.enhanced_code(text);
