-- API.md §12: every voided hold carries why it was voided, and every `hold.voided` notice says the
-- same (it is the provider's instruction to unfreeze, and a late confirm learns from it). Version 1
-- voided a hold only with its unfunded order's cancellation, rejection or expiry, so the order's
-- status names the reason of every void already stored. The constraint keeps the two together
-- from now on: a hold is voided exactly when it has a reason.
ALTER TABLE holds ADD COLUMN void_reason text
    CHECK (void_reason IN ('cancelled', 'rejected', 'expired', 'declined', 'confirmation_timeout', 'returned'));
UPDATE holds h SET void_reason = o.status
  FROM orders o
 WHERE o.id = h.order_id AND h.status = 'voided' AND o.status IN ('cancelled', 'rejected', 'expired');
ALTER TABLE holds ADD CONSTRAINT holds_voided_with_reason CHECK ((status = 'voided') = (void_reason IS NOT NULL));
