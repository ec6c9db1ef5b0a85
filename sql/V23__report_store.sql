-- API.md §15: closed days are frozen. End of day renders each closed date's reports (each bank's
-- reconciliation, the all-banks one under subject '', each provider's settlement), JSON and CSV,
-- and keeps the bytes; a closed date is answered from here, so no later booking, code change or
-- upgrade changes it. A report missing for a closed date (a bank created later, an empty earlier
-- date of the first run) is rendered and stored at its first read.
CREATE TABLE report_store (
    kind          text NOT NULL CHECK (kind IN ('reconciliation', 'settlement')),
    business_date date NOT NULL,
    subject       text NOT NULL,
    format        text NOT NULL CHECK (format IN ('json', 'csv')),
    body          bytea NOT NULL,
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    movements     integer NOT NULL CHECK (movements >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, business_date, subject, format)
);
