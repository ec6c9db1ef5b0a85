-- The aging (API.md §16, db::ops::aging) needs, of each late plan, three figures over its open
-- installments: the unpaid principal of them all, the unpaid amount of those due before the date,
-- and the oldest of those with anything unpaid. V32's index carried only the principal, so a late
-- plan was two descents: one index-only for the principal, one reading its past-due rows from the
-- table. Kept by the table itself (generated: no writer can forget them), the two unpaid amounts
-- let one index-only range per late plan answer all three.
--
-- The cost: every change to an installment's amounts (a payment, a penalty accrued, a waiver)
-- changes this index's entry, so it is not a HOT update; V32 already made principal payments so.
ALTER TABLE installments
    ADD COLUMN unpaid_principal_fen bigint GENERATED ALWAYS AS (principal_fen - paid_principal_fen) STORED,
    ADD COLUMN unpaid_fen bigint GENERATED ALWAYS AS (
        principal_fen + interest_fen + fee_fen + penalty_fen
        - paid_principal_fen - paid_interest_fen - paid_fee_fen - paid_penalty_fen
        - waived_fen - waived_penalty_fen) STORED;

DROP INDEX installments_open_principal_by_plan;
CREATE INDEX installments_open_unpaid_by_plan ON installments (plan_id, due_on)
    INCLUDE (unpaid_principal_fen, unpaid_fen) WHERE status IN ('pending', 'overdue');
