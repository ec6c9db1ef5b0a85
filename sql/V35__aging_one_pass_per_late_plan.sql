-- The aging (API.md §16, db::ops::aging) needs, of each late plan, three figures: the unpaid
-- principal of all its open installments (not yet due ones included), and of those due before
-- the date the unpaid amount and the oldest with anything unpaid. V32 read the first from an
-- index of open installments by plan (every open installment of every late plan, most of them
-- not yet due) and the others from the table. Here the first is kept for each plan (in a table
-- of its own, plan_open_principal, below) and the others come from the range of past-due open
-- installments that finds the late plans: one index-only pass over what is late, plus lookups by
-- key per late plan.

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
-- statement; `verify` checks it against the installments (plan_open_principal_kept). In a table
-- of its own, not a column of plans: end of day changes it for every plan it compensates, and
-- an update of a plans row would add an entry to each of plans' seven indexes and leave its page
-- not all-visible, so that the index-only counts of open plans (the aging's current bucket, the
-- portfolio) would read the heap again. Here the row is narrow, its one index is its key, and
-- the room left on each page (fillfactor) lets an update stay on its page (HOT).
CREATE TABLE plan_open_principal (
    plan_id text PRIMARY KEY,
    open_unpaid_principal_fen bigint NOT NULL
        CONSTRAINT plan_open_principal_not_negative CHECK (open_unpaid_principal_fen >= 0)
) WITH (fillfactor = 70);
INSERT INTO plan_open_principal (plan_id, open_unpaid_principal_fen)
SELECT p.id, coalesce(sum(i.principal_fen - i.paid_principal_fen) FILTER (WHERE i.status IN ('pending', 'overdue')), 0)
FROM plans p LEFT JOIN installments i ON i.plan_id = p.id GROUP BY p.id;

-- Each statement's change to the plans' figure: what its new rows hold, less what its old rows
-- held (transition tables: one row per plan per statement, not per installment), added to the
-- plan's row, or its row made (a new plan's installments). An update, not an upsert: a proposed
-- row is checked before its conflict is found, so a negative change would fail the check. Every
-- writer of installments has locked or just inserted its plans, so no two transactions change
-- one plan's row at once.
CREATE FUNCTION plan_open_principal_add(plan_ids text[], changes_fen bigint[]) RETURNS void LANGUAGE sql AS $$
    WITH c AS (
        SELECT plan_id, sum(change_fen) AS change_fen FROM unnest(plan_ids, changes_fen) AS t(plan_id, change_fen)
        GROUP BY plan_id
    ), changed AS (
        UPDATE plan_open_principal o SET open_unpaid_principal_fen = o.open_unpaid_principal_fen + c.change_fen
        FROM c WHERE o.plan_id = c.plan_id AND c.change_fen <> 0
    )
    -- The statement's snapshot is from before the update above: a plan without a row here.
    INSERT INTO plan_open_principal (plan_id, open_unpaid_principal_fen)
    SELECT plan_id, change_fen FROM c WHERE NOT EXISTS (SELECT 1 FROM plan_open_principal o WHERE o.plan_id = c.plan_id);
$$;

-- One function for the three triggers: PL/pgSQL plans a statement when it first runs it, so a
-- branch naming a transition table its trigger does not have is never planned.
CREATE FUNCTION plan_open_principal_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    plan_ids text[];
    changes_fen bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(plan_id), array_agg(principal_fen - paid_principal_fen) INTO plan_ids, changes_fen
        FROM new_rows WHERE status IN ('pending', 'overdue');
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(plan_id), array_agg(change_fen) INTO plan_ids, changes_fen FROM (
            SELECT plan_id, principal_fen - paid_principal_fen AS change_fen FROM new_rows WHERE status IN ('pending', 'overdue')
            UNION ALL
            SELECT plan_id, paid_principal_fen - principal_fen FROM old_rows WHERE status IN ('pending', 'overdue')) x;
    ELSE
        SELECT array_agg(plan_id), array_agg(paid_principal_fen - principal_fen) INTO plan_ids, changes_fen
        FROM old_rows WHERE status IN ('pending', 'overdue');
    END IF;
    PERFORM plan_open_principal_add(plan_ids, changes_fen);
    RETURN NULL;
END $$;

CREATE TRIGGER installments_open_principal_inserted AFTER INSERT ON installments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION plan_open_principal_changed();
CREATE TRIGGER installments_open_principal_updated AFTER UPDATE ON installments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION plan_open_principal_changed();
CREATE TRIGGER installments_open_principal_deleted AFTER DELETE ON installments
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION plan_open_principal_changed();
