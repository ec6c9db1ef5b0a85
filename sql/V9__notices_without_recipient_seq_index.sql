-- Every notice is written into each index of `notices` twice: when it is inserted and when it is
-- given its read position (an UPDATE of an indexed column, so not HOT). (recipient, seq) served
-- only the admin's notice list filtered by recipient, which the primary key (seq order) or
-- notices_recipient_pos answers as well; it cost about six index insertions per order
-- (pg_waldump, docs/BENCHMARKS.md).
DROP INDEX IF EXISTS notices_recipient;
