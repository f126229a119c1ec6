-- Live views without polling: every write an operator's view shows (an incident or its
-- status, a verdict, a decision or its outcome, an approval, an order or its status, a fill,
-- a run) is announced on one channel, ``tripwire_changes``, when its transaction commits.
-- The halt flag keeps its own channel (0007); bus messages theirs (0002).
--
-- A note names the row, never carries it: {"table", "id"} plus "decision_id" where the row
-- belongs to one (approvals, orders, fills). Listeners read the row by id (payloads are
-- capped at 8000 bytes; ids are short). Notes of one transaction with the same text are
-- delivered once, so a statement that touches a row twice announces it once.

CREATE FUNCTION tripwire_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    note jsonb;
BEGIN
    -- An UPDATE that leaves what a view shows as it was announces nothing (e.g. the
    -- incidents' UPDATE of a status to the same status).
    IF TG_OP = 'UPDATE' AND to_jsonb(OLD) = to_jsonb(NEW) THEN
        RETURN NEW;
    END IF;
    -- IF, not CASE: plpgsql plans every branch of an expression, and NEW has only its own
    -- table's columns; a statement is planned only when it runs.
    IF TG_TABLE_NAME = 'verdicts' THEN
        note := jsonb_build_object('id', NEW.id, 'incident_id', NEW.incident_id);
    ELSIF TG_TABLE_NAME = 'proposals' THEN
        note := jsonb_build_object('id', NEW.id, 'decision_id', NEW.id);
    ELSIF TG_TABLE_NAME = 'approvals' THEN
        note := jsonb_build_object('id', NEW.decision_id, 'decision_id', NEW.decision_id);
    ELSIF TG_TABLE_NAME = 'orders' THEN
        note := jsonb_build_object('id', NEW.client_order_id, 'decision_id', NEW.proposal_id);
    ELSIF TG_TABLE_NAME = 'fills' THEN
        note := jsonb_build_object(
            'id', NEW.id, 'order_id', NEW.client_order_id,
            'decision_id', (SELECT o.proposal_id FROM orders o
                            WHERE o.client_order_id = NEW.client_order_id));
    ELSE  -- incidents, runs
        note := jsonb_build_object('id', NEW.id);
    END IF;
    PERFORM pg_notify('tripwire_changes',
                      (note || jsonb_build_object('table', TG_TABLE_NAME))::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER incidents_notify AFTER INSERT OR UPDATE ON incidents
    FOR EACH ROW EXECUTE FUNCTION tripwire_notify_change();
CREATE TRIGGER verdicts_notify AFTER INSERT OR UPDATE ON verdicts
    FOR EACH ROW EXECUTE FUNCTION tripwire_notify_change();
CREATE TRIGGER proposals_notify AFTER INSERT OR UPDATE ON proposals
    FOR EACH ROW EXECUTE FUNCTION tripwire_notify_change();
CREATE TRIGGER approvals_notify AFTER INSERT OR UPDATE ON approvals
    FOR EACH ROW EXECUTE FUNCTION tripwire_notify_change();
CREATE TRIGGER orders_notify AFTER INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION tripwire_notify_change();
CREATE TRIGGER fills_notify AFTER INSERT ON fills
    FOR EACH ROW EXECUTE FUNCTION tripwire_notify_change();
CREATE TRIGGER runs_notify AFTER INSERT OR UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION tripwire_notify_change();
