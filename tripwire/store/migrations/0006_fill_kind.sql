-- What a fill was: the order itself, or its attached stop-loss / take-profit closing it
-- (tripwire.execution.base.FillKind). Older rows were all plain order fills.
ALTER TABLE fills ADD COLUMN kind text NOT NULL DEFAULT 'order';
