-- Idempotent tick ingest: one row per batch id (the client's Idempotency-Key), claimed
-- before the batch is applied and given its result after, so a retry of an applied batch
-- gets the first answer back instead of applying the ticks again. A row without a result
-- is a batch whose outcome is unknown (a fault stopped it part-way); it is never applied
-- again under the same id. Rows older than the retention are pruned by the data plane.

CREATE TABLE ingest_batches (
    batch_id    text   PRIMARY KEY,
    digest      text   NOT NULL,          -- sha-256 of the body: a reused key with another body is refused
    owner       text   NOT NULL,          -- the data plane instance that claimed it
    claimed_ns  bigint NOT NULL,
    result      jsonb,                    -- NULL until the batch was applied
    done_ns     bigint
);
CREATE INDEX ingest_batches_claimed ON ingest_batches (claimed_ns);
