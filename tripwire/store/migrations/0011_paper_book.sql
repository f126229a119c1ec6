-- The paper venue's book as an append-only event log (tripwire.store.paper_book): every
-- change of the book (an order accepted, replaced or cancelled; a tick that filled an order
-- or triggered a bracket; a throttled mark of the positions) is one row, numbered per book
-- from 1 without gaps. A restart replays the rows through PaperBroker's own code.
-- (book, seq) is the key: a retried write of the same event is a no-op, and ``digest`` (of
-- kind and data) lets the writer prove a row that was already there is the same event.
CREATE TABLE paper_book_events (
    book        text   NOT NULL,
    seq         bigint NOT NULL CHECK (seq > 0),
    kind        text   NOT NULL,
    ts_ns       bigint NOT NULL,
    digest      text   NOT NULL,
    data        jsonb  NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (book, seq)
);

-- Append-only: the log is the book's history; nothing rewrites or deletes it.
CREATE FUNCTION paper_book_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'paper_book_events is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER paper_book_events_append_only BEFORE UPDATE OR DELETE ON paper_book_events
    FOR EACH ROW EXECUTE FUNCTION paper_book_events_append_only();

-- An incident's identity is its trip, not its arrival: the first incident that claims
-- (symbol, trip time, lead metric) owns it; the same trip posted again, under another id or
-- at another time, is answered "duplicate" with the owner's id and never decided twice,
-- across replicas and restarts.
CREATE TABLE incident_trips (
    symbol       text   NOT NULL,
    ts_ns        bigint NOT NULL,
    metric       text   NOT NULL,
    incident_id  text   NOT NULL,
    claimed_ns   bigint NOT NULL,
    PRIMARY KEY (symbol, ts_ns, metric)
);
