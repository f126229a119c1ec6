-- Process-wide state: the halt flag (exactly one row) and component heartbeats.

CREATE TABLE app_state (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),  -- the single row
    halted      boolean NOT NULL DEFAULT false,
    reason      text    NOT NULL DEFAULT '',
    set_by      text    NOT NULL DEFAULT '',
    set_ns      bigint  NOT NULL DEFAULT 0
);
INSERT INTO app_state (id) VALUES (true);

CREATE TABLE heartbeats (
    component   text PRIMARY KEY,    -- e.g. "feed:binance", "shard:0", "watchdog"
    ts_ns       bigint NOT NULL,
    detail      text   NOT NULL DEFAULT ''
);

-- Anything that could not be processed, with why: never silently dropped.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    ts_ns       bigint NOT NULL,
    source      text   NOT NULL,
    reason      text   NOT NULL,
    symbol      text,
    detail      text   NOT NULL DEFAULT '',
    raw         text   NOT NULL DEFAULT ''
);
CREATE INDEX dead_letters_ts ON dead_letters (ts_ns);
