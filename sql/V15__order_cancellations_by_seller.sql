-- A seller placing and cancelling orders against one customer again and again can read the exact
-- available credit of the customer's line (bisecting the price: 21 tries), so each cancellation by
-- a seller counts that seller's recent cancellations on the customer's lines (issue 14). Only
-- cancelled orders are indexed: placing an order writes no entry here, its cancellation one (the
-- update changes `status`, an indexed predicate column already, so it was never a HOT update).
CREATE INDEX orders_cancelled_by_seller ON orders (owner_scope, credit_line_id, updated_at) WHERE status = 'cancelled';
