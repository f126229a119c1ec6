-- Decision chain: incident -> verdict -> proposal -> signatures -> orders -> fills.
-- Times are int64 ns UTC (ts_ns); ids are text (UUIDv7/ULID, client order ids); the full
-- domain object rides along as jsonb so later fields need no migration to be kept.

CREATE TABLE incidents (
    id           text PRIMARY KEY,
    symbol       text   NOT NULL,
    ts_ns        bigint NOT NULL,
    status       text   NOT NULL DEFAULT 'open',  -- open | triaged | skipped: overload | ...
    payload      jsonb  NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incidents_symbol_ts ON incidents (symbol, ts_ns);

CREATE TABLE verdicts (
    id           text PRIMARY KEY,
    incident_id  text   NOT NULL REFERENCES incidents (id),
    symbol       text   NOT NULL,
    ts_ns        bigint NOT NULL,
    class        text   NOT NULL,
    confidence   double precision NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    payload      jsonb  NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX verdicts_symbol_ts ON verdicts (symbol, ts_ns);

CREATE TABLE proposals (
    id           text PRIMARY KEY,           -- the decision id
    verdict_id   text   REFERENCES verdicts (id),
    symbol       text   NOT NULL,
    ts_ns        bigint NOT NULL,
    action       text   NOT NULL CHECK (action IN ('BUY', 'SELL', 'HOLD')),
    proposal_hash text  NOT NULL,
    outcome      text,                       -- NULL while in flight; EXECUTED | REJECTED | ...
    reason       text   NOT NULL DEFAULT '',
    payload      jsonb  NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX proposals_symbol_ts ON proposals (symbol, ts_ns);

-- One signature per signer per proposal: a retry cannot add a second vote.
CREATE TABLE signatures (
    id            bigserial PRIMARY KEY,
    proposal_id   text   NOT NULL REFERENCES proposals (id),
    signer        text   NOT NULL,
    proposal_hash text   NOT NULL,
    verdict       text   NOT NULL CHECK (verdict IN ('APPROVE', 'VETO', 'SHRINK')),
    reason        text   NOT NULL DEFAULT '',
    ts_ns         bigint NOT NULL,
    UNIQUE (proposal_id, signer)
);

-- client_order_id is unique: the idempotency key that stops a retry or restart doubling it.
CREATE TABLE orders (
    client_order_id   text PRIMARY KEY,
    proposal_id       text   NOT NULL REFERENCES proposals (id),
    backend           text   NOT NULL,
    exchange_order_id text,
    symbol            text   NOT NULL,
    side              text   NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type        text   NOT NULL,
    qty               double precision NOT NULL CHECK (qty > 0),
    price             double precision,
    status            text   NOT NULL,
    ts_ns             bigint NOT NULL,
    updated_ns        bigint NOT NULL,
    payload           jsonb  NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX orders_symbol_ts ON orders (symbol, ts_ns);

CREATE TABLE fills (
    id               text PRIMARY KEY,       -- backend fill/trade id: a re-poll cannot double it
    client_order_id  text   NOT NULL REFERENCES orders (client_order_id),
    symbol           text   NOT NULL,
    side             text   NOT NULL CHECK (side IN ('BUY', 'SELL')),
    qty              double precision NOT NULL CHECK (qty > 0),
    price            double precision NOT NULL,
    fee              double precision NOT NULL DEFAULT 0,
    ts_ns            bigint NOT NULL
);
CREATE INDEX fills_order ON fills (client_order_id);

-- The latest position per backend and symbol (the fills are the history).
CREATE TABLE positions (
    backend        text   NOT NULL,
    symbol         text   NOT NULL,
    qty            double precision NOT NULL,
    avg_price      double precision NOT NULL,
    realised_pnl   double precision NOT NULL DEFAULT 0,
    updated_ns     bigint NOT NULL,
    PRIMARY KEY (backend, symbol)
);
