-- API.md §15: the provider's settlement lists each confirmation of a hold (`hold_confirmed`, which
-- moves nothing, so no journal entry books it). A confirmation is booked like any event, on the
-- first open date on or after its date, and takes its place in booking order from the journal's
-- own sequence, drawn when it is confirmed.
ALTER TABLE holds ADD COLUMN confirmed_booked_on date, ADD COLUMN confirmed_entry_seq bigint;
-- Confirmations before this version: booked on their Shanghai date, in confirmation order.
UPDATE holds h SET confirmed_booked_on = (h.confirmed_at AT TIME ZONE 'Asia/Shanghai')::date,
                   confirmed_entry_seq = nextval('journal_entry_seq')
  FROM (SELECT id FROM holds WHERE confirmed_at IS NOT NULL ORDER BY confirmed_at, id) c
 WHERE h.id = c.id;
ALTER TABLE holds ADD CONSTRAINT holds_confirmation_booked CHECK ((confirmed_at IS NULL) = (confirmed_booked_on IS NULL)
    AND (confirmed_at IS NULL) = (confirmed_entry_seq IS NULL));
CREATE INDEX holds_confirmed_booked ON holds (provider_id, confirmed_booked_on) WHERE confirmed_booked_on IS NOT NULL;
