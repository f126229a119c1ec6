"""The decision store in PostgreSQL: :class:`PgDecisionStore` on an asyncpg pool.

Same contract as :class:`tripwire.store.decisions.MemoryDecisionStore` (the conformance suite
``tests/store/test_decision_store.py`` runs both), with the database enforcing the money rules
too: natural-key primary keys make inserts idempotent (``ON CONFLICT DO NOTHING``), foreign
keys refuse rows naming unknown parents, triggers keep outcomes final and the bus append-only.
Whatever the database refuses comes back as :class:`StoreError` naming the id.

The schema is the one in ``migrations/`` (apply it with ``tripwire db migrate``); this module
never creates tables. Every new bus message is announced with ``NOTIFY bus_messages``;
:meth:`PgDecisionStore.follow` turns those notes into an async iterator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg

from tripwire.decisions.signatures import Signature
from tripwire.execution.base import Fill, Order, Position
from tripwire.risk.gates import HaltStatus
from tripwire.store.decisions import (
    APPROVAL_STATUSES,
    CHANGES,
    HALT,
    UNFINISHED_INCIDENT,
    Approval,
    DecisionStore,
    IngestBatch,
    StoreError,
    _decided,
    _require_ack,
    check_final_status,
    check_order,
    check_outcome,
    check_page,
    check_range,
    check_run_args,
    fill_row,
    order_row,
    run_window,
)

CHANNEL = "bus_messages"  # the channel the bus_messages_notify trigger announces on
HALT_CHANNEL = "tripwire_halt"  # the channel the app_state_notify_halt trigger announces on
CHANGES_CHANNEL = "tripwire_changes"  # the channel of migration 0013's row-change triggers
FEED_BOUND = 1000  # notes a slow follower may fall behind by before new ones are dropped

# Ids sort bytewise (as Python compares str) whatever the server's default collation is, so
# both backends break ts_ns ties the same way.
_C = 'COLLATE "C"'

_INCIDENT = "SELECT id, symbol, ts_ns, status, payload, recorded_ns FROM incidents"
_VERDICT = ("SELECT id, incident_id, symbol, ts_ns, class, confidence, payload, recorded_ns "
            "FROM verdicts")
_PROPOSAL = ("SELECT id, incident_id, verdict_id, symbol, ts_ns, action, proposal_hash, "
             "revision, mode, outcome, reason, updated_ns, payload, recorded_ns FROM proposals")
_RUN = ("SELECT id, label, started_ns, ended_ns, period_start_ns, period_end_ns, payload "
        "FROM runs")
# The database's clock in ns: the same expression as the recorded_ns defaults (0010).
_NOW_NS = "(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint"
_APPROVAL = ("SELECT decision_id, status, proposal_hash, summary, requested_ns, expires_ns, "
             "decided_by, decided_ns, note FROM approvals")
_ORDER_COLUMNS = ("client_order_id", "proposal_id", "backend", "exchange_order_id", "symbol",
                  "side", "order_type", "qty", "price", "status", "ts_ns", "updated_ns",
                  "payload")
_OUTCOME_COLUMNS = ("incident_id", "symbol", "metric", "z_bucket", "has_news", "ts_ns",
                    "realised_ns", "horizon_s", "classification", "action", "move_pct", "pnl",
                    "payload")
_FILL_COLUMNS = ("id", "client_order_id", "symbol", "side", "qty", "price", "fee", "ts_ns",
                 "kind")


async def _init_connection(conn: asyncpg.Connection) -> None:
    """jsonb <-> dict on every pooled connection, so payloads round-trip as Python objects."""
    for name in ("jsonb", "json"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads,
                                  schema="pg_catalog")


def _inserted(status: str) -> bool:
    """Whether an ``INSERT ... ON CONFLICT DO NOTHING`` wrote its row ("INSERT 0 1")."""
    return status.split()[-1] != "0"


def _insert_sql(table: str, columns: tuple[str, ...], conflict: str) -> str:
    params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({params}) "
            f"ON CONFLICT {conflict} DO NOTHING")


@contextlib.contextmanager
def _refused(subject: str, unknown: str) -> Iterator[None]:
    """Turn the database's refusals of ``subject`` (e.g. "order 'tw-1'") into StoreError;
    ``unknown`` is the message for a missing parent row.

    Nothing was written when these raise: the statement failed as a whole.
    """
    try:
        yield
    except asyncpg.ForeignKeyViolationError as exc:
        raise StoreError(unknown) from exc
    except (asyncpg.CheckViolationError, asyncpg.RaiseError) as exc:
        raise StoreError(f"{subject} refused: {exc}") from exc


class _Where:
    """A WHERE clause built from conditions whose values travel as $n parameters, never as
    text in the SQL (the SQL fragments are this module's constants)."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, template: str, value: Any) -> _Where:
        """``template`` with ``{}`` for the value's parameter; skipped when value is None."""
        if value is not None:
            self.clauses.append(template.format(self.param(value)))
        return self

    def time(self, since_ns: int | None, until_ns: int | None) -> _Where:
        return self.add("ts_ns >= {}", since_ns).add("ts_ns < {}", until_ns)

    def arrival(self, window: tuple[int, int] | None) -> _Where:
        """Rows recorded in a run's span [start, end)."""
        if window is None:
            return self
        return self.add("recorded_ns >= {}", window[0]).add("recorded_ns < {}", window[1])

    def sql(self) -> str:
        return f" WHERE {' AND '.join(self.clauses)}" if self.clauses else ""

    def page(self, limit: int, offset: int, by: str = "market") -> str:
        """The WHERE clause, newest first by (ts_ns, id) or, ``by="arrival"``, by
        (recorded_ns, ts_ns, id), then LIMIT and OFFSET."""
        first = "recorded_ns DESC, " if by == "arrival" else ""
        return (f"{self.sql()} ORDER BY {first}ts_ns DESC, id {_C} DESC "
                f"LIMIT {self.param(limit)} OFFSET {self.param(offset)}")


def _approval(row: asyncpg.Record) -> Approval:
    return Approval(**dict(row))


class PgDecisionStore(DecisionStore):
    """The decision store on an asyncpg pool (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # The stop() of every listener still running: close() stops them first, as the
        # pool's close waits for every connection to come back.
        self._listeners: set[Callable[[], Awaitable[None]]] = set()

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 8
                      ) -> PgDecisionStore:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                         init=_init_connection)
        return cls(pool)

    async def close(self) -> None:
        for stop in list(self._listeners):
            with contextlib.suppress(Exception):
                await stop()
        await self._pool.close()

    async def _exists(self, table: str, key: str, value: Any) -> bool:
        return await self._pool.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {key} = $1)", value)

    async def _insert_child(self, sql: str, args: tuple[Any, ...], *, subject: str,
                            parent: tuple[str, str, Any], unknown: str) -> bool:
        """Insert idempotently; StoreError(``unknown``) when the parent row does not exist.

        On a conflict the row is not written, so its foreign key is not checked either: the
        parent is then looked up, as the memory store always does.
        """
        with _refused(subject, unknown):
            status = await self._pool.execute(sql, *args)
        if _inserted(status):
            return True
        if not await self._exists(*parent):
            raise StoreError(unknown)
        return False

    # -- incidents and verdicts ------------------------------------------------------------

    async def record_incident(self, incident_id, symbol, ts_ns, status, payload):
        status_line = await self._pool.execute(
            _insert_sql("incidents", ("id", "symbol", "ts_ns", "status", "payload"), "(id)"),
            incident_id, symbol, ts_ns, status, dict(payload))
        return _inserted(status_line)

    async def set_incident_status(self, incident_id, status):
        done = await self._pool.execute(
            "UPDATE incidents SET status = $2 WHERE id = $1", incident_id, status)
        if done == "UPDATE 0":
            raise StoreError(f"no incident {incident_id!r}")

    async def claim_trip(self, symbol, ts_ns, metric, incident_id, now_ns):
        # The primary key decides between concurrent claims; the loser reads the winner.
        async with self._pool.acquire() as conn:
            claimed = await conn.fetchval(
                "INSERT INTO incident_trips (symbol, ts_ns, metric, incident_id, claimed_ns) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING incident_id",
                symbol, ts_ns, metric, incident_id, now_ns)
            if claimed is not None:
                return claimed, True
            owner = await conn.fetchval(
                "SELECT incident_id FROM incident_trips "
                "WHERE symbol = $1 AND ts_ns = $2 AND metric = $3", symbol, ts_ns, metric)
        if owner is None:  # released between the two statements: claim again
            return await self.claim_trip(symbol, ts_ns, metric, incident_id, now_ns)
        return owner, False

    async def release_trip(self, symbol, ts_ns, metric, incident_id):
        done = await self._pool.execute(
            "DELETE FROM incident_trips WHERE symbol = $1 AND ts_ns = $2 AND metric = $3 "
            "AND incident_id = $4", symbol, ts_ns, metric, incident_id)
        return done != "DELETE 0"

    async def unfinished_incidents(self, limit=1_000):
        check_page(limit)
        rows = await self._pool.fetch(
            f"{_INCIDENT} WHERE status = ANY($1::text[]) ORDER BY ts_ns, id {_C} LIMIT $2",
            list(UNFINISHED_INCIDENT), limit)
        return [dict(r) for r in rows]

    async def close_incident(self, incident_id, status):
        check_final_status(status)
        # One statement: a triage that finishes concurrently either wins (then this changes
        # nothing) or loses to this final status, never half of each.
        closed = await self._pool.fetchval(
            "WITH up AS (UPDATE incidents SET status = $2 WHERE id = $1 "
            "AND status = ANY($3::text[]) RETURNING 1) "
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM up) THEN 1 "
            "WHEN EXISTS (SELECT 1 FROM incidents WHERE id = $1) THEN 0 END",
            incident_id, status, list(UNFINISHED_INCIDENT))
        if closed is None:
            raise StoreError(f"no incident {incident_id!r}")
        return closed == 1

    async def incident(self, incident_id):
        row = await self._pool.fetchrow(f"{_INCIDENT} WHERE id = $1", incident_id)
        return None if row is None else dict(row)

    async def incidents(self, limit=50, *, offset=0, since_ns=None, until_ns=None, symbol=None,
                        status=None, run=None, by="market"):
        check_page(limit, offset, since_ns, until_ns)
        check_order(by)
        w = _Where().time(since_ns, until_ns).add("symbol = {}", symbol)
        w.add("status = {}", status).arrival(await self._window(run))
        return await self._rows(_INCIDENT, w, limit, offset, by)

    async def _rows(self, select: str, where: _Where, limit: int, offset: int,
                    by: str = "market") -> list[dict[str, Any]]:
        rows = await self._pool.fetch(select + where.page(limit, offset, by), *where.args)
        return [dict(r) for r in rows]

    async def _window(self, run: str | None) -> tuple[int, int] | None:
        if run is None:
            return None
        row = await self.run(run)
        if row is None:
            raise StoreError(f"no run {run!r}")
        return run_window(row)

    async def record_verdict(self, verdict_id, incident_id, symbol, ts_ns, classification,
                             confidence, payload):
        if not 0.0 <= confidence <= 1.0:
            raise StoreError(f"verdict confidence must be in [0, 1], got {confidence!r}")
        sql = _insert_sql("verdicts", ("id", "incident_id", "symbol", "ts_ns", "class",
                                       "confidence", "payload"), "(id)")
        return await self._insert_child(
            sql, (verdict_id, incident_id, symbol, ts_ns, classification, confidence,
                  dict(payload)), subject=f"verdict {verdict_id!r}",
            parent=("incidents", "id", incident_id),
            unknown=f"verdict {verdict_id!r} names unknown incident {incident_id!r}")

    async def verdict(self, verdict_id):
        row = await self._pool.fetchrow(f"{_VERDICT} WHERE id = $1", verdict_id)
        return None if row is None else dict(row)

    async def recent_verdicts(self, symbol, limit=5):
        rows = await self._pool.fetch(
            f"{_VERDICT} WHERE symbol = $1 ORDER BY ts_ns DESC, id {_C} DESC LIMIT $2",
            symbol, limit)
        return [dict(r) for r in rows]

    async def verdicts(self, limit=50, *, offset=0, since_ns=None, until_ns=None, symbol=None,
                       classification=None, run=None, by="market"):
        check_page(limit, offset, since_ns, until_ns)
        check_order(by)
        w = _Where().time(since_ns, until_ns).add("symbol = {}", symbol)
        w.add("class = {}", classification).arrival(await self._window(run))
        return await self._rows(_VERDICT, w, limit, offset, by)

    async def verdicts_of(self, incident_id):
        rows = await self._pool.fetch(
            f"{_VERDICT} WHERE incident_id = $1 ORDER BY ts_ns, id {_C}", incident_id)
        return [dict(r) for r in rows]

    # -- memory ------------------------------------------------------------------------------

    async def record_outcome(self, incident_id, *, symbol, metric, z_bucket, ts_ns,
                             realised_ns, horizon_s, move_pct, classification="",
                             action="HOLD", pnl=None, has_news=False, payload=None):
        check_outcome(incident_id, ts_ns, realised_ns, horizon_s, move_pct, action, pnl)
        sql = _insert_sql("incident_outcomes", _OUTCOME_COLUMNS, "(incident_id)")
        args = (incident_id, symbol, metric, int(z_bucket), bool(has_news), ts_ns, realised_ns,
                float(horizon_s), classification, action, float(move_pct),
                None if pnl is None else float(pnl), dict(payload or {}))
        return await self._insert_child(
            sql, args, subject=f"outcome of {incident_id!r}",
            parent=("incidents", "id", incident_id),
            unknown=f"outcome names unknown incident {incident_id!r}")

    async def similar_outcomes(self, symbol, metric, z_bucket, *, as_of_ns, has_news=False,
                               limit=5):
        check_page(limit)
        rows = await self._pool.fetch(
            f"SELECT {', '.join(_OUTCOME_COLUMNS)} FROM incident_outcomes "
            "WHERE metric = $2 AND z_bucket BETWEEN $3 - 1 AND $3 + 1 AND realised_ns < $4 "
            "ORDER BY (symbol <> $1), abs(z_bucket - $3), (has_news <> $5), "
            f"realised_ns DESC, incident_id {_C} LIMIT $6",
            symbol, metric, int(z_bucket), as_of_ns, bool(has_news), limit)
        return [dict(r) for r in rows]

    async def history(self, symbol, *, before_ns, limit=5):
        check_page(limit)
        verdicts = await self._pool.fetch(
            "SELECT id, ts_ns, class, confidence FROM verdicts WHERE symbol = $1 "
            f"AND ts_ns < $2 ORDER BY ts_ns DESC, id {_C} DESC LIMIT $3",
            symbol, before_ns, limit)
        decisions = await self._pool.fetch(
            "SELECT id, ts_ns, action, "
            "CASE WHEN outcome IS NOT NULL AND updated_ns < $2 THEN outcome END AS outcome, "
            "CASE WHEN outcome IS NOT NULL AND updated_ns < $2 THEN reason ELSE '' END "
            "AS reason FROM proposals WHERE symbol = $1 AND ts_ns < $2 "
            f"ORDER BY ts_ns DESC, id {_C} DESC LIMIT $3", symbol, before_ns, limit)
        return {"verdicts": [dict(r) for r in verdicts],
                "decisions": [dict(r) for r in decisions]}

    # -- proposals, outcomes, signatures, approvals ------------------------------------------

    async def record_proposal(self, decision_id, *, incident_id, verdict_id, symbol, ts_ns,
                              action, proposal_hash, revision, mode, payload):
        if action not in ("BUY", "SELL", "HOLD"):
            raise StoreError(f"proposal action must be BUY, SELL or HOLD, got {action!r}")
        # The upsert only touches an undecided row: a decided one is left as it is and reported.
        sql = """
            INSERT INTO proposals (id, incident_id, verdict_id, symbol, ts_ns, action,
                                   proposal_hash, revision, mode, outcome, reason, updated_ns,
                                   payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, '', $5, $10)
            ON CONFLICT (id) DO UPDATE SET
                incident_id = EXCLUDED.incident_id, verdict_id = EXCLUDED.verdict_id,
                symbol = EXCLUDED.symbol, ts_ns = EXCLUDED.ts_ns, action = EXCLUDED.action,
                proposal_hash = EXCLUDED.proposal_hash, revision = EXCLUDED.revision,
                mode = EXCLUDED.mode, reason = '', updated_ns = EXCLUDED.updated_ns,
                payload = EXCLUDED.payload
            WHERE proposals.outcome IS NULL"""
        try:
            status = await self._pool.execute(
                sql, decision_id, incident_id, verdict_id, symbol, ts_ns, action, proposal_hash,
                revision, mode, dict(payload))
        except asyncpg.ForeignKeyViolationError as exc:
            key, value = (("verdict", verdict_id) if "verdict" in (exc.constraint_name or "")
                          else ("incident", incident_id))
            raise StoreError(f"proposal {decision_id!r} names unknown {key} {value!r}") from exc
        except (asyncpg.CheckViolationError, asyncpg.RaiseError) as exc:
            raise StoreError(f"proposal {decision_id!r} refused: {exc}") from exc
        if not _inserted(status):
            outcome = await self._pool.fetchval(
                "SELECT outcome FROM proposals WHERE id = $1", decision_id)
            raise StoreError(f"decision {decision_id} already ended as {outcome}")

    async def proposal(self, decision_id):
        row = await self._pool.fetchrow(f"{_PROPOSAL} WHERE id = $1", decision_id)
        return None if row is None else dict(row)

    async def set_outcome(self, decision_id, outcome, reason, ts_ns, payload=None):
        # Under concurrency the loser waits on the row lock, then re-checks outcome IS NULL
        # and changes nothing: exactly one caller sets the outcome.
        done = await self._pool.execute(
            "UPDATE proposals SET outcome = $2, reason = $3, updated_ns = $4, "
            "payload = payload || $5::jsonb WHERE id = $1 AND outcome IS NULL",
            decision_id, outcome, reason, ts_ns, dict(payload or {}))
        if done != "UPDATE 0":
            return True
        if not await self._exists("proposals", "id", decision_id):
            raise StoreError(f"no decision {decision_id!r}")
        return False

    async def decisions(self, limit=50, *, undecided_only=False, offset=0, since_ns=None,
                        until_ns=None, symbol=None, outcome=None, run=None, by="market"):
        check_page(limit, offset, since_ns, until_ns)
        check_order(by)
        w = _Where().time(since_ns, until_ns).add("symbol = {}", symbol)
        w.add("outcome = {}", outcome).arrival(await self._window(run))
        if undecided_only:
            w.clauses.append("outcome IS NULL")
        return await self._rows(_PROPOSAL, w, limit, offset, by)

    async def add_signature(self, decision_id, signature):
        s = signature
        sql = _insert_sql("signatures", ("proposal_id", "signer", "proposal_hash", "verdict",
                                         "reason", "ts_ns"),
                          "(proposal_id, signer, proposal_hash)")
        return await self._insert_child(
            sql, (decision_id, s.signer, s.proposal_hash, s.verdict, s.reason, s.ts_ns),
            subject=f"signature of {s.signer!r} on {decision_id!r}",
            parent=("proposals", "id", decision_id),
            unknown=f"signature for unknown decision {decision_id!r}")

    async def signatures(self, decision_id):
        rows = await self._pool.fetch(
            "SELECT signer, proposal_hash, verdict, reason, ts_ns FROM signatures "
            "WHERE proposal_id = $1 ORDER BY id", decision_id)
        return [Signature(**dict(r)) for r in rows]

    async def request_approval(self, approval):
        a = approval
        if a.status not in APPROVAL_STATUSES:
            raise StoreError(f"approval status must be one of {APPROVAL_STATUSES}, "
                             f"got {a.status!r}")
        sql = _insert_sql("approvals", ("decision_id", "status", "proposal_hash", "summary",
                                        "requested_ns", "expires_ns", "decided_by",
                                        "decided_ns", "note"), "(decision_id)")
        await self._insert_child(
            sql, (a.decision_id, a.status, a.proposal_hash, a.summary, a.requested_ns,
                  a.expires_ns, a.decided_by, a.decided_ns, a.note),
            subject=f"approval of {a.decision_id!r}", parent=("proposals", "id", a.decision_id),
            unknown=f"approval for unknown decision {a.decision_id!r}")
        return await self.approval(a.decision_id)

    async def decide_approval(self, decision_id, *, approve, by, note, now_ns):
        async with self._pool.acquire() as conn, conn.transaction():
            # FOR UPDATE: two operators deciding at once are serialised; the second sees the
            # first answer and returns it.
            row = await conn.fetchrow(f"{_APPROVAL} WHERE decision_id = $1 FOR UPDATE",
                                      decision_id)
            if row is None:
                raise StoreError(f"no approval is pending for decision {decision_id!r}")
            current = _approval(row)
            if current.status != "pending":
                return current
            decided = _decided(current, approve, by, note, now_ns)
            await conn.execute(
                "UPDATE approvals SET status = $2, decided_by = $3, decided_ns = $4, note = $5 "
                "WHERE decision_id = $1", decision_id, decided.status, decided.decided_by,
                decided.decided_ns, decided.note)
            return decided

    async def approval(self, decision_id):
        row = await self._pool.fetchrow(f"{_APPROVAL} WHERE decision_id = $1", decision_id)
        return None if row is None else _approval(row)

    async def pending_approvals(self):
        rows = await self._pool.fetch(
            f"{_APPROVAL} WHERE status = 'pending' ORDER BY requested_ns, decision_id {_C}")
        return [_approval(r) for r in rows]

    # -- orders, fills, positions --------------------------------------------------------------

    async def record_order(self, decision_id, backend, order: Order):
        row = order_row(decision_id, backend, order)
        sql = _insert_sql("orders", _ORDER_COLUMNS, "(client_order_id)")
        return await self._insert_child(
            sql, tuple(row[c] for c in _ORDER_COLUMNS), subject=f"order {order.id!r}",
            parent=("proposals", "id", decision_id),
            unknown=f"order for unknown decision {decision_id!r}")

    async def update_order(self, backend, order: Order):
        new = order_row("", backend, order)
        done = await self._pool.execute(
            "UPDATE orders SET status = $2, updated_ns = $3, payload = $4 "
            "WHERE client_order_id = $1", order.id, new["status"], new["updated_ns"],
            new["payload"])
        if done == "UPDATE 0":
            raise StoreError(f"no order {order.id!r}")

    async def orders(self, decision_id):
        rows = await self._pool.fetch(
            f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders WHERE proposal_id = $1 "
            f"ORDER BY ts_ns, client_order_id {_C}", decision_id)
        return [dict(r) for r in rows]

    async def record_fill(self, fill: Fill):
        row = fill_row(fill)
        sql = _insert_sql("fills", _FILL_COLUMNS, "(id)")
        return await self._insert_child(
            sql, tuple(row[c] for c in _FILL_COLUMNS), subject=f"fill {fill.fill_id!r}",
            parent=("orders", "client_order_id", fill.order_id),
            unknown=f"fill {fill.fill_id!r} for unknown order {fill.order_id!r}")

    async def fills(self, client_order_id):
        rows = await self._pool.fetch(
            f"SELECT {', '.join(_FILL_COLUMNS)} FROM fills WHERE client_order_id = $1 "
            f"ORDER BY ts_ns, id {_C}", client_order_id)
        return [dict(r) for r in rows]

    async def save_position(self, backend, position: Position, ts_ns):
        p = position
        avg = p.avg_price if p.avg_price == p.avg_price else 0.0  # nan (flat) is stored as 0
        await self._pool.execute(
            "INSERT INTO positions (backend, symbol, qty, avg_price, realised_pnl, updated_ns) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (backend, symbol) DO UPDATE SET "
            "qty = EXCLUDED.qty, avg_price = EXCLUDED.avg_price, "
            "realised_pnl = EXCLUDED.realised_pnl, updated_ns = EXCLUDED.updated_ns",
            backend, p.symbol, p.qty, avg, p.realised_pnl, ts_ns)

    async def positions(self, backend):
        rows = await self._pool.fetch(
            "SELECT symbol, qty, avg_price, realised_pnl, updated_ns FROM positions "
            "WHERE backend = $1", backend)
        return {r["symbol"]: dict(r) for r in rows}

    # -- the bus, the halt flag, heartbeats, dead letters -----------------------------------

    async def append_message(self, decision_id, sender, recipient, kind, payload, ts_ns):
        return await self._pool.fetchval(
            "INSERT INTO bus_messages (ts_ns, decision_id, sender, recipient, kind, payload) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            ts_ns, decision_id, sender, recipient, kind, dict(payload))

    async def messages(self, decision_id):
        # IS NOT DISTINCT FROM: messages(None) lists the messages without a decision, as the
        # memory store does.
        rows = await self._pool.fetch(
            "SELECT id, ts_ns, decision_id, sender, recipient, kind, payload FROM bus_messages "
            "WHERE decision_id IS NOT DISTINCT FROM $1 ORDER BY id", decision_id)
        return [dict(r) for r in rows]

    async def read_halt(self):
        row = await self._pool.fetchrow("SELECT halted, reason, set_by FROM app_state")
        if row is None:  # fail closed: a missing flag is an error, never "not halted"
            raise StoreError("the halt flag row is missing from app_state (run the migrations)")
        # After a resume the reason column keeps the acknowledgement; the flag has no reason.
        reason = row["reason"] if row["halted"] else ""
        return HaltStatus(row["halted"], reason, row["set_by"])

    async def _write_halt(self, halted: bool, reason: str, by: str, ts_ns: int) -> None:
        await self._pool.execute(
            "INSERT INTO app_state (id, halted, reason, set_by, set_ns) "
            "VALUES (true, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET "
            "halted = EXCLUDED.halted, reason = EXCLUDED.reason, set_by = EXCLUDED.set_by, "
            "set_ns = EXCLUDED.set_ns", halted, reason, by, ts_ns)

    async def set_halt(self, reason, by, ts_ns):
        await self._write_halt(True, reason, by, ts_ns)

    async def resume(self, by, acknowledgement, ts_ns):
        _require_ack(by, acknowledgement)
        await self._write_halt(False, f"resumed: {acknowledgement}", by, ts_ns)

    async def heartbeat(self, component, ts_ns, detail=""):
        await self._pool.execute(
            "INSERT INTO heartbeats (component, ts_ns, detail) VALUES ($1, $2, $3) "
            "ON CONFLICT (component) DO UPDATE SET ts_ns = EXCLUDED.ts_ns, "
            "detail = EXCLUDED.detail", component, ts_ns, detail)

    async def heartbeats(self):
        rows = await self._pool.fetch("SELECT component, ts_ns, detail FROM heartbeats")
        return {r["component"]: (r["ts_ns"], r["detail"]) for r in rows}

    async def dead_letter(self, ts_ns, source, reason, symbol, detail="", raw=""):
        await self._pool.execute(
            "INSERT INTO dead_letters (ts_ns, source, reason, symbol, detail, raw) "
            "VALUES ($1, $2, $3, $4, $5, $6)", ts_ns, source, reason, symbol, detail, raw)

    async def dead_letters(self, limit=100, *, offset=0, since_ns=None):
        check_page(limit, offset, since_ns)
        w = _Where().add("ts_ns >= {}", since_ns)
        rows = await self._pool.fetch(
            "SELECT id, ts_ns, source, reason, symbol, detail, raw FROM dead_letters"
            f"{w.sql()} ORDER BY id DESC LIMIT {w.param(limit)} OFFSET {w.param(offset)}",
            *w.args)
        return [dict(r) for r in rows]

    async def counts(self, *, since_ns=None, until_ns=None, run=None):
        check_range(since_ns, until_ns)
        w = _Where().time(since_ns, until_ns).arrival(await self._window(run))
        where = w.sql()

        async def tally(conn: asyncpg.Connection, key: str, table: str) -> dict[str, int]:
            rows = await conn.fetch(
                f"SELECT {key} AS k, count(*) AS n FROM {table}{where} GROUP BY 1", *w.args)
            return {r["k"]: r["n"] for r in rows}

        # One snapshot: the counts agree with each other even while rows are being written.
        async with self._pool.acquire() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True):
            return {
                "incidents": await tally(conn, "status", "incidents"),
                "verdicts": await tally(conn, "class", "verdicts"),
                "decisions": await tally(conn, "COALESCE(outcome, 'undecided')", "proposals"),
                "orders": await tally(conn, "status", "orders"),
                "fills": await conn.fetchval(f"SELECT count(*) FROM fills{where}", *w.args),
            }

    # -- runs -----------------------------------------------------------------------------

    async def start_run(self, run_id, label="", *, started_ns=None, period_start_ns=None,
                        period_end_ns=None, payload=None):
        check_run_args(run_id, label, started_ns=started_ns, period_start_ns=period_start_ns,
                       period_end_ns=period_end_ns)
        # started_ns NULL: the database's clock, the one that stamps recorded_ns.
        with _refused(f"run {run_id!r}", f"run {run_id!r} refused"):
            await self._pool.execute(
                "INSERT INTO runs (id, label, started_ns, period_start_ns, period_end_ns, "
                f"payload) VALUES ($1, $2, COALESCE($3, {_NOW_NS}), $4, $5, $6) "
                "ON CONFLICT (id) DO NOTHING",
                run_id, label, started_ns, period_start_ns, period_end_ns, dict(payload or {}))
        return await self.run(run_id)

    async def end_run(self, run_id, *, ended_ns=None, period_start_ns=None,
                      period_end_ns=None):
        check_run_args(run_id, ended_ns=ended_ns, period_start_ns=period_start_ns,
                       period_end_ns=period_end_ns)
        with _refused(f"run {run_id!r}", f"no run {run_id!r}"):
            done = await self._pool.execute(
                f"UPDATE runs SET ended_ns = COALESCE(ended_ns, $2, {_NOW_NS}), "
                "period_start_ns = COALESCE($3, period_start_ns), "
                "period_end_ns = COALESCE($4, period_end_ns) WHERE id = $1",
                run_id, ended_ns, period_start_ns, period_end_ns)
        if done == "UPDATE 0":
            raise StoreError(f"no run {run_id!r}")
        return await self.run(run_id)

    async def run(self, run_id):
        row = await self._pool.fetchrow(f"{_RUN} WHERE id = $1", run_id)
        return None if row is None else dict(row)

    async def runs(self, limit=50, *, offset=0):
        check_page(limit, offset)
        rows = await self._pool.fetch(
            f"{_RUN} ORDER BY started_ns DESC, id {_C} DESC LIMIT $1 OFFSET $2", limit, offset)
        return [dict(r) for r in rows]

    # -- following the bus -----------------------------------------------------------------

    async def listen_messages(self, callback: Callable[[dict[str, Any]], None], *,
                              decision_id: str | None = None
                              ) -> Callable[[], Awaitable[None]]:
        """Call ``callback(note)`` for every new bus message (of ``decision_id`` if given).

        A note is the trigger's summary: ``id``, ``decision_id``, ``kind``, ``sender``,
        ``recipient`` (read :meth:`messages` for the payload). Listening has begun when this
        returns; the result is the coroutine function that stops it. It holds one pooled
        connection until stopped.
        """
        def on_note(note: dict[str, Any]) -> None:
            if decision_id is None or note.get("decision_id") == decision_id:
                callback(note)

        return await self._listen(CHANNEL, on_note)

    async def listen_halt(self, callback: Callable[[dict[str, Any]], None]
                          ) -> Callable[[], Awaitable[None]]:
        """Call ``callback(note)`` on every write of the halt flag (set or resume), with
        ``note`` = ``{"halted", "reason", "set_by", "set_ns"}``: the reason as
        :meth:`read_halt` gives it ("" while not halted), cut to 1000 characters.

        As :meth:`listen_messages`: listening has begun when this returns; the result stops
        it. A note is a hint, not the truth: after a lost connection, read :meth:`read_halt`.
        """
        return await self._listen(HALT_CHANNEL, callback)

    async def _listen(self, channel: str, callback: Callable[[dict[str, Any]], None]
                      ) -> Callable[[], Awaitable[None]]:
        """LISTEN on ``channel`` on a pooled connection held until the returned stop()."""
        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            callback(json.loads(payload))

        conn = await self._pool.acquire()
        try:
            await conn.add_listener(channel, on_notify)
        except BaseException:
            await self._pool.release(conn)
            raise

        stopped = False

        async def stop() -> None:  # a second call does nothing (the connection went back)
            nonlocal stopped
            if stopped:
                return
            stopped = True
            try:
                await conn.remove_listener(channel, on_notify)
            finally:
                await self._pool.release(conn)

        return stop

    async def listen_changes(self, callback, *, on_lost=None):
        """See :meth:`DecisionStore.listen_changes`: LISTEN on ``tripwire_changes`` and
        ``tripwire_halt`` on ONE pooled connection held until stopped (a replica runs one
        for all its live views). ``on_lost`` is called when the server ends the connection
        (e.g. ``pg_terminate_backend``, a restart): asyncpg's termination listener."""
        names = {CHANGES_CHANNEL: CHANGES, HALT_CHANNEL: HALT}

        def on_notify(_conn: object, _pid: int, channel: str, payload: str) -> None:
            callback(names[channel], json.loads(payload))

        def on_terminated(_conn: object) -> None:
            if on_lost is not None and not stopped:
                on_lost()

        stopped = False
        conn = await self._pool.acquire()
        try:
            for channel in names:
                await conn.add_listener(channel, on_notify)
            conn.add_termination_listener(on_terminated)
        except BaseException:
            await self._pool.release(conn)
            raise

        async def stop() -> None:  # a second call does nothing (the connection went back)
            nonlocal stopped
            if stopped:
                return
            stopped = True
            self._listeners.discard(stop)
            try:
                conn.remove_termination_listener(on_terminated)
                if not conn.is_closed():
                    for channel in names:
                        await conn.remove_listener(channel, on_notify)
            finally:
                await self._pool.release(conn)

        self._listeners.add(stop)
        return stop

    @contextlib.asynccontextmanager
    async def follow(self, decision_id: str | None = None) -> AsyncIterator[MessageFeed]:
        """``async with store.follow(d) as feed: async for note in feed: ...``.

        Listening starts on entering the block, so a message appended inside it is seen.
        """
        feed = MessageFeed()
        stop = await self.listen_messages(feed.put, decision_id=decision_id)
        try:
            yield feed
        finally:
            await stop()

    # -- idempotent ingest (batch ids) ------------------------------------------------------

    async def claim_ingest_batch(self, batch_id, digest, owner, ts_ns):
        status = await self._pool.execute(
            "INSERT INTO ingest_batches (batch_id, digest, owner, claimed_ns) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (batch_id) DO NOTHING",
            batch_id, digest, owner, ts_ns)
        if _inserted(status):
            return None
        return await self.ingest_batch(batch_id)

    async def finish_ingest_batch(self, batch_id, result, ts_ns):
        status = await self._pool.execute(
            "UPDATE ingest_batches SET result = $2, done_ns = $3 WHERE batch_id = $1",
            batch_id, dict(result), ts_ns)
        if status.split()[-1] == "0":
            raise StoreError(f"batch {batch_id!r} was never claimed")

    async def ingest_batch(self, batch_id):
        row = await self._pool.fetchrow(
            "SELECT batch_id, digest, owner, claimed_ns, result, done_ns FROM ingest_batches "
            "WHERE batch_id = $1", batch_id)
        if row is None:
            return None
        return IngestBatch(row["batch_id"], row["digest"], row["owner"], row["claimed_ns"],
                           row["result"], row["done_ns"] or 0)

    async def prune_ingest_batches(self, before_ns):
        status = await self._pool.execute(
            "DELETE FROM ingest_batches WHERE claimed_ns < $1", before_ns)
        return int(status.split()[-1])

    async def llm_spend(self, since_ns=None, *, by=("route",)):
        """The LLM ledger (``llm_calls``) grouped by ``by`` and today's shared budget rows:
        :func:`tripwire.llm.spend.spend_report` (what ``/v1/llm/costs`` answers)."""
        from tripwire.llm.spend import spend_report

        return await spend_report(self._pool, since_ns, by=by)

    def llm_ledger(self):
        """The cluster's LLM ledger (``llm_calls``) as a
        :class:`~tripwire.llm.ledger.LedgerSink` (what the report summarises)."""
        from tripwire.llm.spend import PgLedger

        return PgLedger(self._pool)


class MessageFeed:
    """An async iterator over bus notes, bounded: past :data:`FEED_BOUND` unread notes new
    ones are dropped and counted in ``dropped`` (the rows stay in bus_messages)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(FEED_BOUND)
        self.dropped = 0

    def put(self, note: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(note)
        except asyncio.QueueFull:
            self.dropped += 1

    def __aiter__(self) -> MessageFeed:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._queue.get()
