-- The LLM cost ledger: column for column tripwire.llm.ledger.LLM_CALLS_DDL
-- (tests/store/test_pg.py checks that the two agree).
CREATE TABLE IF NOT EXISTS llm_calls (
    id             bigserial PRIMARY KEY,
    call_id        text             NOT NULL,
    ts_ns          bigint           NOT NULL,
    role           text             NOT NULL,
    route          text             NOT NULL,
    model          text             NOT NULL,
    input_tokens   integer          NOT NULL,
    output_tokens  integer          NOT NULL,
    cost_usd       double precision NOT NULL,
    latency_ms     double precision NOT NULL,
    outcome        text             NOT NULL,
    attempt        integer          NOT NULL,
    fingerprint    text             NOT NULL,
    cached         boolean          NOT NULL,
    detail         text             NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_calls_ts ON llm_calls (ts_ns);
CREATE INDEX IF NOT EXISTS llm_calls_call ON llm_calls (call_id);
