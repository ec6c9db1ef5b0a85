-- Retention of the webhook attempt history (notice_attempts, V30): housekeeping deletes the
-- attempts of delivered notices older than `notices.attempts_retention_days`, a batch at a time
-- (db::notices::purge_attempts). Attempts are appended in time order, so a BRIN index finds the
-- old ones by reading only their pages' ranges, where a B-tree would add an index entry to every
-- attempt delivery writes; a new attempt usually lands in the last, not yet summarized, range and
-- costs this index nothing.
CREATE INDEX notice_attempts_at ON notice_attempts USING brin (attempted_at);
