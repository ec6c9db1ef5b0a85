-- API.md §9: the payoff as of a date counts penalty only of installments due on or before it, so an
-- exact-payoff settlement or an acceleration valued before a due date that end of day has already
-- passed forgives the penalty accrued on that installment (issue 15). It is kept apart from
-- waived_fen (interest and fee, attributed fee first) so that split stays derivable; the API's
-- `waived` is their sum. Adding a column with a constant default rewrites no row.
ALTER TABLE installments
    ADD COLUMN waived_penalty_fen bigint NOT NULL DEFAULT 0 CHECK (waived_penalty_fen >= 0),
    ADD CONSTRAINT installments_penalty_not_overforgiven CHECK (paid_penalty_fen + waived_penalty_fen <= penalty_fen);
