-- Results of the parameter-sweep job (serve_apps.jobs.sweep): one row per task, i.e. per
-- (detector config, symbol group, day) of one run. Scores are NULL when the data had no
-- labels (a tick store): alarms are counted, but nothing says which were true.
CREATE TABLE sweep_results (
    run_id       text NOT NULL,
    config_id    integer NOT NULL,
    config       jsonb NOT NULL,             -- the full DetectorConfig of the task
    params       jsonb NOT NULL,             -- the grid values that made this config
    label        text NOT NULL,              -- the split, e.g. "g3/2026-01-05"
    symbols      text[] NOT NULL,
    day          date NOT NULL,              -- UTC day of start_ns
    start_ns     bigint NOT NULL,
    end_ns       bigint NOT NULL,
    ticks        bigint NOT NULL,
    alarms       integer NOT NULL,
    true_alarms  integer,
    false_alarms integer,
    events       jsonb NOT NULL,             -- labelled events per kind
    detected     jsonb NOT NULL,             -- detected events per kind
    recall       jsonb NOT NULL,             -- per detectable kind
    precision    double precision,
    seconds      double precision NOT NULL,  -- the task's own wall time
    created_ns   bigint NOT NULL,
    PRIMARY KEY (run_id, config_id, label)
);
CREATE INDEX sweep_results_created ON sweep_results (created_ns);
