"""The decision store: a port with one contract and two backends (memory, PostgreSQL).

Everything the decision core remembers goes through :class:`DecisionStore`: incidents,
verdicts, proposals with their outcome, signatures, TWO_PHASE approvals, orders, fills,
positions, the append-only bus of messages between agents, the halt flag, heartbeats and
dead letters. :class:`MemoryDecisionStore` keeps it in dicts (tests, benchmarks, a DRY_RUN
demo); :class:`tripwire.store.pg_decisions.PgDecisionStore` keeps it in PostgreSQL. One
conformance suite (``tests/store/test_decision_store.py``) runs against both, as LangGraph
does for its checkpointers.

The contract, where it matters for money:

* inserts are idempotent by their natural key (incident id, verdict id, client order id,
  fill id, signer + proposal hash): a retry or a restart never doubles a row;
* an outcome is final: :meth:`DecisionStore.set_outcome` on a decided proposal returns
  False and changes nothing;
* the halt flag fails closed: :meth:`DecisionStore.read_halt` either answers or raises, and
  callers treat a raise as halted; resuming needs a written acknowledgement;
* an approval is decided once; a decision after ``expires_ns`` is ``expired``, never
  ``approved``;
* bus messages are append-only.

Lists of incidents, verdicts and decisions come newest first by market time (``by="market"``,
the report's order) or by arrival (``by="arrival"``: ``recorded_ns``, when the store wrote the
row, the console's order), and take a ``run``: the id of a run (:meth:`DecisionStore.start_run`)
whose rows are those that arrived while it went on. A replay writes rows stamped with its
market's time, so only arrival tells the current run's rows from an older run's.
"""

from __future__ import annotations

import abc
import copy
import itertools
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tripwire.decisions.signatures import Signature
from tripwire.execution.base import Fill, Order, Position
from tripwire.risk.gates import HaltStatus

APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired")
# Incident statuses of work still in flight; every other status is final (triaged,
# failed: ..., coalesced into ..., skipped: ..., abandoned: ...).
UNFINISHED_INCIDENT = ("open", "queued", "triaging")
MAX_LIMIT = 10_000  # the most rows one list call returns; page with ``offset`` past it
_INT64 = (-(2**63), 2**63 - 1)
LIST_ORDERS = ("market", "arrival")  # the ``by`` of the list methods
RUN_ID_MAX = 100  # characters of a run id
RUN_LABEL_MAX = 200
# Channels of DecisionStore.listen_changes: a row a live view shows changed (note: "table",
# "id", and "decision_id" where the row belongs to one), or the halt flag was written.
CHANGES = "changes"
HALT = "halt"
ChangeCallback = Callable[[str, dict[str, Any]], None]


class StoreError(RuntimeError):
    """A request the store refuses (the message says why); nothing was written."""


@dataclass(frozen=True, slots=True)
class Approval:
    decision_id: str
    status: str  # pending | approved | rejected | expired
    proposal_hash: str
    summary: str
    requested_ns: int
    expires_ns: int
    decided_by: str = ""
    decided_ns: int = 0
    note: str = ""


@dataclass(frozen=True, slots=True)
class IngestBatch:
    """A tick batch's idempotency record: claimed by ``owner`` at ``claimed_ns`` before it
    was applied; ``result`` (the ingest answer) once it was. No result: its outcome is
    unknown (a fault stopped it part-way, or it is being applied now)."""

    batch_id: str
    digest: str
    owner: str
    claimed_ns: int
    result: dict[str, Any] | None = None
    done_ns: int = 0


@dataclass
class DecisionChain:
    """Everything about one decision, from the trip to the fills (for explain and journal)."""

    decision_id: str
    incident: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    proposal: dict[str, Any] | None = None
    signatures: list[Signature] = field(default_factory=list)
    approval: Approval | None = None
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


def order_row(proposal_id: str, backend: str, order: Order) -> dict[str, Any]:
    r = order.request
    return {
        "client_order_id": order.id, "proposal_id": proposal_id, "backend": backend,
        "exchange_order_id": None, "symbol": r.symbol, "side": r.side.name,
        "order_type": r.order_type.value, "qty": r.qty, "price": r.limit_price,
        "status": order.status.value, "ts_ns": order.placed_ns, "updated_ns": order.updated_ns,
        "payload": {"filled_qty": order.filled_qty,
                    "avg_fill_price": None if order.avg_fill_price != order.avg_fill_price
                    else order.avg_fill_price,
                    "stop_loss": r.stop_loss, "take_profit": r.take_profit},
    }


def fill_row(fill: Fill) -> dict[str, Any]:
    return {"id": fill.fill_id, "client_order_id": fill.order_id, "symbol": fill.symbol,
            "side": fill.side.name, "qty": fill.qty, "price": fill.price, "fee": fill.fee,
            "ts_ns": fill.ts_ns, "kind": fill.kind.value}


