-- Sign-off: proposals have revisions (a shrink is re-signed), so a signer signs once per
-- proposal *hash*, not once per decision; TWO_PHASE approvals with their expiry.

ALTER TABLE proposals ADD COLUMN revision integer NOT NULL DEFAULT 0;
ALTER TABLE proposals ADD COLUMN incident_id text REFERENCES incidents (id);
ALTER TABLE proposals ADD COLUMN mode text NOT NULL DEFAULT 'DRY_RUN';
ALTER TABLE proposals ADD COLUMN updated_ns bigint NOT NULL DEFAULT 0;

ALTER TABLE signatures DROP CONSTRAINT signatures_proposal_id_signer_key;
ALTER TABLE signatures ADD CONSTRAINT signatures_one_per_hash
    UNIQUE (proposal_id, signer, proposal_hash);

-- An outcome is final: once set it never changes (a restart cannot re-decide a decision).
CREATE FUNCTION proposals_outcome_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.outcome IS NOT NULL AND NEW.outcome IS DISTINCT FROM OLD.outcome THEN
        RAISE EXCEPTION 'decision % already ended as %', OLD.id, OLD.outcome;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER proposals_outcome_final
    BEFORE UPDATE ON proposals
    FOR EACH ROW EXECUTE FUNCTION proposals_outcome_final();

CREATE TABLE approvals (
    decision_id   text PRIMARY KEY REFERENCES proposals (id),
    status        text   NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    proposal_hash text   NOT NULL,
    summary       text   NOT NULL DEFAULT '',
    requested_ns  bigint NOT NULL,
    expires_ns    bigint NOT NULL,
    decided_by    text   NOT NULL DEFAULT '',
    decided_ns    bigint NOT NULL DEFAULT 0,
    note          text   NOT NULL DEFAULT ''
);
CREATE INDEX approvals_pending ON approvals (status, expires_ns);
CREATE INDEX incidents_status ON incidents (status);
