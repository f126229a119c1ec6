-- Read paths of the HTTP API (lists newest first, paged, filtered by time) and a NOTIFY on
-- every change of the halt flag, so the console and the stream see a halt without polling.

-- (ts_ns, id COLLATE "C") read backwards serves ORDER BY ts_ns DESC, id COLLATE "C" DESC
-- and the since/until ranges; the (symbol, ts_ns) indexes of 0001 serve symbol filters.
CREATE INDEX incidents_ts ON incidents (ts_ns, id COLLATE "C");
CREATE INDEX verdicts_ts ON verdicts (ts_ns, id COLLATE "C");
CREATE INDEX verdicts_incident ON verdicts (incident_id, ts_ns);
CREATE INDEX proposals_ts ON proposals (ts_ns, id COLLATE "C");
CREATE INDEX orders_ts ON orders (ts_ns);
CREATE INDEX fills_ts ON fills (ts_ns);

-- The note mirrors read_halt(): no reason while not halted (after a resume the column keeps
-- the acknowledgement). reason and set_by are cut short because pg_notify refuses payloads
-- of 8000 bytes or more, and a refused NOTIFY would make the halt itself fail: even as
-- \uXXXX escapes, 1000 + 200 characters stay far below the cap.
CREATE FUNCTION app_state_notify_halt() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tripwire_halt', json_build_object(
        'halted', NEW.halted,
        'reason', CASE WHEN NEW.halted THEN left(NEW.reason, 1000) ELSE '' END,
        'set_by', left(NEW.set_by, 200),
        'set_ns', NEW.set_ns)::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER app_state_notify_halt
    AFTER INSERT OR UPDATE ON app_state
    FOR EACH ROW EXECUTE FUNCTION app_state_notify_halt();
