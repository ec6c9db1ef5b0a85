-- Stored reports' bodies (sql/V23) are compressed with lz4 instead of the default pglz: a closed
-- date's reports are written once by end of day, tens of MiB of JSON and CSV on a busy date, and
-- pglz compressed them at under 100 MB/s inside the end of day's closing (issue 20; lz4 is several
-- times faster at a similar ratio on this text). Only rows written from now on use it; reading
-- either is transparent. Needs a PostgreSQL built with lz4 (the Debian, Ubuntu and PGDG packages are).
ALTER TABLE report_store ALTER COLUMN body SET COMPRESSION lz4;
