-- The operations API (API.md §16): end-of-day run history, aging snapshots of closed dates, and
-- the lookups of search.

-- Every end-of-day run, whatever started it (refused requests are not runs). Written by the run
-- itself while it still holds the end-of-day lock, so runs are recorded in the order they ran.
CREATE TABLE eod_runs (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_date date NOT NULL,
    trigger       text NOT NULL CHECK (trigger IN ('schedule', 'api', 'cli')),
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    duration_ms   bigint NOT NULL CHECK (duration_ms >= 0),
    summary       jsonb NOT NULL
);

-- The aging of each date end of day closed, as of that date, taken in the transaction that closes
-- it: a closed date's aging is read from here and never changes. `buckets` holds one row per bank
-- and bucket that has plans ({bank_id, bucket, plans, outstanding_principal_fen, unpaid_due_fen}).
CREATE TABLE aging_snapshots (
    business_date date PRIMARY KEY,
    buckets       jsonb NOT NULL,
    taken_at      timestamptz NOT NULL DEFAULT now()
);

-- Search (GET /v1/admin/search?q=) by the business numbers, whoever their owner or bank: the
-- unique constraints lead with the owner (orders) and the bank (plans), so they cannot serve it.
-- A line's orders are found through its holds (holds_line, V2): no index on orders for that.
CREATE INDEX orders_out_order_no ON orders (out_order_no);
CREATE INDEX plans_loan_no ON plans (loan_no);
