-- The aging (API.md §16, db::ops::aging) sums each late plan's unpaid principal, over all its open
-- installments (those not yet due included). Read from the table, that was a visit to the heap
-- pages of every late plan (most of the book's pages when many plans are late, as end of day's
-- snapshot and the bench's defaulted tenth are); this index answers it from its own pages
-- (index-only), a plan's open installments side by side, in due order so that its past-due ones
-- are a range (only those rows are read from the heap).
CREATE INDEX installments_open_principal_by_plan ON installments (plan_id, due_on) INCLUDE (principal_fen, paid_principal_fen)
    WHERE status IN ('pending', 'overdue');

-- Each late plan's bank, from the open plans' index (V28) with their ids: an index-only pass, not
-- a scan of the plans' heap (nor a lookup per late plan).
DROP INDEX plans_open_by_bank;
CREATE INDEX plans_open_by_bank ON plans (bank_id, id) WHERE status IN ('active', 'defaulted');
