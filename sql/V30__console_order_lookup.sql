-- The console's order lookup and notice history (issue 18, API.md §16).

-- Every webhook attempt, as its outcome is recorded (db::notices::finish_attempts writes the row
-- in the same statement that updates the notice): when it was sent, the HTTP status or the error,
-- and when the next one was due (null once delivered or dead). A redelivery starts the numbering
-- again; the rows of earlier rounds stay, in time order. Attempts given back unanswered (never
-- sent, or cut short by a lost lease) were not counted and are not recorded.
CREATE TABLE notice_attempts (
    notice_seq      bigint NOT NULL,
    attempt         integer NOT NULL,
    attempted_at    timestamptz NOT NULL,
    delivered       boolean NOT NULL,
    status          integer,
    error           text,
    next_attempt_at timestamptz
);
CREATE INDEX notice_attempts_notice ON notice_attempts (notice_seq, attempted_at);

-- An order's notices and journal entries, for its lookup: without these, finding them reads every
-- notice and every entry of the book. Notices and entries about no order are left out.
CREATE INDEX notices_order ON notices ((data ->> 'order_id')) WHERE data ->> 'order_id' IS NOT NULL;
CREATE INDEX journal_entries_order ON journal_entries (order_id) WHERE order_id IS NOT NULL;
