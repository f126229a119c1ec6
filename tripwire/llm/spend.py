"""Cluster-wide LLM spend in PostgreSQL: the cost ledger and the shared day budgets.

Every process of a cluster (each Triage replica, the SignOff replica, the CLI drivers)
builds its own router, so budgets and the ledger that live in a process are per process and
forgotten at a restart. Here both live in PostgreSQL:

* :class:`PgLedger` writes every :class:`~tripwire.llm.ledger.CallRecord` (attempts,
  refusals, cache hits) into ``llm_calls`` and summarises it for ``/v1/llm/costs`` and
  ``tripwire llm costs``. Rows that cannot be written while the database is away wait in a
  bounded backlog (overflow counted in ``dropped``) and go in with the next write that works.
* :class:`PgBudget` *reserves* each metered attempt's maximum cost (estimated prompt tokens
  + ``max_tokens``, at the route's price) before it is sent, with one call of
  ``llm_reserve`` (migration 0012) that locks the (UTC day, scope) rows of ``total`` and
  ``route:<name>`` and refuses when spent + held + this call would pass a limit; then
  *settles* the real usage (``llm_settle``). A process that dies in between leaves its
  reservation; after ``3 x timeout_s + 60 s`` any process reclaims it (``llm_reclaim``),
  charging the reserved maximum (what was billed is unknown; counting more fails closed)
  and writing a ``reclaimed`` ledger row.
* A database that does not answer within ``timeout_s`` refuses metered routes
  (:class:`BudgetUnavailable`, a :class:`~tripwire.llm.base.BudgetExceeded`): the router
  records the refusal and falls through to unmetered routes (the offline rules analyst).

Per-call ceilings stay in the process (a call's attempts all run in one router).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from tripwire.llm.base import BudgetExceeded
from tripwire.llm.config import BudgetConfig, LLMConfig
from tripwire.llm.ledger import COLUMNS, OK_OUTCOMES, CallRecord, CostRow, _check_by
from tripwire.llm.limits import NS_PER_DAY, DayLimit, call_refusal, day_refusal, route_limits
from tripwire.model import NS_PER_SECOND, Clock, SystemClock

log = logging.getLogger(__name__)

# What an unreachable, overloaded or misconfigured database raises through asyncpg.
DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
)
DEFAULT_TIMEOUT_S = 5.0  # a budget answer slower than this refuses the metered route
RECLAIM_EVERY_S = 30.0  # how often a process looks for expired reservations
RECLAIM_BATCH = 500
TTL_MARGIN_S = 60.0

_INSERT = (f"INSERT INTO llm_calls ({', '.join(COLUMNS)}) VALUES "
           f"({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))})")


class BudgetUnavailable(BudgetExceeded):
    """The budget store did not answer: a metered route is refused (fail closed)."""


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


async def connect_pool(dsn: str, *, max_size: int = 8) -> asyncpg.Pool:
    """A pool that connects lazily (``min_size=0``): a router starts while the database is
    away (its metered routes refuse) and recovers by itself when it is back."""
    return await asyncpg.create_pool(dsn, min_size=0, max_size=max_size)


class PgLedger:
    """The ``llm_calls`` table as a :class:`~tripwire.llm.ledger.LedgerSink`."""

    def __init__(self, pool: asyncpg.Pool, *, backlog: int = 10_000,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.pool = pool
        self.timeout_s = timeout_s
        self._backlog: deque[CallRecord] = deque()
        self._capacity = backlog
        self._flushing = False
        self.dropped = 0  # rows lost because the backlog was full
        self.corrupt = 0  # the report reads it from every ledger (a table has none)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    async def write(self, record: CallRecord) -> None:
        """Insert one row; while the database is away keep it (bounded) and re-raise."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.pool.execute(_INSERT, *_values(record))
        except DB_ERRORS:
            self._keep([record])
            raise
        if self._backlog:
            await self.flush()

    async def flush(self) -> int:
        """Write the backlog; the rows written (0 while another flush runs or on failure)."""
        if self._flushing or not self._backlog:
            return 0
        self._flushing = True
        batch = list(self._backlog)
        self._backlog.clear()
        try:
            async with asyncio.timeout(self.timeout_s * 4):
                await self.pool.executemany(_INSERT, [_values(r) for r in batch])
            return len(batch)
        except DB_ERRORS as exc:
            log.warning("llm ledger: %d rows still unwritten (%s)", len(batch), _why(exc))
            self._keep(batch)
            return 0
        finally:
            self._flushing = False

    def _keep(self, records: Sequence[CallRecord]) -> None:
        for r in records:
            if len(self._backlog) >= self._capacity:
                self.dropped += 1
                continue
            self._backlog.append(r)

    async def summarise(
        self,
        since_ns: int | None = None,
        until_ns: int | None = None,
        *,
        by: Sequence[str] = ("route", "model"),
    ) -> list[CostRow]:
        return await summarise_pg(self.pool, since_ns, until_ns, by=by)


