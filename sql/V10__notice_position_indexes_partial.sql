-- A notice is inserted without a read position and given one once committed (V5). The indexes on
-- the position held an entry for every new notice's NULL as well, written at insert and dead at
-- the update: three index insertions per order for nothing. Every reader asks for positions
-- (`pos > $1`, `pos IS NOT NULL`, `max(pos)`), which the planner proves not null, so the indexes
-- hold positioned notices only.
DROP INDEX IF EXISTS notices_pos;
CREATE UNIQUE INDEX notices_pos ON notices (pos) WHERE pos IS NOT NULL;
DROP INDEX IF EXISTS notices_recipient_pos;
CREATE INDEX notices_recipient_pos ON notices (recipient_kind, recipient_id, pos) WHERE pos IS NOT NULL;
DROP INDEX IF EXISTS notices_pending_lane_pos;
CREATE INDEX notices_pending_lane_pos ON notices (recipient_kind, recipient_id, pos) WHERE state = 'pending' AND pos IS NOT NULL;
