-- Delivery's statements must keep their plans when the share of pending notices swings: end of
-- day or a receiver's outage makes tens of thousands pending within seconds, long before
-- autovacuum samples the table again. Statistics taken while nothing was pending made the planner
-- expect one pending (or due) notice and walk every pending notice through a partial index for
-- each batch of 100, joined by seq: 14 ms a statement where the primary key takes a fraction of
-- one (docs/BENCHMARKS.md, webhook notices).
--
-- Without statistics on `state` the planner assumes the default selectivity of an equality, so a
-- walk over the pending notices never looks cheaper than 100 primary-key probes.
ALTER TABLE notices ALTER COLUMN state SET STATISTICS 0;

-- Never read by any statement: it only offered the planner the wrong way in.
DROP INDEX IF EXISTS notices_undelivered;

-- Its `next_attempt_at` column let a join by seq start from "every due notice" when the
-- statistics on `next_attempt_at` were stale. Whether a lane has a due notice (claim_lanes) is
-- answered by walking the lane's pending notices in read order (notices_pending_lane_pos) to the
-- first due one; it is one index entry away unless the lane's first notices are waiting to be
-- retried. One index fewer to write for each notice as well.
DROP INDEX IF EXISTS notices_pending_lane_due;