def _values(r: CallRecord) -> tuple[Any, ...]:
    return (r.call_id, r.ts_ns, r.role, r.route, r.model, r.input_tokens, r.output_tokens,
            r.cost_usd, r.latency_ms, r.outcome, r.attempt, r.fingerprint, r.cached, r.detail)


async def summarise_pg(
    conn: asyncpg.Pool | asyncpg.Connection,
    since_ns: int | None = None,
    until_ns: int | None = None,
    *,
    by: Sequence[str] = ("route", "model"),
) -> list[CostRow]:
    """``llm_calls`` grouped like :func:`tripwire.llm.ledger.summarise`; costliest first."""
    keys = _check_by(by)  # only known column names reach the SQL text
    cols = "".join(f"{k}, " for k in keys)
    sql = (
        f"SELECT {cols}count(*) AS calls, "
        "count(*) FILTER (WHERE outcome = ANY($3::text[])) AS ok, "
        "count(*) FILTER (WHERE outcome = 'cache_hit') AS cache_hits, "
        "coalesce(sum(input_tokens), 0)::bigint AS input_tokens, "
        "coalesce(sum(output_tokens), 0)::bigint AS output_tokens, "
        "coalesce(sum(cost_usd), 0) AS cost_usd, coalesce(avg(latency_ms), 0) AS mean_ms "
        "FROM llm_calls WHERE ts_ns >= $1 AND ts_ns < $2"
        + (f" GROUP BY {', '.join(keys)}" if keys else "")
    )
    lo = since_ns if since_ns is not None else -(2**63)
    hi = until_ns if until_ns is not None else 2**63 - 1
    out = []
    for row in await conn.fetch(sql, lo, hi, sorted(OK_OUTCOMES)):
        if not row["calls"]:
            continue  # no grouping and no rows: one all-zero line
        named = {k: row[k] for k in keys}
        out.append(CostRow(
            *(named.get(k, "*") for k in ("role", "route", "model", "outcome")),
            calls=row["calls"], ok=row["ok"], cache_hits=row["cache_hits"],
            input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
            cost_usd=round(row["cost_usd"], 10), mean_latency_ms=float(row["mean_ms"]),
        ))
    out.sort(key=lambda r: (-r.cost_usd, r.role, r.route, r.model, r.outcome))
    return out


async def budget_day(conn: asyncpg.Pool | asyncpg.Connection, day: int) -> dict[str, Any]:
    """Scope -> spent, held and counters of one UTC day (``llm_budget``)."""
    rows = await conn.fetch(
        "SELECT scope, spent_tokens, spent_usd, held_tokens, held_usd, held_calls, refusals, "
        "reclaimed FROM llm_budget WHERE day = $1 ORDER BY scope", day)
    return {r["scope"]: {k: r[k] for k in r.keys() if k != "scope"} for r in rows}


@dataclass(slots=True)
class PgReservation:
    """One attempt's hold on the shared budget (settle it exactly once)."""

    id: str
    tokens: int
    usd: float
    settled: bool = False


