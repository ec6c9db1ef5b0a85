-- The aging (db::ops::aging) looked up each late plan twice by key: its bank in plans, its kept
-- principal in plan_open_principal (V35). plans' rows are wide (about 8 to a page), so the first
-- lookup read a heap page per late plan: about 150 ms of the statement over the bench's 100,000
-- late plans. A plan's bank never changes, so it is kept here too, and one lookup gives both.
--
-- The aging no longer reads the plan's status for a late plan: a plan that is not open (settled,
-- returned, written off) has no open installment, so it is never late. `verify` checks that
-- (closed_plan_has_no_open_installment) and that the bank kept here is the plan's
-- (plan_open_principal_kept).
ALTER TABLE plan_open_principal ADD COLUMN bank_id text;
UPDATE plan_open_principal o SET bank_id = p.bank_id FROM plans p WHERE p.id = o.plan_id;
ALTER TABLE plan_open_principal ALTER COLUMN bank_id SET NOT NULL;

-- As V35's, with the bank of a plan whose row is made here (its installments' first insert).
CREATE OR REPLACE FUNCTION plan_open_principal_add(plan_ids text[], changes_fen bigint[]) RETURNS void LANGUAGE sql AS $$
    WITH c AS (
        SELECT plan_id, sum(change_fen) AS change_fen FROM unnest(plan_ids, changes_fen) AS t(plan_id, change_fen)
        GROUP BY plan_id
    ), changed AS (
        UPDATE plan_open_principal o SET open_unpaid_principal_fen = o.open_unpaid_principal_fen + c.change_fen
        FROM c WHERE o.plan_id = c.plan_id AND c.change_fen <> 0
    )
    -- The statement's snapshot is from before the update above: a plan without a row here.
    INSERT INTO plan_open_principal (plan_id, bank_id, open_unpaid_principal_fen)
    SELECT c.plan_id, p.bank_id, c.change_fen FROM c JOIN plans p ON p.id = c.plan_id
    WHERE NOT EXISTS (SELECT 1 FROM plan_open_principal o WHERE o.plan_id = c.plan_id);
$$;
