-- Credit lines, holds, orders, plans, installments, the double-entry journal, notices, audit log,
-- business days. Money is bigint fen; every *_fen column is non-negative.

CREATE TABLE credit_lines (
    id               text PRIMARY KEY,
    provider_id      text NOT NULL REFERENCES providers (id),
    id_number_hash   text NOT NULL,          -- HMAC-SHA256 under pii.hash_key
    id_number_masked text NOT NULL,
    phone_hash       text NOT NULL,
    phone_masked     text NOT NULL,
    identity_sealed  bytea NOT NULL,         -- AES-256-GCM of {"id_number", "phone", "name"}
    limit_fen        bigint NOT NULL CHECK (limit_fen >= 0),
    held_fen         bigint NOT NULL DEFAULT 0 CHECK (held_fen >= 0),
    drawn_fen        bigint NOT NULL DEFAULT 0 CHECK (drawn_fen >= 0),
    expires_on       date NOT NULL,
    status           text NOT NULL CHECK (status IN ('active', 'frozen', 'closed')),
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credit_lines_not_overdrawn CHECK (held_fen + drawn_fen <= limit_fen),
    CONSTRAINT credit_lines_provider_customer UNIQUE (provider_id, id_number_hash)
);
CREATE INDEX credit_lines_customer ON credit_lines (id_number_hash);

CREATE TABLE orders (
    id                       text PRIMARY KEY,
    seq                      bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    owner_scope              text NOT NULL,   -- 'store:<id>' or 'partner:<id>'
    out_order_no             text NOT NULL,
    channel                  text NOT NULL CHECK (channel IN ('store', 'partner')),
    store_id                 text REFERENCES stores (id),
    partner_id               text REFERENCES partners (id),
    agent_id                 text,
    region_code              text NOT NULL,
    product_id               text NOT NULL REFERENCES products (id),
    term_months              integer NOT NULL,
    pricing                  text NOT NULL,
    rate                     numeric(10,8) NOT NULL,
    hold_ratio               numeric(10,8) NOT NULL,
    grace_days               integer NOT NULL,
    penalty_daily_rate       numeric(10,8) NOT NULL,
    partner_referral_fee_fen bigint NOT NULL,
    principal_fen            bigint NOT NULL CHECK (principal_fen > 0),
    apr_irr                  text NOT NULL,
    device_sku               text NOT NULL,
    imei_masked              text NOT NULL,
    device_price_fen         bigint NOT NULL CHECK (device_price_fen > 0),
    down_payment_fen         bigint NOT NULL CHECK (down_payment_fen >= 0),
    consent                  jsonb,
    identity_sealed          bytea NOT NULL,  -- the borrower as given on this order, for the funding bank only
    credit_line_id           text NOT NULL REFERENCES credit_lines (id),
    bank_id                  text NOT NULL REFERENCES banks (id),
    funding_deadline         timestamptz NOT NULL,
    status                   text NOT NULL CHECK (status IN ('awaiting_funding', 'active', 'settled', 'defaulted', 'cancelled', 'rejected', 'expired')),
    reason                   text,
    created_on               date NOT NULL,   -- Asia/Shanghai date of creation
    decided_on               date,            -- cancellation, rejection or expiry date
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_out_order_no_unique UNIQUE (owner_scope, out_order_no)
);
CREATE INDEX orders_owner_newest ON orders (owner_scope, seq DESC);
CREATE INDEX orders_bank_newest ON orders (bank_id, seq DESC);
CREATE INDEX orders_awaiting_deadline ON orders (funding_deadline) WHERE status = 'awaiting_funding';

