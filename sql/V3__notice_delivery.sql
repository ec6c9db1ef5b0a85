-- Webhook delivery of the notice outbox (API.md section 7).
--
-- A recipient's notices are delivered by one worker at a time across all instances: the worker
-- holds the recipient's lane (a lease, renewed at every attempt). Within a lane notices go in
-- `seq` order; a notice whose attempt failed waits for its `next_attempt_at` without holding the
-- lane, so later notices go on. An attempt in flight pushes the notice's `next_attempt_at` past
-- the timeout, so a lost worker's notice simply becomes due again: nothing is lost on a restart.

ALTER TABLE notices ADD COLUMN last_attempt_at timestamptz;
ALTER TABLE notices ADD COLUMN last_status integer;   -- HTTP status of the last attempt, when one came back

CREATE TABLE notice_lanes (
    recipient_kind text NOT NULL CHECK (recipient_kind IN ('bank', 'provider')),
    recipient_id   text NOT NULL,
    leased_by      text,
    leased_until   timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (recipient_kind, recipient_id)
);

-- Lanes with due work (the claim probes one lane at a time) and a lane's due notices in order.
CREATE INDEX notices_pending_lane_due ON notices (recipient_kind, recipient_id, next_attempt_at) WHERE state = 'pending';
CREATE INDEX notices_pending_lane_seq ON notices (recipient_kind, recipient_id, seq) WHERE state = 'pending';
DROP INDEX notices_due;

-- The admin list of what is not delivered yet (pending, dead), in creation order.
CREATE INDEX notices_undelivered ON notices (seq) WHERE state IN ('pending', 'dead');