class DecisionStore(abc.ABC):
    """The port (see the module docstring). Every method is a coroutine."""

    # -- incidents and verdicts ------------------------------------------------------------

    @abc.abstractmethod
    async def record_incident(self, incident_id: str, symbol: str, ts_ns: int, status: str,
                              payload: Mapping[str, Any]) -> bool:
        """Insert unless it exists; True when inserted."""

    @abc.abstractmethod
    async def set_incident_status(self, incident_id: str, status: str) -> None: ...

    @abc.abstractmethod
    async def claim_trip(self, symbol: str, ts_ns: int, metric: str, incident_id: str,
                         now_ns: int) -> tuple[str, bool]:
        """Make ``incident_id`` the owner of the trip (symbol, trip time, lead metric) unless
        an incident owns it already: (owner id, True when this call claimed it). Atomic
        across processes: of two concurrent claims exactly one wins."""

    @abc.abstractmethod
    async def release_trip(self, symbol: str, ts_ns: int, metric: str,
                           incident_id: str) -> bool:
        """Give up a claim this incident holds (it was refused before any work, e.g. an
        overload), so the trip may be posted again; True when released."""

    @abc.abstractmethod
    async def unfinished_incidents(self, limit: int = 1_000) -> list[dict[str, Any]]:
        """Incidents whose status is not final (:data:`UNFINISHED_INCIDENT`), oldest first."""

    @abc.abstractmethod
    async def close_incident(self, incident_id: str, status: str) -> bool:
        """Give an unfinished incident the final ``status`` (e.g. ``abandoned: <why>``);
        True when set, False when it had finished meanwhile (its status is kept). One
        conditional write, so a triage finishing at the same moment is never overwritten.
        StoreError for an unknown incident or a ``status`` that is not final."""

    @abc.abstractmethod
    async def incident(self, incident_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def incidents(self, limit: int = 50, *, offset: int = 0, since_ns: int | None = None,
                        until_ns: int | None = None, symbol: str | None = None,
                        status: str | None = None, run: str | None = None,
                        by: str = "market") -> list[dict[str, Any]]:
        """Incidents (rows as :meth:`incident`), newest first: (ts_ns, id) by market time,
        (recorded_ns, ts_ns, id) by arrival; ``run`` keeps the rows that arrived during it
        (an unknown run is a StoreError)."""

    @abc.abstractmethod
    async def record_verdict(self, verdict_id: str, incident_id: str, symbol: str, ts_ns: int,
                             classification: str, confidence: float,
                             payload: Mapping[str, Any]) -> bool: ...

    @abc.abstractmethod
    async def verdict(self, verdict_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def recent_verdicts(self, symbol: str, limit: int = 5) -> list[dict[str, Any]]:
        """The symbol's latest verdicts, newest first."""

    @abc.abstractmethod
    async def verdicts(self, limit: int = 50, *, offset: int = 0, since_ns: int | None = None,
                       until_ns: int | None = None, symbol: str | None = None,
                       classification: str | None = None, run: str | None = None,
                       by: str = "market") -> list[dict[str, Any]]:
        """Verdicts (rows as :meth:`verdict`), newest first as :meth:`incidents`."""

    @abc.abstractmethod
    async def verdicts_of(self, incident_id: str) -> list[dict[str, Any]]:
        """The incident's verdicts, oldest first (ts_ns, id); [] for an unknown incident."""

    # -- memory: realised outcomes and history (tripwire.decisions.memory) -------------------

    @abc.abstractmethod
    async def record_outcome(self, incident_id: str, *, symbol: str, metric: str,
                             z_bucket: int, ts_ns: int, realised_ns: int, horizon_s: float,
                             move_pct: float, classification: str = "", action: str = "HOLD",
                             pnl: float | None = None, has_news: bool = False,
                             payload: Mapping[str, Any] | None = None) -> bool:
        """The outcome ``incident_id`` realised (its symbol moved ``move_pct`` over
        ``horizon_s``, known at ``realised_ns``); insert unless it exists, True when
        inserted. StoreError for an unknown incident or a bad value (see
        :func:`check_outcome`)."""

    @abc.abstractmethod
    async def similar_outcomes(self, symbol: str, metric: str, z_bucket: int, *,
                               as_of_ns: int, has_news: bool = False,
                               limit: int = 5) -> list[dict[str, Any]]:
        """Outcomes realised strictly before ``as_of_ns`` of incidents on the same
        ``metric`` with a z bucket within one of ``z_bucket``, most similar first: the same
        symbol, then the nearer bucket, then the same news presence, then the newest (then
        the incident id)."""

    @abc.abstractmethod
    async def history(self, symbol: str, *, before_ns: int,
                      limit: int = 5) -> dict[str, list[dict[str, Any]]]:
        """The symbol's latest verdicts and decisions strictly before ``before_ns``, newest
        first: ``{"verdicts": [{id, ts_ns, class, confidence}], "decisions": [{id, ts_ns,
        action, outcome, reason}]}``; a decision's outcome is None when it was settled at
        or after ``before_ns`` (not known yet at that time)."""

    # -- proposals, outcomes, signatures, approvals ------------------------------------------

    @abc.abstractmethod
    async def record_proposal(self, decision_id: str, *, incident_id: str | None,
                              verdict_id: str | None, symbol: str, ts_ns: int, action: str,
                              proposal_hash: str, revision: int, mode: str,
                              payload: Mapping[str, Any]) -> None:
        """Insert, or move an undecided proposal to a new revision. A decided one raises
        StoreError."""

    @abc.abstractmethod
    async def proposal(self, decision_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def set_outcome(self, decision_id: str, outcome: str, reason: str, ts_ns: int,
                          payload: Mapping[str, Any] | None = None) -> bool:
        """Set the final outcome, merging ``payload``'s keys into the stored payload in the
        same write; False (and no change) when it was already set."""

    @abc.abstractmethod
    async def decisions(self, limit: int = 50, *, undecided_only: bool = False,
                        offset: int = 0, since_ns: int | None = None,
                        until_ns: int | None = None, symbol: str | None = None,
                        outcome: str | None = None, run: str | None = None,
                        by: str = "market") -> list[dict[str, Any]]:
        """Proposals (rows as :meth:`proposal`), newest first as :meth:`incidents`; see
        :func:`check_page` for the paging and time-range rules."""

    @abc.abstractmethod
    async def add_signature(self, decision_id: str, signature: Signature) -> bool:
        """False when this signer already signed this hash (the first signature stands)."""

    @abc.abstractmethod
    async def signatures(self, decision_id: str) -> list[Signature]: ...

    @abc.abstractmethod
    async def request_approval(self, approval: Approval) -> Approval:
        """Insert a pending approval; an existing one is returned unchanged."""

    @abc.abstractmethod
    async def decide_approval(self, decision_id: str, *, approve: bool, by: str, note: str,
                              now_ns: int) -> Approval:
        """approved / rejected, or expired when ``now_ns`` is past the expiry. Decided once:
        a second call returns the first answer. Unknown id: StoreError."""

    @abc.abstractmethod
    async def approval(self, decision_id: str) -> Approval | None: ...

    @abc.abstractmethod
    async def pending_approvals(self) -> list[Approval]: ...

    # -- orders, fills, positions --------------------------------------------------------------

    @abc.abstractmethod
    async def record_order(self, decision_id: str, backend: str, order: Order) -> bool:
        """Insert unless the client order id exists; True when inserted."""

    @abc.abstractmethod
    async def update_order(self, backend: str, order: Order) -> None: ...

    @abc.abstractmethod
    async def orders(self, decision_id: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def record_fill(self, fill: Fill) -> bool:
        """Insert unless the fill id exists; True when inserted."""

    @abc.abstractmethod
    async def fills(self, client_order_id: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def save_position(self, backend: str, position: Position, ts_ns: int) -> None: ...

    @abc.abstractmethod
    async def positions(self, backend: str) -> dict[str, dict[str, Any]]: ...

    # -- the bus, the halt flag, heartbeats, dead letters -----------------------------------

    @abc.abstractmethod
    async def append_message(self, decision_id: str | None, sender: str, recipient: str,
                             kind: str, payload: Mapping[str, Any], ts_ns: int) -> int:
        """Append; the message's id (increasing)."""

    @abc.abstractmethod
    async def messages(self, decision_id: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def read_halt(self) -> HaltStatus:
        """The halt flag; raises if it cannot be read (callers then treat it as halted)."""

    @abc.abstractmethod
    async def set_halt(self, reason: str, by: str, ts_ns: int) -> None: ...

    @abc.abstractmethod
    async def resume(self, by: str, acknowledgement: str, ts_ns: int) -> None:
        """Clear the flag; StoreError unless ``by`` and ``acknowledgement`` are given."""

    @abc.abstractmethod
    async def heartbeat(self, component: str, ts_ns: int, detail: str = "") -> None: ...

    @abc.abstractmethod
    async def heartbeats(self) -> dict[str, tuple[int, str]]: ...

    @abc.abstractmethod
    async def dead_letter(self, ts_ns: int, source: str, reason: str, symbol: str | None,
                          detail: str = "", raw: str = "") -> None: ...

    @abc.abstractmethod
    async def dead_letters(self, limit: int = 100, *, offset: int = 0,
                           since_ns: int | None = None) -> list[dict[str, Any]]:
        """Newest first (by id, the order they were written); ``since_ns`` inclusive."""

    @abc.abstractmethod
    async def counts(self, *, since_ns: int | None = None, until_ns: int | None = None,
                     run: str | None = None) -> dict[str, Any]:
        """Rows per state with ts_ns in [since_ns, until_ns) (and arrived during ``run``, if
        given): ``{"incidents": {status: n}, "verdicts": {class: n},
        "decisions": {outcome or "undecided": n}, "orders": {status: n}, "fills": n}``.
        States without rows are absent."""

    # -- runs -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def start_run(self, run_id: str, label: str = "", *, started_ns: int | None = None,
                        period_start_ns: int | None = None, period_end_ns: int | None = None,
                        payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register a run (a demo, a service start); its row. ``started_ns`` None: the
        store's own arrival clock now (use None: rows are stamped by that clock). Idempotent:
        an existing run is returned unchanged. Row: ``{"id", "label", "started_ns",
        "ended_ns", "period_start_ns", "period_end_ns", "payload"}``."""

    @abc.abstractmethod
    async def end_run(self, run_id: str, *, ended_ns: int | None = None,
                      period_start_ns: int | None = None, period_end_ns: int | None = None
                      ) -> dict[str, Any]:
        """End a run (the first end stands) and set the market period it covered where
        given; its row. Unknown run: StoreError."""

    @abc.abstractmethod
    async def run(self, run_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def runs(self, limit: int = 50, *, offset: int = 0) -> list[dict[str, Any]]:
        """Runs, newest first (started_ns, id)."""

    # -- idempotent ingest (batch ids) ------------------------------------------------------

    @abc.abstractmethod
    async def claim_ingest_batch(self, batch_id: str, digest: str, owner: str,
                                 ts_ns: int) -> IngestBatch | None:
        """Claim ``batch_id`` for ``owner`` before applying it: None when this call claimed
        it, else the record already there (left unchanged)."""

    @abc.abstractmethod
    async def finish_ingest_batch(self, batch_id: str, result: Mapping[str, Any],
                                  ts_ns: int) -> None:
        """Keep the applied batch's answer; StoreError for a batch id never claimed."""

    @abc.abstractmethod
    async def ingest_batch(self, batch_id: str) -> IngestBatch | None: ...

    @abc.abstractmethod
    async def prune_ingest_batches(self, before_ns: int) -> int:
        """Forget the batch ids claimed before ``before_ns`` (bounded retention); how many."""

    async def close(self) -> None:
        return None

    # -- live views -----------------------------------------------------------------------

    async def listen_changes(self, callback: ChangeCallback, *,
                             on_lost: Callable[[], None] | None = None
                             ) -> Callable[[], Awaitable[None]]:
        """Call ``callback(channel, note)`` for every committed write a live view shows.

        ``channel`` is :data:`CHANGES` with ``note`` = ``{"table", "id"}`` (plus
        ``decision_id`` for approvals, orders and fills; ``incident_id`` for verdicts; tables
        incidents, verdicts, proposals, approvals, orders, fills, runs), or :data:`HALT` with
        ``{"halted", "reason", "set_by", "set_ns"}``. A note names a row; read it by id.
        Listening has begun when this returns; the result is the coroutine function that
        stops it. ``on_lost()`` is called once if notes stop coming (the connection was lost):
        listen again, then read afresh what may have changed meanwhile.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot announce changes")

    # -- derived --------------------------------------------------------------------------

    async def chain(self, decision_id: str) -> DecisionChain | None:
        """The whole chain of one decision, or None when there is no such decision."""
        proposal = await self.proposal(decision_id)
        if proposal is None:
            return None
        chain = DecisionChain(decision_id, proposal=proposal)
        if proposal["incident_id"]:
            chain.incident = await self.incident(proposal["incident_id"])
        if proposal["verdict_id"]:
            chain.verdict = await self.verdict(proposal["verdict_id"])
        chain.signatures = await self.signatures(decision_id)
        chain.approval = await self.approval(decision_id)
        chain.orders = await self.orders(decision_id)
        for o in chain.orders:
            chain.fills.extend(await self.fills(o["client_order_id"]))
        chain.messages = await self.messages(decision_id)
        return chain


OUTCOME_ACTIONS = ("BUY", "SELL", "HOLD")


def check_outcome(incident_id: str, ts_ns: int, realised_ns: int, horizon_s: float,
                  move_pct: float, action: str, pnl: float | None) -> None:
    """StoreError naming what is wrong with an outcome row (nothing is written)."""
    def bad(what: str) -> StoreError:
        return StoreError(f"outcome of {incident_id!r} refused: {what}")
    if not (_is_int(ts_ns) and _is_int(realised_ns)) or realised_ns < ts_ns:
        raise bad(f"realised_ns {realised_ns!r} must be an integer >= ts_ns {ts_ns!r}")
    if not (isinstance(horizon_s, int | float) and math.isfinite(horizon_s)
            and horizon_s > 0):
        raise bad(f"horizon_s must be a number > 0, got {horizon_s!r}")
    if not (isinstance(move_pct, int | float) and math.isfinite(move_pct)):
        raise bad(f"move_pct must be a finite number, got {move_pct!r}")
    if pnl is not None and not (isinstance(pnl, int | float) and math.isfinite(pnl)):
        raise bad(f"pnl must be a finite number or None, got {pnl!r}")
    if action not in OUTCOME_ACTIONS:
        raise bad(f"action must be one of {OUTCOME_ACTIONS}, got {action!r}")


def similarity_key(row: Mapping[str, Any], symbol: str, z_bucket: int,
                   has_news: bool) -> tuple[Any, ...]:
    """The order of :meth:`DecisionStore.similar_outcomes` (PostgreSQL sorts the same)."""
    return (row["symbol"] != symbol, abs(row["z_bucket"] - z_bucket),
            row["has_news"] != has_news, -row["realised_ns"], row["incident_id"])


def check_page(limit: int, offset: int = 0, since_ns: int | None = None,
               until_ns: int | None = None) -> None:
    """StoreError naming the argument unless 1 <= limit <= MAX_LIMIT, offset >= 0 and the
    times are int64 ns (or None). since_ns is inclusive, until_ns exclusive; since >= until
    is an empty range, not an error.

    >>> check_page(0)
    Traceback (most recent call last):
    ...
    tripwire.store.decisions.StoreError: limit must be an integer in 1..10000, got 0
    """
    if not _is_int(limit) or not 1 <= limit <= MAX_LIMIT:
        raise StoreError(f"limit must be an integer in 1..{MAX_LIMIT}, got {limit!r}")
    if not _is_int(offset) or not 0 <= offset <= _INT64[1]:
        raise StoreError(f"offset must be an integer >= 0, got {offset!r}")
    check_range(since_ns, until_ns)


def check_order(by: str) -> None:
    if by not in LIST_ORDERS:
        raise StoreError(f"by must be one of {LIST_ORDERS}, got {by!r}")


def check_run_args(run_id: Any, label: Any = "", **times: int | None) -> None:
    """StoreError naming the argument unless the run id, label and times are usable."""
    if not isinstance(run_id, str) or not 0 < len(run_id) <= RUN_ID_MAX:
        raise StoreError(f"run id must be a string of 1..{RUN_ID_MAX} characters, "
                         f"got {run_id!r}")
    if not isinstance(label, str) or len(label) > RUN_LABEL_MAX:
        raise StoreError(f"run label must be a string of at most {RUN_LABEL_MAX} characters")
    for name, value in times.items():
        if value is not None and (not _is_int(value) or not _INT64[0] <= value <= _INT64[1]):
            raise StoreError(f"{name} must be an int64 nanosecond time or None, got {value!r}")
    lo, hi = times.get("period_start_ns"), times.get("period_end_ns")
    if lo is not None and hi is not None and hi <= lo:
        raise StoreError(f"period_end_ns ({hi}) must be after period_start_ns ({lo})")


def run_window(row: Mapping[str, Any]) -> tuple[int, int]:
    """The arrival span [started_ns, ended_ns) of a run row (open end: int64 max)."""
    end = row["ended_ns"]
    return row["started_ns"], _INT64[1] if end is None else end


def check_range(since_ns: int | None, until_ns: int | None) -> None:
    for name, value in (("since_ns", since_ns), ("until_ns", until_ns)):
        if value is not None and (not _is_int(value) or not _INT64[0] <= value <= _INT64[1]):
            raise StoreError(f"{name} must be an int64 nanosecond time or None, got {value!r}")


def check_final_status(status: object) -> str:
    """``status`` if it is a non-empty final incident status, else StoreError."""
    if not isinstance(status, str) or not status.strip() or status in UNFINISHED_INCIDENT:
        raise StoreError(f"an incident is closed with a final status (not one of "
                         f"{UNFINISHED_INCIDENT}), got {status!r}")
    return status


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_range(ts_ns: int, since_ns: int | None, until_ns: int | None) -> bool:
    return ((since_ns is None or ts_ns >= since_ns)
            and (until_ns is None or ts_ns < until_ns))


def _page(rows: Iterable[dict[str, Any]], limit: int, offset: int, since_ns: int | None,
          until_ns: int | None, window: tuple[int, int] | None = None, by: str = "market",
          **equal: Any) -> list[dict[str, Any]]:
    """The memory store's list query: filter by time, by arrival ``window`` and by ``equal``
    (None: any), newest first (by market time or arrival), then the page. Copies, so
    callers cannot change the store."""
    check_page(limit, offset, since_ns, until_ns)
    check_order(by)
    kept = [r for r in rows if _in_range(r["ts_ns"], since_ns, until_ns)
            and _in_window(r, window) and all(v is None or r[k] == v for k, v in equal.items())]
    if by == "arrival":
        kept.sort(key=lambda r: (r["recorded_ns"], r["ts_ns"], r["id"]), reverse=True)
    else:
        kept.sort(key=lambda r: (r["ts_ns"], r["id"]), reverse=True)
    return copy.deepcopy(kept[offset:offset + limit])


def _in_window(row: Mapping[str, Any], window: tuple[int, int] | None) -> bool:
    return window is None or window[0] <= row["recorded_ns"] < window[1]


def _tally(rows: Iterable[dict[str, Any]], key: str, since_ns: int | None,
           until_ns: int | None, window: tuple[int, int] | None, none_as: str = ""
           ) -> dict[str, int]:
    counted = Counter(none_as if r[key] is None else r[key] for r in rows
                      if _in_range(r["ts_ns"], since_ns, until_ns) and _in_window(r, window))
    return dict(counted)


def _require_ack(by: str, acknowledgement: str) -> None:
    if not (by or "").strip() or not (acknowledgement or "").strip():
        raise StoreError("resuming after a halt needs the operator's name and a written "
                         "acknowledgement of what was checked")


def _decided(a: Approval, approve: bool, by: str, note: str, now_ns: int) -> Approval:
    if now_ns > a.expires_ns:
        status = "expired"
    else:
        status = "approved" if approve else "rejected"
    return Approval(a.decision_id, status, a.proposal_hash, a.summary, a.requested_ns,
                    a.expires_ns, by, now_ns, note)


class MemoryDecisionStore(DecisionStore):
    """The store in dicts: same contract as PostgreSQL, gone with the process."""

    def __init__(self) -> None:
        self._incidents: dict[str, dict[str, Any]] = {}
        self._trips: dict[tuple[str, int, str], str] = {}  # trip -> the incident owning it
        self._verdicts: dict[str, dict[str, Any]] = {}
        self._proposals: dict[str, dict[str, Any]] = {}
        self._signatures: dict[str, list[Signature]] = {}
        self._approvals: dict[str, Approval] = {}
        self._orders: dict[str, dict[str, Any]] = {}
        self._fills: dict[str, dict[str, Any]] = {}
        self._positions: dict[tuple[str, str], dict[str, Any]] = {}
        self._messages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._halt = HaltStatus(False)
        self._heartbeats: dict[str, tuple[int, str]] = {}
        self._dead: list[dict[str, Any]] = []
        self._batches: dict[str, IngestBatch] = {}
        self._runs: dict[str, dict[str, Any]] = {}
        self._outcomes: dict[str, dict[str, Any]] = {}
        # Arrival of orders and fills (their rows keep the shape of order_row / fill_row).
        self._arrived: dict[tuple[str, str], int] = {}
        self._last_ns = 0
        self._listeners: list[ChangeCallback] = []

    def _announce(self, channel: str, note: dict[str, Any]) -> None:
        """The in-process NOTIFY: tell every listener, after the write is done."""
        for callback in list(self._listeners):
            try:
                callback(channel, dict(note))
            except Exception:  # a listener's fault never fails the write
                pass

    def _changed(self, table: str, row_id: str, **extra: Any) -> None:
        self._announce(CHANGES, {"table": table, "id": row_id, **extra})

    async def listen_changes(self, callback, *, on_lost=None):
        self._listeners.append(callback)

        async def stop() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return stop

    def _now(self) -> int:
        """The arrival clock: wall time, strictly increasing, so arrival order is insertion
        order even within one clock tick."""
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return self._last_ns

    def _window(self, run: str | None) -> tuple[int, int] | None:
        if run is None:
            return None
        row = self._runs.get(run)
        if row is None:
            raise StoreError(f"no run {run!r}")
        return run_window(row)

    async def record_incident(self, incident_id, symbol, ts_ns, status, payload):
        if incident_id in self._incidents:
            return False
        self._incidents[incident_id] = {"id": incident_id, "symbol": symbol, "ts_ns": ts_ns,
                                        "status": status, "payload": copy.deepcopy(dict(payload)),
                                        "recorded_ns": self._now()}
        self._changed("incidents", incident_id)
        return True

    async def set_incident_status(self, incident_id, status):
        if incident_id not in self._incidents:
            raise StoreError(f"no incident {incident_id!r}")
        if self._incidents[incident_id]["status"] != status:
            self._incidents[incident_id]["status"] = status
            self._changed("incidents", incident_id)

    async def claim_trip(self, symbol, ts_ns, metric, incident_id, now_ns):
        key = (symbol, ts_ns, metric)
        if key in self._trips:
            return self._trips[key], False
        self._trips[key] = incident_id
        return incident_id, True

    async def release_trip(self, symbol, ts_ns, metric, incident_id):
        key = (symbol, ts_ns, metric)
        if self._trips.get(key) != incident_id:
            return False
        del self._trips[key]
        return True

    async def unfinished_incidents(self, limit=1_000):
        check_page(limit)
        rows = sorted((r for r in self._incidents.values()
                       if r["status"] in UNFINISHED_INCIDENT),
                      key=lambda r: (r["ts_ns"], r["id"]))
        return copy.deepcopy(rows[:limit])

    async def close_incident(self, incident_id, status):
        check_final_status(status)
        row = self._incidents.get(incident_id)
        if row is None:
            raise StoreError(f"no incident {incident_id!r}")
        if row["status"] not in UNFINISHED_INCIDENT:
            return False
        row["status"] = status
        self._changed("incidents", incident_id)
        return True

    async def incident(self, incident_id):
        return copy.deepcopy(self._incidents.get(incident_id))

    async def record_verdict(self, verdict_id, incident_id, symbol, ts_ns, classification,
                             confidence, payload):
        if incident_id not in self._incidents:
            raise StoreError(f"verdict {verdict_id!r} names unknown incident {incident_id!r}")
        if not 0.0 <= confidence <= 1.0:
            raise StoreError(f"verdict confidence must be in [0, 1], got {confidence!r}")
        if verdict_id in self._verdicts:
            return False
        self._verdicts[verdict_id] = {
            "id": verdict_id, "incident_id": incident_id, "symbol": symbol, "ts_ns": ts_ns,
            "class": classification, "confidence": confidence,
            "payload": copy.deepcopy(dict(payload)), "recorded_ns": self._now()}
        self._changed("verdicts", verdict_id, incident_id=incident_id)
        return True

    async def incidents(self, limit=50, *, offset=0, since_ns=None, until_ns=None, symbol=None,
                        status=None, run=None, by="market"):
        return _page(self._incidents.values(), limit, offset, since_ns, until_ns,
                     self._window(run), by, symbol=symbol, status=status)

    async def verdict(self, verdict_id):
        return copy.deepcopy(self._verdicts.get(verdict_id))

    async def verdicts(self, limit=50, *, offset=0, since_ns=None, until_ns=None, symbol=None,
                       classification=None, run=None, by="market"):
        return _page(self._verdicts.values(), limit, offset, since_ns, until_ns,
                     self._window(run), by, symbol=symbol, **{"class": classification})

    async def verdicts_of(self, incident_id):
        rows = [v for v in self._verdicts.values() if v["incident_id"] == incident_id]
        return copy.deepcopy(sorted(rows, key=lambda v: (v["ts_ns"], v["id"])))

    async def recent_verdicts(self, symbol, limit=5):
        rows = [v for v in self._verdicts.values() if v["symbol"] == symbol]
        rows.sort(key=lambda v: (v["ts_ns"], v["id"]), reverse=True)
        return copy.deepcopy(rows[:limit])

    async def record_outcome(self, incident_id, *, symbol, metric, z_bucket, ts_ns,
                             realised_ns, horizon_s, move_pct, classification="",
                             action="HOLD", pnl=None, has_news=False, payload=None):
        check_outcome(incident_id, ts_ns, realised_ns, horizon_s, move_pct, action, pnl)
        if incident_id not in self._incidents:
            raise StoreError(f"outcome names unknown incident {incident_id!r}")
        if incident_id in self._outcomes:
            return False
        self._outcomes[incident_id] = {
            "incident_id": incident_id, "symbol": symbol, "metric": metric,
            "z_bucket": int(z_bucket), "has_news": bool(has_news), "ts_ns": ts_ns,
            "realised_ns": realised_ns, "horizon_s": float(horizon_s),
            "classification": classification, "action": action, "move_pct": float(move_pct),
            "pnl": None if pnl is None else float(pnl),
            "payload": copy.deepcopy(dict(payload or {}))}
        return True

    async def similar_outcomes(self, symbol, metric, z_bucket, *, as_of_ns, has_news=False,
                               limit=5):
        check_page(limit)
        rows = [r for r in self._outcomes.values()
                if r["metric"] == metric and abs(r["z_bucket"] - z_bucket) <= 1
                and r["realised_ns"] < as_of_ns]
        rows.sort(key=lambda r: similarity_key(r, symbol, z_bucket, has_news))
        return copy.deepcopy(rows[:limit])

    async def history(self, symbol, *, before_ns, limit=5):
        check_page(limit)
        verdicts = sorted((v for v in self._verdicts.values()
                           if v["symbol"] == symbol and v["ts_ns"] < before_ns),
                          key=lambda v: (v["ts_ns"], v["id"]), reverse=True)[:limit]
        decisions = sorted((p for p in self._proposals.values()
                            if p["symbol"] == symbol and p["ts_ns"] < before_ns),
                           key=lambda p: (p["ts_ns"], p["id"]), reverse=True)[:limit]
        return {
            "verdicts": [{"id": v["id"], "ts_ns": v["ts_ns"], "class": v["class"],
                          "confidence": v["confidence"]} for v in verdicts],
            "decisions": [{"id": p["id"], "ts_ns": p["ts_ns"], "action": p["action"],
                           **({"outcome": p["outcome"], "reason": p["reason"]}
                              if p["outcome"] is not None and p["updated_ns"] < before_ns
                              else {"outcome": None, "reason": ""})}
                          for p in decisions]}

    async def record_proposal(self, decision_id, *, incident_id, verdict_id, symbol, ts_ns,
                              action, proposal_hash, revision, mode, payload):
        if action not in ("BUY", "SELL", "HOLD"):
            raise StoreError(f"proposal action must be BUY, SELL or HOLD, got {action!r}")
        for key, table, value in (("incident", self._incidents, incident_id),
                                  ("verdict", self._verdicts, verdict_id)):
            if value is not None and value not in table:
                raise StoreError(f"proposal {decision_id!r} names unknown {key} {value!r}")
        row = self._proposals.get(decision_id)
        if row is not None and row["outcome"] is not None:
            raise StoreError(f"decision {decision_id} already ended as {row['outcome']}")
        # A new revision keeps the decision's first arrival.
        recorded = row["recorded_ns"] if row is not None else self._now()
        self._proposals[decision_id] = {
            "id": decision_id, "incident_id": incident_id, "verdict_id": verdict_id,
            "symbol": symbol, "ts_ns": ts_ns, "action": action, "proposal_hash": proposal_hash,
            "revision": revision, "mode": mode, "outcome": None, "reason": "",
            "updated_ns": ts_ns, "payload": copy.deepcopy(dict(payload)),
            "recorded_ns": recorded}
        self._changed("proposals", decision_id, decision_id=decision_id)

    async def proposal(self, decision_id):
        return copy.deepcopy(self._proposals.get(decision_id))

    async def set_outcome(self, decision_id, outcome, reason, ts_ns, payload=None):
        row = self._proposals.get(decision_id)
        if row is None:
            raise StoreError(f"no decision {decision_id!r}")
        if row["outcome"] is not None:
            return False
        row.update(outcome=outcome, reason=reason, updated_ns=ts_ns)
        row["payload"].update(copy.deepcopy(dict(payload or {})))
        self._changed("proposals", decision_id, decision_id=decision_id)
        return True

    async def decisions(self, limit=50, *, undecided_only=False, offset=0, since_ns=None,
                        until_ns=None, symbol=None, outcome=None, run=None, by="market"):
        rows = [p for p in self._proposals.values()
                if not undecided_only or p["outcome"] is None]
        return _page(rows, limit, offset, since_ns, until_ns, self._window(run), by,
                     symbol=symbol, outcome=outcome)

    async def add_signature(self, decision_id, signature):
        if decision_id not in self._proposals:
            raise StoreError(f"signature for unknown decision {decision_id!r}")
        sigs = self._signatures.setdefault(decision_id, [])
        if any(s.signer == signature.signer and s.proposal_hash == signature.proposal_hash
               for s in sigs):
            return False
        sigs.append(signature)
        return True

    async def signatures(self, decision_id):
        return list(self._signatures.get(decision_id, ()))

    async def request_approval(self, approval):
        if approval.status not in APPROVAL_STATUSES:
            raise StoreError(f"approval status must be one of {APPROVAL_STATUSES}, "
                             f"got {approval.status!r}")
        if approval.decision_id not in self._proposals:
            raise StoreError(f"approval for unknown decision {approval.decision_id!r}")
        if approval.decision_id in self._approvals:
            return self._approvals[approval.decision_id]
        self._approvals[approval.decision_id] = approval
        self._changed("approvals", approval.decision_id, decision_id=approval.decision_id)
        return approval

    async def decide_approval(self, decision_id, *, approve, by, note, now_ns):
        a = self._approvals.get(decision_id)
        if a is None:
            raise StoreError(f"no approval is pending for decision {decision_id!r}")
        if a.status != "pending":
            return a
        self._approvals[decision_id] = _decided(a, approve, by, note, now_ns)
        self._changed("approvals", decision_id, decision_id=decision_id)
        return self._approvals[decision_id]

    async def approval(self, decision_id):
        return self._approvals.get(decision_id)

    async def pending_approvals(self):
        return sorted((a for a in self._approvals.values() if a.status == "pending"),
                      key=lambda a: (a.requested_ns, a.decision_id))

    async def record_order(self, decision_id, backend, order):
        if decision_id not in self._proposals:
            raise StoreError(f"order for unknown decision {decision_id!r}")
        if order.id in self._orders:
            return False
        self._orders[order.id] = order_row(decision_id, backend, order)
        self._arrived[("orders", order.id)] = self._now()
        self._changed("orders", order.id, decision_id=decision_id)
        return True

    async def update_order(self, backend, order):
        row = self._orders.get(order.id)
        if row is None:
            raise StoreError(f"no order {order.id!r}")
        new = order_row(row["proposal_id"], backend, order)
        row.update(status=new["status"], updated_ns=new["updated_ns"], payload=new["payload"])
        self._changed("orders", order.id, decision_id=row["proposal_id"])

    async def orders(self, decision_id):
        rows = [o for o in self._orders.values() if o["proposal_id"] == decision_id]
        return copy.deepcopy(sorted(rows, key=lambda o: (o["ts_ns"], o["client_order_id"])))

    async def record_fill(self, fill):
        if fill.order_id not in self._orders:
            raise StoreError(f"fill {fill.fill_id!r} for unknown order {fill.order_id!r}")
        if fill.fill_id in self._fills:
            return False
        self._fills[fill.fill_id] = fill_row(fill)
        self._arrived[("fills", fill.fill_id)] = self._now()
        self._changed("fills", fill.fill_id, order_id=fill.order_id,
                      decision_id=self._orders[fill.order_id]["proposal_id"])
        return True

    async def fills(self, client_order_id):
        rows = [f for f in self._fills.values() if f["client_order_id"] == client_order_id]
        return copy.deepcopy(sorted(rows, key=lambda f: (f["ts_ns"], f["id"])))

    async def save_position(self, backend, position, ts_ns):
        self._positions[(backend, position.symbol)] = {
            "symbol": position.symbol, "qty": position.qty,
            "avg_price": position.avg_price if position.avg_price == position.avg_price else 0.0,
            "realised_pnl": position.realised_pnl, "updated_ns": ts_ns}

    async def positions(self, backend):
        return {s: dict(row) for (b, s), row in self._positions.items() if b == backend}

    async def append_message(self, decision_id, sender, recipient, kind, payload, ts_ns):
        msg_id = next(self._ids)
        self._messages.append({"id": msg_id, "ts_ns": ts_ns, "decision_id": decision_id,
                               "sender": sender, "recipient": recipient, "kind": kind,
                               "payload": copy.deepcopy(dict(payload))})
        return msg_id

    async def messages(self, decision_id):
        return copy.deepcopy([m for m in self._messages if m["decision_id"] == decision_id])

    async def read_halt(self):
        return self._halt

    async def set_halt(self, reason, by, ts_ns):
        self._halt = HaltStatus(True, reason, by)
        self._announce(HALT, {"halted": True, "reason": reason, "set_by": by, "set_ns": ts_ns})

    async def resume(self, by, acknowledgement, ts_ns):
        _require_ack(by, acknowledgement)
        self._halt = HaltStatus(False, "", by)
        self._announce(HALT, {"halted": False, "reason": "", "set_by": by, "set_ns": ts_ns})

    async def heartbeat(self, component, ts_ns, detail=""):
        self._heartbeats[component] = (ts_ns, detail)

    async def heartbeats(self):
        return dict(self._heartbeats)

    async def dead_letter(self, ts_ns, source, reason, symbol, detail="", raw=""):
        self._dead.append({"id": len(self._dead) + 1, "ts_ns": ts_ns, "source": source,
                           "reason": reason, "symbol": symbol, "detail": detail, "raw": raw})

    async def dead_letters(self, limit=100, *, offset=0, since_ns=None):
        check_page(limit, offset, since_ns)
        rows = [d for d in reversed(self._dead) if _in_range(d["ts_ns"], since_ns, None)]
        return copy.deepcopy(rows[offset:offset + limit])

    async def counts(self, *, since_ns=None, until_ns=None, run=None):
        check_range(since_ns, until_ns)
        w = self._window(run)
        orders = [{**o, "recorded_ns": self._arrived[("orders", o["client_order_id"])]}
                  for o in self._orders.values()]
        fills = [f for f in self._fills.values() if _in_range(f["ts_ns"], since_ns, until_ns)
                 and _in_window({"recorded_ns": self._arrived[("fills", f["id"])]}, w)]
        return {
            "incidents": _tally(self._incidents.values(), "status", since_ns, until_ns, w),
            "verdicts": _tally(self._verdicts.values(), "class", since_ns, until_ns, w),
            "decisions": _tally(self._proposals.values(), "outcome", since_ns, until_ns, w,
                                none_as="undecided"),
            "orders": _tally(orders, "status", since_ns, until_ns, w),
            "fills": len(fills)}

    async def start_run(self, run_id, label="", *, started_ns=None, period_start_ns=None,
                        period_end_ns=None, payload=None):
        check_run_args(run_id, label, started_ns=started_ns, period_start_ns=period_start_ns,
                       period_end_ns=period_end_ns)
        if run_id not in self._runs:
            self._runs[run_id] = {
                "id": run_id, "label": label,
                "started_ns": self._now() if started_ns is None else started_ns,
                "ended_ns": None, "period_start_ns": period_start_ns,
                "period_end_ns": period_end_ns, "payload": copy.deepcopy(dict(payload or {}))}
            self._changed("runs", run_id)
        return copy.deepcopy(self._runs[run_id])

    async def end_run(self, run_id, *, ended_ns=None, period_start_ns=None,
                      period_end_ns=None):
        check_run_args(run_id, ended_ns=ended_ns, period_start_ns=period_start_ns,
                       period_end_ns=period_end_ns)
        row = self._runs.get(run_id)
        if row is None:
            raise StoreError(f"no run {run_id!r}")
        lo = row["period_start_ns"] if period_start_ns is None else period_start_ns
        hi = row["period_end_ns"] if period_end_ns is None else period_end_ns
        check_run_args(run_id, period_start_ns=lo, period_end_ns=hi)
        end = self._now() if ended_ns is None else ended_ns
        if row["ended_ns"] is None and end < row["started_ns"]:
            raise StoreError(f"ended_ns ({end}) must not be before started_ns "
                             f"({row['started_ns']})")
        if row["ended_ns"] is None:
            row["ended_ns"] = end
        row.update(period_start_ns=lo, period_end_ns=hi)
        self._changed("runs", run_id)
        return copy.deepcopy(row)

    async def run(self, run_id):
        return copy.deepcopy(self._runs.get(run_id))

    async def runs(self, limit=50, *, offset=0):
        check_page(limit, offset)
        rows = sorted(self._runs.values(), key=lambda r: (r["started_ns"], r["id"]),
                      reverse=True)
        return copy.deepcopy(rows[offset:offset + limit])

    async def claim_ingest_batch(self, batch_id, digest, owner, ts_ns):
        if batch_id in self._batches:
            return self._batches[batch_id]
        self._batches[batch_id] = IngestBatch(batch_id, digest, owner, ts_ns)
        return None

    async def finish_ingest_batch(self, batch_id, result, ts_ns):
        b = self._batches.get(batch_id)
        if b is None:
            raise StoreError(f"batch {batch_id!r} was never claimed")
        self._batches[batch_id] = IngestBatch(b.batch_id, b.digest, b.owner, b.claimed_ns,
                                              copy.deepcopy(dict(result)), ts_ns)

    async def ingest_batch(self, batch_id):
        return self._batches.get(batch_id)

    async def prune_ingest_batches(self, before_ns):
        old = [k for k, b in self._batches.items() if b.claimed_ns < before_ns]
        for k in old:
            del self._batches[k]
        return len(old)
