-- API.md §12: a provider may require that it confirm every hold on its side before the engine
-- treats the hold as placed. Until then the hold is `pending` (counted in its line's held) and its
-- order `awaiting_hold_confirmation`, with no funding deadline: the deadline runs from the
-- confirmation, for the hours the order took from its product when placed (kept on the order).
-- An order placed without confirmation, or confirmed, has its funding deadline; one that never had
-- one was never shown to its bank (API.md §12: until confirmation it does not exist for the bank).
ALTER TABLE providers
    ADD COLUMN hold_confirmation text NOT NULL DEFAULT 'none' CHECK (hold_confirmation IN ('none', 'required')),
    ADD COLUMN hold_confirmation_timeout_minutes integer NOT NULL DEFAULT 15
        CHECK (hold_confirmation_timeout_minutes BETWEEN 1 AND 1440);

ALTER TABLE holds DROP CONSTRAINT holds_status_check;
ALTER TABLE holds
    ADD CONSTRAINT holds_status_check CHECK (status IN ('active', 'closed', 'voided', 'pending')),
    ADD COLUMN confirm_deadline timestamptz,
    ADD COLUMN confirmed_at timestamptz,
    ADD COLUMN provider_order_no text,
    ADD COLUMN sign_url text,
    ADD COLUMN decline_reason text
        CHECK (decline_reason IN ('customer_declined', 'risk_refused', 'insufficient_limit', 'other')),
    ADD CONSTRAINT holds_pending_has_deadline CHECK (status <> 'pending' OR confirm_deadline IS NOT NULL);
-- What the sweep and end of day time out: pending holds by deadline.
CREATE INDEX holds_pending_deadline ON holds (confirm_deadline) WHERE status = 'pending';
CREATE INDEX holds_pending_line ON holds (credit_line_id) WHERE status = 'pending';

-- A provider's order number is unique for ever, a replaced one included.
CREATE TABLE provider_order_nos (
    provider_id       text NOT NULL,
    provider_order_no text NOT NULL,
    hold_id           text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_id, provider_order_no)
);

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders
    ADD CONSTRAINT orders_status_check CHECK (status IN ('awaiting_funding', 'active', 'settled', 'defaulted', 'cancelled',
        'rejected', 'expired', 'awaiting_hold_confirmation')),
    ALTER COLUMN funding_deadline DROP NOT NULL,
    ADD COLUMN funding_timeout_hours integer;
