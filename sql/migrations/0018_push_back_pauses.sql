-- Push-backs in a row per mail. A relay that pushes back on everyone (its
-- rate or connection limit) is met by the lower global rate; one that keeps
-- pushing back on one recipient (greylisting that recipient's domain) must
-- not keep that one mail at the head of the queue, tried again and again at
-- once. After a few push-backs in a row the mail waits, a little longer each
-- time (delivery/failures.py); never an attempt, never a bounce.
ALTER TABLE deliveries ADD COLUMN pushbacks integer NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN pushbacks integer NOT NULL DEFAULT 0;
