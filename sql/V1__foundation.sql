-- Reference data, API keys and idempotency: the foundation every later migration builds on.
-- Money is bigint fen (columns named *_fen); rates numeric(10,8).

CREATE TABLE providers (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    webhook_url    text,
    webhook_secret text,
    seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE banks (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    priority       integer NOT NULL,
    apr_min        numeric(10,8) NOT NULL,
    apr_max        numeric(10,8) NOT NULL CHECK (apr_min <= apr_max),
    exposure_limit_fen bigint NOT NULL CHECK (exposure_limit_fen > 0),
    exposure_used_fen  bigint NOT NULL DEFAULT 0 CHECK (exposure_used_fen >= 0),
    regions        text[],
    webhook_url    text,
    webhook_secret text,
    seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stores (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    region_code text NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE partners (
    id                        text PRIMARY KEY,
    name                      text NOT NULL,
    established_on            date NOT NULL,
    deposit_paid_fen              bigint NOT NULL CHECK (deposit_paid_fen >= 0),
    authorized_providers      text[] NOT NULL,
    major_violation_last_year boolean NOT NULL,
    regions                   text[] NOT NULL,
    seq                       bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id                    text PRIMARY KEY,
    name                  text NOT NULL,
    pricing               text NOT NULL CHECK (pricing IN ('interest', 'fee')),
    terms                 jsonb NOT NULL,          -- [{"months": 12, "rate": "0.18", "apr_irr": "0.1800"}]
    providers             text[] NOT NULL,
    regions               text[] NOT NULL,
    min_principal_fen         bigint NOT NULL CHECK (min_principal_fen > 0),
    max_principal_fen         bigint NOT NULL CHECK (max_principal_fen >= min_principal_fen),
    hold_ratio            numeric(10,8) NOT NULL CHECK (hold_ratio > 0 AND hold_ratio <= 10),
    grace_days            integer NOT NULL CHECK (grace_days BETWEEN 0 AND 30),
    penalty_daily_rate    numeric(10,8) NOT NULL CHECK (penalty_daily_rate >= 0),
    funding_timeout_hours integer NOT NULL CHECK (funding_timeout_hours BETWEEN 1 AND 720),
    partner_referral_fee_fen  bigint NOT NULL CHECK (partner_referral_fee_fen >= 0),
    active                boolean NOT NULL DEFAULT true,
    seq                   bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id                    text PRIMARY KEY,
    key_hash              bytea NOT NULL UNIQUE,
    principal_kind        text NOT NULL CHECK (principal_kind IN ('admin', 'store', 'partner', 'bank', 'provider')),
    principal_id          text,
    rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
    seq                   bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at            timestamptz NOT NULL DEFAULT now(),
    revoked_at            timestamptz,
    CHECK ((principal_kind = 'admin') = (principal_id IS NULL))
);

-- One row per (principal scope, key), written in the same transaction as the change it answers for.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    method       text NOT NULL,
    path         text NOT NULL,
    fingerprint  bytea NOT NULL,
    status       smallint NOT NULL,
    body         jsonb NOT NULL,
    request_id   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
