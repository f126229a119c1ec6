-- Memory (issue 17 item 2): the outcome each incident realised, for the analyst and the
-- strategist to see next to the most similar past incidents. An outcome is a fact only once
-- it has happened: ``realised_ns`` is when it became known (the incident's time plus the
-- horizon it was measured over), and a reader asks for outcomes realised before the
-- incident it decides, so a backtest can never show a model the future.
CREATE TABLE incident_outcomes (
    incident_id    text PRIMARY KEY REFERENCES incidents (id),
    symbol         text             NOT NULL,
    metric         text             NOT NULL,   -- the lead metric: RETURN | VOLUME | PRICE
    z_bucket       integer          NOT NULL,   -- signed floor(log2 |z|) (Incident.features)
    has_news       boolean          NOT NULL DEFAULT false,
    ts_ns          bigint           NOT NULL,   -- the incident's (trip's) time
    realised_ns    bigint           NOT NULL,
    horizon_s      double precision NOT NULL CHECK (horizon_s > 0),
    classification text             NOT NULL DEFAULT '',
    action         text             NOT NULL DEFAULT 'HOLD'
                   CHECK (action IN ('BUY', 'SELL', 'HOLD')),
    move_pct       double precision NOT NULL,   -- the symbol's move over the horizon
    pnl            double precision,            -- of the decision, when it traded
    payload        jsonb            NOT NULL DEFAULT '{}'::jsonb,
    CHECK (realised_ns >= ts_ns)
);
-- The similarity query: same metric, z bucket within one, realised before a time; the
-- newest first. The symbol and news ties are ranked on the few rows this range returns.
CREATE INDEX incident_outcomes_similar
    ON incident_outcomes (metric, z_bucket, realised_ns DESC);
