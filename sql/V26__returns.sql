-- API.md §13: device returns (issue 16).

-- A product's return window (0 = no returns); an order keeps the window it took when placed.
ALTER TABLE products ADD COLUMN return_window_days integer NOT NULL DEFAULT 7 CHECK (return_window_days BETWEEN 0 AND 30);
-- Orders placed before this version took the default window. Their device's IMEI was never kept,
-- so a return of one of them answers `imei_mismatch` (README: choices).
ALTER TABLE orders
    ADD COLUMN return_window_days integer NOT NULL DEFAULT 7 CHECK (return_window_days BETWEEN 0 AND 30),
    -- The device's IMEI as a keyed hash (the same key as ID numbers'): a return compares it, no
    -- answer or log ever shows it.
    ADD COLUMN imei_hash text;

-- Principal forgiven: a returned device's unpaid principal (the return itself repays the bank).
ALTER TABLE installments ADD COLUMN waived_principal_fen bigint NOT NULL DEFAULT 0 CHECK (waived_principal_fen >= 0);

CREATE TABLE returns (
    id                         text PRIMARY KEY,
    seq                        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    order_id                   text NOT NULL REFERENCES orders (id),
    plan_id                    text NOT NULL REFERENCES plans (id),
    status                     text NOT NULL CHECK (status IN ('requested', 'completed', 'rejected')),
    reason                     text NOT NULL CHECK (reason IN ('no_reason', 'performance_fault', 'other')),
    returned_on                date NOT NULL,
    reference                  text NOT NULL,
    note                       text,
    principal_to_bank_fen      bigint NOT NULL CHECK (principal_to_bank_fen >= 0),
    repayments_to_refund_fen   bigint NOT NULL CHECK (repayments_to_refund_fen >= 0),
    interest_waived_fen        bigint NOT NULL CHECK (interest_waived_fen >= 0),
    fee_waived_fen             bigint NOT NULL CHECK (fee_waived_fen >= 0),
    penalty_waived_fen         bigint NOT NULL CHECK (penalty_waived_fen >= 0),
    down_payment_to_refund_fen bigint NOT NULL CHECK (down_payment_to_refund_fen >= 0),
    hold_to_void_fen           bigint NOT NULL CHECK (hold_to_void_fen >= 0),
    completed_on               date,
    -- The first open business date on or after completed_on: reports go by it.
    booked_on                  date,
    rejection_reason           text,
    decided_on                 date,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT returns_reference_unique UNIQUE (order_id, reference),
    CONSTRAINT returns_completed_whole CHECK ((status = 'completed') = (completed_on IS NOT NULL)
        AND (status = 'completed') = (booked_on IS NOT NULL) AND (status = 'rejected') = (rejection_reason IS NOT NULL))
);
-- At most one return in progress per plan: the lasting guard behind `return_in_progress`.
CREATE UNIQUE INDEX returns_one_requested ON returns (plan_id) WHERE status = 'requested';
CREATE INDEX returns_order_newest ON returns (order_id, seq DESC);
CREATE INDEX returns_booked ON returns (booked_on) WHERE booked_on IS NOT NULL;

-- A plan's latest return, and whether it is frozen by one in progress (read with every plan lock,
-- so that repayments, acceleration and end of day see the freeze under the lock they already take).
ALTER TABLE plans ADD COLUMN return_id text, ADD COLUMN return_requested boolean NOT NULL DEFAULT false;
