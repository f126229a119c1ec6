-- Every message passed between agents, append-only, with a NOTIFY on insert so a listener
-- (console, watchdog, explain --follow) sees it without polling.

CREATE TABLE bus_messages (
    id           bigserial PRIMARY KEY,
    ts_ns        bigint NOT NULL,
    decision_id  text,                   -- incident or proposal id the message belongs to
    sender       text   NOT NULL,
    recipient    text   NOT NULL,
    kind         text   NOT NULL,
    payload      jsonb  NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX bus_messages_decision ON bus_messages (decision_id, id);
CREATE INDEX bus_messages_ts ON bus_messages (ts_ns);

-- Append-only: history is evidence, so UPDATE and DELETE raise.
CREATE FUNCTION bus_messages_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'bus_messages is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER bus_messages_append_only
    BEFORE UPDATE OR DELETE ON bus_messages
    FOR EACH ROW EXECUTE FUNCTION bus_messages_refuse_change();

-- The notification carries only the row's id, decision and kind (NOTIFY payloads are capped
-- at 8000 bytes); listeners read the row for the rest.
CREATE FUNCTION bus_messages_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bus_messages', json_build_object(
        'id', NEW.id, 'decision_id', NEW.decision_id, 'kind', NEW.kind,
        'sender', NEW.sender, 'recipient', NEW.recipient)::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER bus_messages_notify
    AFTER INSERT ON bus_messages
    FOR EACH ROW EXECUTE FUNCTION bus_messages_notify();
