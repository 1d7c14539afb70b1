-- The key for the keyed hashes of addresses (suppressions, departed addresses,
-- signup-limit buckets), generated once per installation and kept with the data
-- it protects. It is deliberately not SECRET_KEY: rotating the signing key must
-- never lift the suppression of an erased or bounced address.
-- gen_random_uuid() draws from pg_strong_random(); two of them give 244 random bits.
CREATE TABLE instance_keys (
    name   text PRIMARY KEY,
    value  text NOT NULL
);
INSERT INTO instance_keys (name, value)
VALUES ('address_hash', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
