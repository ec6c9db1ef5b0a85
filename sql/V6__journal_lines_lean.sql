-- Journal lines are written in the same statement as their entry, so the foreign key only costs a
-- lookup per line; and no query reads lines by account through an index (verify aggregates them
-- all). Dropping both makes posting much cheaper in end-of-day batches.
ALTER TABLE journal_lines DROP CONSTRAINT IF EXISTS journal_lines_entry_id_fkey;
DROP INDEX IF EXISTS journal_lines_account;
