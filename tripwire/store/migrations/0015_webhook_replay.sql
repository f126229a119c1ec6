-- The news webhook's replay memory, shared by every Ingress replica: a signed request
-- accepted once (its signature's sha256 digest, with the request's own Unix timestamp) is
-- refused as a replay on any replica while it could still pass the clock check. Rows older
-- than the clock window are pruned by the replica that takes the next request.

CREATE TABLE webhook_replay (
    digest  text   PRIMARY KEY,   -- hex sha256 of the X-Tripwire-Signature value
    ts_s    bigint NOT NULL       -- the request's X-Tripwire-Timestamp (Unix seconds)
);
CREATE INDEX webhook_replay_ts ON webhook_replay (ts_s);
