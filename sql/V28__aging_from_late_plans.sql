-- The aging (API.md §16, db::ops::aging) counts each bank's open plans through this index instead
-- of summing every open installment of the book: end of day stores the aging of every date it
-- closes, and over a large book that scan was most of a day with nothing due.
CREATE INDEX plans_open_by_bank ON plans (bank_id) WHERE status IN ('active', 'defaulted');
