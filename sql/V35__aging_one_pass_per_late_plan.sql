-- The aging (API.md §16, db::ops::aging) needs, of each late plan, three figures: the unpaid
-- principal of all its open installments (not yet due ones included), and of those due before
-- the date the unpaid amount and the oldest with anything unpaid. V32 read the first from an
-- index of open installments by plan (every open installment of every late plan, most of them
-- not yet due) and the others from the table. Here the first is kept on the plan and the others
-- come from the range of past-due open installments that finds the late plans: one index-only
-- pass over what is late, plus one lookup per late plan.

-- Each installment's unpaid amount, kept by the table itself (no writer can forget it), carried
-- by the index of open installments by due date.
ALTER TABLE installments ADD COLUMN unpaid_fen bigint GENERATED ALWAYS AS (
    principal_fen + interest_fen + fee_fen + penalty_fen
    - paid_principal_fen - paid_interest_fen - paid_fee_fen - paid_penalty_fen
    - waived_fen - waived_penalty_fen) STORED;
DROP INDEX installments_open_principal_by_plan;
DROP INDEX installments_open_by_due;
CREATE INDEX installments_open_by_due ON installments (due_on, plan_id) INCLUDE (unpaid_fen)
    WHERE status IN ('pending', 'overdue');

-- Each plan's unpaid principal over its open installments, kept by triggers on installments, so
-- that every writer (funding's insert, lifecycle's set-wise update) keeps it, statement by
-- statement. The triggers update only plans whose figure changed; every writer of installments
-- has locked or just inserted its plans, so they wait on no other transaction. `verify` checks
-- it against the installments (plan_open_principal_kept).
ALTER TABLE plans ADD COLUMN open_unpaid_principal_fen bigint NOT NULL DEFAULT 0
    CONSTRAINT plans_open_unpaid_principal_not_negative CHECK (open_unpaid_principal_fen >= 0);
UPDATE plans p SET open_unpaid_principal_fen = o.principal
FROM (SELECT plan_id, sum(principal_fen - paid_principal_fen) AS principal FROM installments
      WHERE status IN ('pending', 'overdue') GROUP BY plan_id) o
WHERE p.id = o.plan_id;

-- Each statement's change to the plans' figure: what its new rows hold, less what its old rows
-- held (transition tables: one update per plan per statement, not per row).
CREATE FUNCTION plans_open_principal_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE plans p SET open_unpaid_principal_fen = p.open_unpaid_principal_fen + c.change_fen
    FROM (SELECT plan_id, sum(principal_fen - paid_principal_fen) AS change_fen FROM new_rows
          WHERE status IN ('pending', 'overdue') GROUP BY plan_id) c
    WHERE p.id = c.plan_id AND c.change_fen <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION plans_open_principal_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE plans p SET open_unpaid_principal_fen = p.open_unpaid_principal_fen + c.change_fen
    FROM (SELECT plan_id, sum(change_fen) AS change_fen FROM (
              SELECT plan_id, principal_fen - paid_principal_fen AS change_fen FROM new_rows
              WHERE status IN ('pending', 'overdue')
              UNION ALL
              SELECT plan_id, paid_principal_fen - principal_fen FROM old_rows
              WHERE status IN ('pending', 'overdue')) x
          GROUP BY plan_id) c
    WHERE p.id = c.plan_id AND c.change_fen <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION plans_open_principal_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE plans p SET open_unpaid_principal_fen = p.open_unpaid_principal_fen - c.change_fen
    FROM (SELECT plan_id, sum(principal_fen - paid_principal_fen) AS change_fen FROM old_rows
          WHERE status IN ('pending', 'overdue') GROUP BY plan_id) c
    WHERE p.id = c.plan_id AND c.change_fen <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER installments_open_principal_inserted AFTER INSERT ON installments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION plans_open_principal_inserted();
CREATE TRIGGER installments_open_principal_updated AFTER UPDATE ON installments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION plans_open_principal_updated();
CREATE TRIGGER installments_open_principal_deleted AFTER DELETE ON installments
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION plans_open_principal_deleted();
