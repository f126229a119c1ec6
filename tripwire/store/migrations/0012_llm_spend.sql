-- Cluster-wide LLM budgets (tripwire.llm.spend): every metered provider call *reserves* its
-- maximum cost (estimated prompt tokens + max_tokens, at the route's price) before it is
-- sent and *settles* with the real usage afterwards, against one row per (UTC day, scope)
-- that every process of the cluster shares. Scopes: 'total' and 'route:<name>'.
-- The invariant the row lock keeps: spent + held <= limit at every reservation, whichever
-- process makes it. Limits come from each caller's configuration (NULL: none).
CREATE TABLE llm_budget (
    day           integer          NOT NULL,  -- UTC day number: ts_ns / 86400e9
    scope         text             NOT NULL,
    spent_tokens  bigint           NOT NULL DEFAULT 0,
    spent_usd     double precision NOT NULL DEFAULT 0,
    held_tokens   bigint           NOT NULL DEFAULT 0,
    held_usd      double precision NOT NULL DEFAULT 0,
    held_calls    integer          NOT NULL DEFAULT 0,
    refusals      bigint           NOT NULL DEFAULT 0,
    reclaimed     bigint           NOT NULL DEFAULT 0,
    PRIMARY KEY (day, scope)
);

-- One row per call in flight. A process that dies between reserve and settle leaves its row;
-- once expires_ns has passed, any process reclaims it (llm_reclaim) and charges the reserved
-- maximum as spent: nobody knows what the provider billed, and counting more than was spent
-- fails closed where counting less would let the cluster overspend.
CREATE TABLE llm_reservations (
    id          text             PRIMARY KEY,
    day         integer          NOT NULL,
    scopes      text[]           NOT NULL,  -- sorted: the order rows are locked in
    call_id     text             NOT NULL,
    role        text             NOT NULL,
    route       text             NOT NULL,
    model       text             NOT NULL,
    tokens_in   bigint           NOT NULL,
    tokens_out  bigint           NOT NULL,
    usd         double precision NOT NULL,
    owner       text             NOT NULL,  -- host:pid of the reserving process
    created_ns  bigint           NOT NULL,
    expires_ns  bigint           NOT NULL
);
CREATE INDEX llm_reservations_expiry ON llm_reservations (expires_ns);
CREATE INDEX llm_calls_route_ts ON llm_calls (route, ts_ns);

-- Reserve in one statement. p_scopes must be sorted (every caller locks the rows in the same
-- order, so two reservations never deadlock); p_max_tokens / p_max_usd are the limits of the
-- scopes at the same positions. Returns ok, and on refusal the scope and measure that refused
-- with what it had already used (spent + held) and its limit.
CREATE FUNCTION llm_reserve(
    p_id text, p_day integer, p_scopes text[], p_max_tokens bigint[],
    p_max_usd double precision[], p_call_id text, p_role text, p_route text, p_model text,
    p_tokens_in bigint, p_tokens_out bigint, p_usd double precision, p_owner text,
    p_now_ns bigint, p_expires_ns bigint)
RETURNS TABLE (ok boolean, scope text, measure text, used double precision,
               lim double precision)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i integer;
    r llm_budget%ROWTYPE;
    tokens bigint := p_tokens_in + p_tokens_out;
BEGIN
    INSERT INTO llm_budget (day, scope)
        SELECT p_day, s FROM unnest(p_scopes) AS s
        ON CONFLICT DO NOTHING;
    FOR i IN 1 .. coalesce(array_length(p_scopes, 1), 0) LOOP
        SELECT * INTO r FROM llm_budget b
            WHERE b.day = p_day AND b.scope = p_scopes[i] FOR UPDATE;
        IF p_max_tokens[i] IS NOT NULL
           AND r.spent_tokens + r.held_tokens + tokens > p_max_tokens[i] THEN
            UPDATE llm_budget b SET refusals = b.refusals + 1
                WHERE b.day = p_day AND b.scope = p_scopes[i];
            RETURN QUERY SELECT false, p_scopes[i], 'tokens'::text,
                (r.spent_tokens + r.held_tokens)::double precision,
                p_max_tokens[i]::double precision;
            RETURN;
        END IF;
        IF p_max_usd[i] IS NOT NULL AND r.spent_usd + r.held_usd + p_usd > p_max_usd[i] THEN
            UPDATE llm_budget b SET refusals = b.refusals + 1
                WHERE b.day = p_day AND b.scope = p_scopes[i];
            RETURN QUERY SELECT false, p_scopes[i], 'usd'::text, r.spent_usd + r.held_usd,
                p_max_usd[i];
            RETURN;
        END IF;
    END LOOP;
    UPDATE llm_budget b SET held_tokens = b.held_tokens + tokens,
                            held_usd = b.held_usd + p_usd,
                            held_calls = b.held_calls + 1
        WHERE b.day = p_day AND b.scope = ANY (p_scopes);
    INSERT INTO llm_reservations VALUES (p_id, p_day, p_scopes, p_call_id, p_role, p_route,
        p_model, p_tokens_in, p_tokens_out, p_usd, p_owner, p_now_ns, p_expires_ns);
    RETURN QUERY SELECT true, NULL::text, NULL::text, NULL::double precision,
        NULL::double precision;
END;
$$;

-- Replace a reservation by the real usage. False when it was not held any more (reclaimed
-- after expiring, or settled before): the reclaim already charged the reserved maximum,
-- which is at least what the call used, so nothing more is charged.
CREATE FUNCTION llm_settle(p_id text, p_tokens bigint, p_usd double precision)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    res llm_reservations%ROWTYPE;
    s text;
BEGIN
    DELETE FROM llm_reservations WHERE id = p_id RETURNING * INTO res;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    FOREACH s IN ARRAY res.scopes LOOP
        -- The last call out sets held back to exactly zero (no float residue).
        UPDATE llm_budget b SET
            held_tokens = b.held_tokens - (res.tokens_in + res.tokens_out),
            held_usd = CASE WHEN b.held_calls <= 1 THEN 0 ELSE b.held_usd - res.usd END,
            held_calls = b.held_calls - 1,
            spent_tokens = b.spent_tokens + p_tokens,
            spent_usd = b.spent_usd + p_usd
            WHERE b.day = res.day AND b.scope = s;
    END LOOP;
    RETURN true;
END;
$$;

-- Reclaim up to p_limit reservations that expired before p_now_ns, charging each its reserved
-- maximum; returns them (the caller writes a 'reclaimed' ledger row for each). Rows another
-- reclaimer or a late settle holds are skipped, and budget rows are updated in (day, scope)
-- order, the order llm_reserve locks them in.
CREATE FUNCTION llm_reclaim(p_now_ns bigint, p_limit integer)
RETURNS SETOF llm_reservations
LANGUAGE plpgsql AS $$
DECLARE
    gone llm_reservations[];
    g record;
BEGIN
    WITH d AS (
        DELETE FROM llm_reservations WHERE id IN (
            SELECT id FROM llm_reservations WHERE expires_ns < p_now_ns
            ORDER BY expires_ns LIMIT p_limit FOR UPDATE SKIP LOCKED)
        RETURNING *)
    SELECT array_agg(d) INTO gone FROM d;
    IF gone IS NULL THEN
        RETURN;
    END IF;
    FOR g IN
        SELECT x.day, s.scope, sum(x.tokens_in + x.tokens_out) AS tokens, sum(x.usd) AS usd,
               count(*) AS n
        FROM unnest(gone) AS x, unnest(x.scopes) AS s(scope)
        GROUP BY x.day, s.scope ORDER BY x.day, s.scope
    LOOP
        UPDATE llm_budget b SET
            held_tokens = b.held_tokens - g.tokens,
            held_usd = CASE WHEN b.held_calls <= g.n THEN 0 ELSE b.held_usd - g.usd END,
            held_calls = b.held_calls - g.n,
            spent_tokens = b.spent_tokens + g.tokens,
            spent_usd = b.spent_usd + g.usd,
            reclaimed = b.reclaimed + g.n
            WHERE b.day = g.day AND b.scope = g.scope;
    END LOOP;
    RETURN QUERY SELECT * FROM unnest(gone);
END;
$$;
