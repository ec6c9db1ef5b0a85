-- Rows that are updated soon after they are written keep room on their page, so the new version
-- lands on the same page: every notice is updated once committed (its read position, V5) and
-- again by delivery, and a credit line at every order. A full page sends the new version to
-- another page: an extra buffer, a LOCK record in the WAL and, for credit lines, a non-HOT update
-- with an entry in each of their indexes (pg_waldump of the order load: 2.7 LOCK records per order
-- on notices, a fifth of credit line updates not HOT). Applies to pages filled from now on.
ALTER TABLE notices SET (fillfactor = 70);
ALTER TABLE credit_lines SET (fillfactor = 80);
