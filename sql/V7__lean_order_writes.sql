-- Placing an order writes an order, a hold and three notices; each of these costs in proportion to
-- the indexes and constraint triggers on the row.
--
-- Orders and holds reference rows that the order's own transaction has just read (store, partner,
-- product, bank, provider) or locked (the credit line), and reference data is never deleted (the
-- API has no DELETE for it). Their foreign keys only added a trigger query per reference and a
-- KEY SHARE lock on rows that every order shares (the product, the bank: a multixact per order
-- under load). `GET /v1/admin/ledger/verify` checks these references instead
-- (rule `order_references_exist`, `hold_references_exist`).
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_store_id_fkey;
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_partner_id_fkey;
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_product_id_fkey;
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_credit_line_id_fkey;
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_bank_id_fkey;
ALTER TABLE holds DROP CONSTRAINT IF EXISTS holds_credit_line_id_fkey;
ALTER TABLE holds DROP CONSTRAINT IF EXISTS holds_provider_id_fkey;
ALTER TABLE holds DROP CONSTRAINT IF EXISTS holds_order_id_fkey;

-- A notice's id is its seq written out (`ntc_` and 16 digits), and every lookup goes by seq
-- (db::notices::seq_of_id): the unique index on the text form was never read.
ALTER TABLE notices DROP CONSTRAINT IF EXISTS notices_id_key;
