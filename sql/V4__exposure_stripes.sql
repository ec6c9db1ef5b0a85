-- A bank's exposure is kept in stripes: an order reserves on one stripe only, so concurrent orders
-- routed to one bank do not queue on a single row. The stripes' limits always add up to the bank's
-- exposure_limit and each reservation stays within its stripe's limit, so the bank as a whole is
-- never over-reserved; when no single stripe has room but the bank does, the stripes are
-- rebalanced under locks on all of them.

CREATE TABLE bank_exposure_stripes (
    bank_id   text NOT NULL REFERENCES banks (id),
    stripe    smallint NOT NULL CHECK (stripe >= 0),
    limit_fen bigint NOT NULL,
    used_fen  bigint NOT NULL DEFAULT 0 CHECK (used_fen >= 0),
    PRIMARY KEY (bank_id, stripe)
);

-- Existing exposure moves to stripe 0, which also takes all of the limit; later changes rebalance.
INSERT INTO bank_exposure_stripes (bank_id, stripe, limit_fen, used_fen)
SELECT id, 0, exposure_limit_fen, exposure_used_fen FROM banks;

ALTER TABLE banks DROP COLUMN exposure_used_fen;
ALTER TABLE orders ADD COLUMN exposure_stripe smallint NOT NULL DEFAULT 0;
