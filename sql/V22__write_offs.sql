-- API.md §14: write-off and recoveries (issue 17).
--
-- The status lists are widened for every v2 state at once (returns' `returned` and hold
-- confirmation's `awaiting_hold_confirmation` and `pending` included), so that whichever of the
-- v2 migrations runs last leaves every v2 state allowed.
ALTER TABLE orders DROP CONSTRAINT orders_status_check, ADD CONSTRAINT orders_status_check CHECK (status IN
    ('awaiting_hold_confirmation', 'awaiting_funding', 'active', 'settled', 'defaulted', 'cancelled', 'rejected', 'expired',
     'returned', 'written_off'));
ALTER TABLE plans DROP CONSTRAINT plans_status_check, ADD CONSTRAINT plans_status_check CHECK (status IN
    ('active', 'settled', 'defaulted', 'returned', 'written_off'));
ALTER TABLE installments DROP CONSTRAINT installments_status_check, ADD CONSTRAINT installments_status_check CHECK (status IN
    ('pending', 'overdue', 'paid', 'waived', 'written_off'));

-- A product's automatic write-off: null never.
ALTER TABLE products ADD COLUMN write_off_after_days integer CHECK (write_off_after_days BETWEEN 30 AND 3650);

-- What a written-off installment still owed when its plan was written off (it owes nothing since).
ALTER TABLE installments ADD COLUMN written_off_fen bigint NOT NULL DEFAULT 0 CHECK (written_off_fen >= 0);

-- The write-off, once, on its plan; what was recovered since, never above what was written off.
ALTER TABLE plans
    ADD COLUMN written_off_on date,
    ADD COLUMN written_off_reason text,
    ADD COLUMN written_off_reference text,
    ADD COLUMN written_off_principal_fen bigint CHECK (written_off_principal_fen >= 0),
    ADD COLUMN written_off_interest_fen bigint CHECK (written_off_interest_fen >= 0),
    ADD COLUMN written_off_fee_fen bigint CHECK (written_off_fee_fen >= 0),
    ADD COLUMN written_off_penalty_fen bigint CHECK (written_off_penalty_fen >= 0),
    ADD COLUMN written_off_booked_on date,
    ADD COLUMN recovered_fen bigint NOT NULL DEFAULT 0 CHECK (recovered_fen >= 0),
    ADD CONSTRAINT plans_written_off_whole CHECK ((written_off_on IS NULL) = (written_off_principal_fen IS NULL)
        AND (written_off_on IS NULL) = (written_off_reference IS NULL) AND (written_off_on IS NULL) = (written_off_booked_on IS NULL)),
    ADD CONSTRAINT plans_recovered_within_written_off CHECK (recovered_fen <= coalesce(written_off_principal_fen
        + written_off_interest_fen + written_off_fee_fen + written_off_penalty_fen, 0));
CREATE INDEX plans_written_off_booked ON plans (written_off_booked_on) WHERE written_off_booked_on IS NOT NULL;

CREATE TABLE recoveries (
    id          text PRIMARY KEY,
    plan_id     text NOT NULL REFERENCES plans (id),
    amount_fen  bigint NOT NULL CHECK (amount_fen > 0),
    paid_on     date NOT NULL,
    booked_on   date NOT NULL,
    reference   text NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT recoveries_reference_unique UNIQUE (plan_id, reference)
);
CREATE INDEX recoveries_booked ON recoveries (booked_on);
CREATE INDEX plans_defaulted ON plans (seq) WHERE status = 'defaulted';