class PgBudget:
    """The day budgets shared through PostgreSQL (module docs); the per-call ceilings of
    ``config`` stay in this process. Implements :class:`tripwire.llm.limits.SharedBudget`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: BudgetConfig | None = None,
        clock: Clock | None = None,
        *,
        routes: Mapping[str, DayLimit] | None = None,
        ledger: PgLedger | None = None,
        owner: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        reclaim_every_s: float = RECLAIM_EVERY_S,
        owns_pool: bool = False,
    ) -> None:
        self.pool = pool
        self.config = config or BudgetConfig()
        self.routes = dict(routes or {})
        self._clock = clock or SystemClock()
        self.ledger = ledger
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.timeout_s = timeout_s
        self.reclaim_every_ns = int(reclaim_every_s * NS_PER_SECOND)
        self._next_reclaim_ns = 0
        self._owns_pool = owns_pool
        self._unsettled: deque[tuple[PgReservation, int, float]] = deque(maxlen=10_000)
        self.reserve_ms: deque[float] = deque(maxlen=4096)  # latest reservation round trips
        self.stats = dict.fromkeys(("reserved", "refused", "unavailable", "settled",
                                    "settle_late", "settle_errors", "reclaimed"), 0)

    async def aclose(self) -> None:
        await self._retry_unsettled()
        if self._owns_pool:
            await self.pool.close()

    # -- the router's side --------------------------------------------------------------

    async def reserve_attempt(
        self, *, route: str, model: str, role: str, call_id: str, tokens_in: int,
        tokens_out: int, usd: float, call_tokens: int, call_usd: float, route_timeout_s: float,
    ) -> PgReservation:
        """Hold this attempt's maximum cost, or raise BudgetExceeded (BudgetUnavailable
        when the database does not answer)."""
        tokens = tokens_in + tokens_out
        why = call_refusal(self.config, tokens, usd, call_tokens, call_usd)
        if why is not None:
            self.stats["refused"] += 1
            raise BudgetExceeded(why)
        now = self._clock.now_ns()
        scopes = self._scopes(route)
        rid = secrets.token_hex(16)
        args = (rid, now // NS_PER_DAY, [s for s, _ in scopes],
                [lim[0] for _, lim in scopes], [lim[1] for _, lim in scopes],
                call_id, role, route, model, tokens_in, tokens_out, usd, self.owner, now,
                now + int(reservation_ttl_s(route_timeout_s) * NS_PER_SECOND))
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._unsettled:
                    await self._retry_unsettled()
                if now >= self._next_reclaim_ns:
                    await self.reclaim(now)
                row = await self._reserve(args)
                if not row["ok"] and await self.reclaim(now):
                    row = await self._reserve(args)  # expired holds were in the way
        except DB_ERRORS as exc:
            self.stats["unavailable"] += 1
            raise BudgetUnavailable(
                f"budget store unreachable ({_why(exc)}): metered routes refuse until "
                "PostgreSQL answers") from None
        if not row["ok"]:
            self.stats["refused"] += 1
            needs = float(tokens) if row["measure"] == "tokens" else usd
            raise BudgetExceeded(day_refusal(row["scope"], row["measure"], row["used"],
                                             row["lim"], needs))
        self.stats["reserved"] += 1
        return PgReservation(rid, tokens, usd)

    async def _reserve(self, args: tuple[Any, ...]) -> asyncpg.Record:
        t = time.perf_counter()
        row = await self.pool.fetchrow(
            "SELECT * FROM llm_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
            "$13, $14, $15)", *args)
        self.reserve_ms.append((time.perf_counter() - t) * 1e3)
        return row

    async def settle_attempt(self, reservation: PgReservation, tokens: int, usd: float) -> None:
        """Replace the hold by the real usage. Never raises: a settle the database refuses
        now is retried before later reservations (and, failing that, the reservation expires
        and is charged at its maximum)."""
        if reservation.settled:
            return
        reservation.settled = True
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._settle(reservation, tokens, usd)
        except DB_ERRORS as exc:
            self.stats["settle_errors"] += 1
            self._unsettled.append((reservation, tokens, usd))
            log.warning("llm budget: settle of %s deferred (%s)", reservation.id, _why(exc))

    async def _settle(self, reservation: PgReservation, tokens: int, usd: float) -> None:
        held = await self.pool.fetchval("SELECT llm_settle($1, $2, $3)",
                                        reservation.id, tokens, usd)
        self.stats["settled" if held else "settle_late"] += 1

    async def _retry_unsettled(self) -> None:
        while self._unsettled:
            res, tokens, usd = self._unsettled[0]
            await self._settle(res, tokens, usd)  # raises while the database is away
            self._unsettled.popleft()

    def _scopes(self, route: str) -> list[tuple[str, DayLimit]]:
        total = (self.config.per_day_tokens, self.config.per_day_usd)
        own = self.routes.get(route, (None, None))
        # Sorted: every process locks the rows in the same order (no deadlocks).
        return sorted([("total", total), (f"route:{route}", own)])

    # -- housekeeping -------------------------------------------------------------------

    async def reclaim(self, now_ns: int | None = None) -> int:
        """Charge and drop reservations that expired unsettled (any process's); how many.
        Each gets a ``reclaimed`` row in the ledger."""
        now = self._clock.now_ns() if now_ns is None else now_ns
        self._next_reclaim_ns = now + self.reclaim_every_ns
        rows = await self.pool.fetch("SELECT * FROM llm_reclaim($1, $2)", now, RECLAIM_BATCH)
        for r in rows:
            self.stats["reclaimed"] += 1
            log.warning("llm budget: reclaimed reservation %s of %s (route %s, %.4f USD)",
                        r["id"], r["owner"], r["route"], r["usd"])
            if self.ledger is not None:
                self.ledger._keep([CallRecord(
                    r["call_id"], now, r["role"], r["route"], r["model"], r["tokens_in"],
                    r["tokens_out"], r["usd"], 0.0, "reclaimed", 0, "", False,
                    f"reservation of {r['owner']} expired unsettled: charged its maximum",
                )])
        if rows and self.ledger is not None:
            await self.ledger.flush()
        return len(rows)

    async def today(self) -> dict[str, Any]:
        """This UTC day's rows of ``llm_budget`` (scope -> figures)."""
        return await budget_day(self.pool, self._clock.now_ns() // NS_PER_DAY)


@dataclass
class PgSpend:
    """A ledger and a budget on one pool: what a router of a cluster process needs."""

    pool: asyncpg.Pool
    ledger: PgLedger
    budget: PgBudget

    @classmethod
    async def connect(cls, dsn: str, config: LLMConfig, *, clock: Clock | None = None,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> PgSpend:
        pool = await connect_pool(dsn)
        ledger = PgLedger(pool, timeout_s=timeout_s)
        budget = PgBudget(pool, config.budget, clock, routes=route_limits(config.routes),
                          ledger=ledger, timeout_s=timeout_s, owns_pool=True)
        return cls(pool, ledger, budget)


def reservation_ttl_s(timeout_s: float) -> float:
    """How long a reservation may stay unsettled before another process may reclaim it: the
    rate-limit wait, the concurrency wait and the call itself (each at most the route's
    timeout), plus a margin.

    >>> reservation_ttl_s(30.0)
    150.0
    """
    return 3 * timeout_s + TTL_MARGIN_S


async def spend_report(
    conn: asyncpg.Pool | asyncpg.Connection,
    since_ns: int | None = None,
    until_ns: int | None = None,
    *,
    by: Sequence[str] = ("route",),
    now_ns: int | None = None,
) -> dict[str, Any]:
    """What ``/v1/llm/costs`` and ``tripwire llm costs`` show: the ledger's rows grouped by
    ``by`` (costliest first), their totals, and today's budget rows (UTC day of ``now_ns``,
    default the wall clock): spent, held by calls in flight, refusals, reclaims per scope."""
    rows = await summarise_pg(conn, since_ns, until_ns, by=by)
    day = (SystemClock().now_ns() if now_ns is None else now_ns) // NS_PER_DAY
    return {
        "source": "postgresql",
        "calls": sum(r.calls for r in rows),
        "tokens_in": sum(r.input_tokens for r in rows),
        "tokens_out": sum(r.output_tokens for r in rows),
        "usd": round(sum(r.cost_usd for r in rows), 10),
        "rows": [r.as_dict() for r in rows],
        "today": {"day": day, "scopes": await budget_day(conn, day)},
    }