CREATE TABLE holds (
    id             text PRIMARY KEY,
    credit_line_id text NOT NULL REFERENCES credit_lines (id),
    provider_id    text NOT NULL REFERENCES providers (id),
    order_id       text NOT NULL UNIQUE REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED,
    amount_fen     bigint NOT NULL CHECK (amount_fen > 0),
    released_fen   bigint NOT NULL DEFAULT 0 CHECK (released_fen >= 0),
    converted_fen  bigint NOT NULL DEFAULT 0 CHECK (converted_fen >= 0),
    voided_fen     bigint NOT NULL DEFAULT 0 CHECK (voided_fen >= 0),
    remaining_fen  bigint NOT NULL CHECK (remaining_fen >= 0),
    status         text NOT NULL CHECK (status IN ('active', 'closed', 'voided')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT holds_balanced CHECK (amount_fen = released_fen + converted_fen + voided_fen + remaining_fen)
);
CREATE INDEX holds_line ON holds (credit_line_id);
ALTER TABLE orders ADD COLUMN hold_id text;

CREATE TABLE plans (
    id                 text PRIMARY KEY,
    order_id           text NOT NULL UNIQUE REFERENCES orders (id),
    bank_id            text NOT NULL REFERENCES banks (id),
    loan_no            text NOT NULL,
    principal_fen      bigint NOT NULL CHECK (principal_fen > 0),
    pricing            text NOT NULL,
    rate               numeric(10,8) NOT NULL,
    apr_irr            text NOT NULL,
    term_months        integer NOT NULL,
    funded_on          date NOT NULL,
    status             text NOT NULL CHECK (status IN ('active', 'settled', 'defaulted')),
    accelerated_as_of  date,
    accelerated_reason text,
    seq                bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT plans_loan_no_unique UNIQUE (bank_id, loan_no)
);

CREATE TABLE installments (
    plan_id            text NOT NULL REFERENCES plans (id),
    seq                integer NOT NULL CHECK (seq >= 1),
    due_on             date NOT NULL,
    principal_fen      bigint NOT NULL CHECK (principal_fen >= 0),
    interest_fen       bigint NOT NULL CHECK (interest_fen >= 0),
    fee_fen            bigint NOT NULL CHECK (fee_fen >= 0),
    penalty_fen        bigint NOT NULL DEFAULT 0 CHECK (penalty_fen >= 0),
    penalty_through    date,
    paid_principal_fen bigint NOT NULL DEFAULT 0 CHECK (paid_principal_fen >= 0),
    paid_interest_fen  bigint NOT NULL DEFAULT 0 CHECK (paid_interest_fen >= 0),
    paid_fee_fen       bigint NOT NULL DEFAULT 0 CHECK (paid_fee_fen >= 0),
    paid_penalty_fen   bigint NOT NULL DEFAULT 0 CHECK (paid_penalty_fen >= 0),
    compensated_fen    bigint NOT NULL DEFAULT 0 CHECK (compensated_fen >= 0),
    waived_fen         bigint NOT NULL DEFAULT 0 CHECK (waived_fen >= 0),
    status             text NOT NULL CHECK (status IN ('pending', 'overdue', 'paid', 'waived')),
    PRIMARY KEY (plan_id, seq),
    CONSTRAINT installments_not_overpaid CHECK (
        paid_principal_fen <= principal_fen AND paid_interest_fen <= interest_fen
        AND paid_fee_fen <= fee_fen AND paid_penalty_fen <= penalty_fen)
);
-- End of day touches only what is due and unpaid: its cost follows the due items, not the book.
CREATE INDEX installments_open_by_due ON installments (due_on, plan_id) WHERE status IN ('pending', 'overdue');

-- Double entry: every movement of money is one entry whose lines sum to zero (debits positive).
CREATE SEQUENCE journal_entry_seq;
CREATE TABLE journal_entries (
    id             bigint PRIMARY KEY DEFAULT nextval('journal_entry_seq'),
    kind           text NOT NULL,
    booked_on      date NOT NULL,
    order_id       text,
    plan_id        text,
    hold_id        text,
    credit_line_id text,
    bank_id        text,
    reference      text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE journal_entry_seq OWNED BY journal_entries.id;
CREATE INDEX journal_entries_booked ON journal_entries (booked_on, id);

CREATE TABLE journal_lines (
    entry_id   bigint NOT NULL REFERENCES journal_entries (id),
    account    text NOT NULL,
    amount_fen bigint NOT NULL CHECK (amount_fen <> 0)
);
CREATE INDEX journal_lines_entry ON journal_lines (entry_id);
CREATE INDEX journal_lines_account ON journal_lines (account);

-- The outbox: written in the same transaction as the change it tells of.
CREATE SEQUENCE notice_seq;
CREATE TABLE notices (
    seq             bigint PRIMARY KEY DEFAULT nextval('notice_seq'),
    id              text GENERATED ALWAYS AS ('ntc_' || lpad(seq::text, 16, '0')) STORED UNIQUE,
    type            text NOT NULL,
    recipient_kind  text NOT NULL CHECK (recipient_kind IN ('bank', 'provider', 'store', 'partner')),
    recipient_id    text NOT NULL,
    data            jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    state           text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'pull_only')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text,
    delivered_at    timestamptz
);
ALTER SEQUENCE notice_seq OWNED BY notices.seq;
CREATE INDEX notices_recipient ON notices (recipient_kind, recipient_id, seq);
CREATE INDEX notices_due ON notices (next_attempt_at, seq) WHERE state = 'pending';

CREATE TABLE audit_log (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    object_id   text NOT NULL,
    request_id  text NOT NULL
);

CREATE TABLE business_days (
    business_date date PRIMARY KEY,
    closed_at     timestamptz NOT NULL DEFAULT now(),
    summary       jsonb NOT NULL
);

CREATE TABLE debt_repayments (
    id             text PRIMARY KEY,
    credit_line_id text NOT NULL REFERENCES credit_lines (id),
    amount_fen     bigint NOT NULL CHECK (amount_fen > 0),
    booked_on      date NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repayments (
    id            text PRIMARY KEY,
    plan_id       text NOT NULL REFERENCES plans (id),
    amount_fen    bigint NOT NULL CHECK (amount_fen > 0),
    paid_on       date NOT NULL,
    booked_on     date NOT NULL,
    reference     text NOT NULL,
    principal_fen bigint NOT NULL,
    interest_fen  bigint NOT NULL,
    fee_fen       bigint NOT NULL,
    penalty_fen   bigint NOT NULL,
    allocations   jsonb NOT NULL,
    hold_released_fen bigint NOT NULL,
    seq           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT repayments_reference_unique UNIQUE (plan_id, reference),
    CHECK (amount_fen = principal_fen + interest_fen + fee_fen + penalty_fen)
);
CREATE INDEX repayments_booked ON repayments (booked_on);

-- Compensations (the hold converted and applied to an installment), one row per installment and event.
CREATE TABLE compensations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_id         text NOT NULL REFERENCES plans (id),
    installment_seq integer NOT NULL,
    amount_fen      bigint NOT NULL CHECK (amount_fen > 0),
    principal_fen   bigint NOT NULL,
    interest_fen    bigint NOT NULL,
    fee_fen         bigint NOT NULL,
    penalty_fen     bigint NOT NULL,
    value_date      date NOT NULL,
    booked_on       date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (amount_fen = principal_fen + interest_fen + fee_fen + penalty_fen)
);
CREATE INDEX compensations_booked ON compensations (booked_on);
