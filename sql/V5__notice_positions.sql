-- The order notices are read in (the pull feed and first webhook attempts): a position given
-- after commit, in commit order. Ids (`seq`) are drawn when a notice is written, so a slow
-- transaction can commit `ntc_…41` after `ntc_…42` is visible; a reader that had moved past 42
-- would never see 41. Positions are given only to committed notices, by one sequencer at a time
-- (db::notices::position_new, run by the feed and the delivery workers), each run after every
-- position given before: a reader never sees a position before a smaller one. Writers take no
-- lock for this.
ALTER TABLE notices ADD COLUMN pos bigint;
UPDATE notices SET pos = seq;
CREATE UNIQUE INDEX notices_pos ON notices (pos);
CREATE INDEX notices_unpositioned ON notices (seq) WHERE pos IS NULL;
CREATE INDEX notices_recipient_pos ON notices (recipient_kind, recipient_id, pos);
DROP INDEX notices_pending_lane_seq;
CREATE INDEX notices_pending_lane_pos ON notices (recipient_kind, recipient_id, pos) WHERE state = 'pending';
