-- A bank's limit may be cut below the exposure in use (the book is kept, new orders are refused).
-- exposure_at_cut_fen records the exposure when that happened: from then on the exposure may only
-- fall until it is within the limit again, and ledger verification checks exactly that
-- (bank_exposure_within_limit). NULL while the limit covers the exposure.
ALTER TABLE banks ADD COLUMN exposure_at_cut_fen bigint CHECK (exposure_at_cut_fen > 0);

-- Banks over their limit today: record their exposure, and spread the deficit so that no stripe
-- has room (earlier versions could leave a stripe room while the bank was over).
WITH over AS (
    SELECT b.id, b.exposure_limit_fen AS limit_fen, sum(s.used_fen)::int8 AS used_fen
    FROM banks b JOIN bank_exposure_stripes s ON s.bank_id = b.id
    GROUP BY b.id, b.exposure_limit_fen
    HAVING sum(s.used_fen) > b.exposure_limit_fen
), marked AS (
    UPDATE banks b SET exposure_at_cut_fen = over.used_fen FROM over WHERE b.id = over.id RETURNING b.id
)
UPDATE bank_exposure_stripes s
SET limit_fen = s.used_fen - CASE WHEN s.stripe = (SELECT min(stripe) FROM bank_exposure_stripes m WHERE m.bank_id = s.bank_id)
                                  THEN over.used_fen - over.limit_fen ELSE 0 END
FROM over WHERE s.bank_id = over.id;
