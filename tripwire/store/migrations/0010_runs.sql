-- Runs, and when each row ARRIVED (issue 13, the operator view that shows now).
--
-- ts_ns is market time: a replay of 2026-01-05 writes rows stamped 2026-01-05 today, so
-- ordering by it hides the current run behind any older run whose market was later. Every
-- row the console lists now also carries recorded_ns, the database's clock when the row was
-- inserted, and a run is a span of that clock: its rows are those recorded in
-- [started_ns, ended_ns) (ended_ns NULL: still running). No writer has to know about runs.

CREATE TABLE runs (
    id               text PRIMARY KEY,
    label            text   NOT NULL DEFAULT '',
    started_ns       bigint NOT NULL,           -- arrival clock (the database's)
    ended_ns         bigint,                    -- NULL while the run is going on
    period_start_ns  bigint,                    -- the market period it covered, if known
    period_end_ns    bigint,                    -- (end exclusive)
    payload          jsonb  NOT NULL DEFAULT '{}'::jsonb,
    CHECK (ended_ns IS NULL OR ended_ns >= started_ns),
    CHECK (period_end_ns IS NULL OR period_start_ns IS NULL OR period_end_ns > period_start_ns)
);
CREATE INDEX runs_started ON runs (started_ns, id COLLATE "C");

-- Rows written before this migration arrived at an unknown time: 0 (older than any run).
-- The constant default fills them without a table rewrite; the clock default then applies
-- to every new row. clock_timestamp(), not now(): rows of one transaction still differ.
-- extract(epoch ...) is numeric on PostgreSQL >= 14, so the nanoseconds are exact to the us.
ALTER TABLE incidents ADD COLUMN recorded_ns bigint NOT NULL DEFAULT 0;
ALTER TABLE incidents ALTER COLUMN recorded_ns
    SET DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint;
ALTER TABLE verdicts ADD COLUMN recorded_ns bigint NOT NULL DEFAULT 0;
ALTER TABLE verdicts ALTER COLUMN recorded_ns
    SET DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint;
ALTER TABLE proposals ADD COLUMN recorded_ns bigint NOT NULL DEFAULT 0;
ALTER TABLE proposals ALTER COLUMN recorded_ns
    SET DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint;
ALTER TABLE orders ADD COLUMN recorded_ns bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ALTER COLUMN recorded_ns
    SET DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint;
ALTER TABLE fills ADD COLUMN recorded_ns bigint NOT NULL DEFAULT 0;
ALTER TABLE fills ALTER COLUMN recorded_ns
    SET DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint;

-- Newest first by arrival (the console's order) and a run's span read backwards.
CREATE INDEX incidents_recorded ON incidents (recorded_ns, ts_ns, id COLLATE "C");
CREATE INDEX verdicts_recorded ON verdicts (recorded_ns, ts_ns, id COLLATE "C");
CREATE INDEX proposals_recorded ON proposals (recorded_ns, ts_ns, id COLLATE "C");
CREATE INDEX orders_recorded ON orders (recorded_ns);
CREATE INDEX fills_recorded ON fills (recorded_ns);
