"""The orchestrator's HTTP API: one FastAPI app, whatever hosts it.

:func:`build_app` takes a :class:`Backend` — the deployment handles inside the Serve app
(:mod:`serve_apps.app`), or in-process objects for the plain-uvicorn baseline and tests —
and the decision store it reads from. Routes are versioned under ``/v1`` and documented at
``/docs``. Mutating routes need ``Authorization: Bearer <token>``; a wrong or missing token
is a bare 401. Every error body is ``{"error": {"code", "message", "field"}}``; a bad body
or query is a 422 naming the field.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve_apps.codec import ARROW_TYPE, TickCodecError, decode_arrow, decode_rows
from serve_apps.prometheus import exposition
from tripwire.llm.ledger import JsonlLedger
from tripwire.model import NewsItem, SymbolTable, new_id
from tripwire.store.decisions import DecisionStore, StoreError
from tripwire.timeparse import parse_time_ns
from tripwire.watchdog import acknowledgement_error

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
STREAM_POLL_S = 0.5
STREAM_PING_S = 15.0
STREAM_SEEN_MAX = 20_000  # ids remembered per stream; the oldest are forgotten first


class Backend(Protocol):
    """The stateful services behind the API (Serve deployment handles, or local objects)."""

    async def ingest(self, batch: Any) -> dict[str, Any]: ...
    async def news(self, items: list[NewsItem]) -> dict[str, int]: ...
    async def submit(self, incidents: list[dict[str, Any]]) -> list[dict[str, str]]: ...
    async def approve(self, decision_id: str, by: str, note: str) -> dict[str, Any]: ...
    async def reject(self, decision_id: str, by: str, note: str) -> dict[str, Any]: ...
    async def account(self) -> dict[str, Any]: ...
    async def positions(self) -> dict[str, Any]: ...
    async def pnl(self) -> dict[str, Any]: ...
    async def cancel_all(self) -> int: ...
    async def flatten(self) -> int: ...
    async def metrics(self) -> dict[str, Any]: ...
    async def ready(self) -> dict[str, str]: ...


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}},
                        status_code=status)


# -- bodies ------------------------------------------------------------------------------


class Answer(BaseModel):
    by: str = Field(min_length=1, max_length=100, description="who answers")
    note: str = Field(default="", max_length=2000)


class HaltBody(BaseModel):
    reason: str = Field(min_length=1, max_length=500)
    by: str = Field(default="operator", min_length=1, max_length=100)


class ResumeBody(BaseModel):
    by: str = Field(min_length=1, max_length=100)
    acknowledgement: str = Field(min_length=1, max_length=2000,
                                 description="must name the halt reason's code")


class NewsIn(BaseModel):
    id: str = Field(default="", max_length=64)
    ts_ns: int = Field(ge=0)
    headline: str = Field(min_length=1, max_length=500)
    symbols: list[str] = Field(default_factory=list, max_length=64)
    source: str = Field(default="", max_length=100)


class NewsBody(BaseModel):
    items: list[NewsIn] = Field(min_length=1, max_length=1000)


class IncidentsBody(BaseModel):
    incidents: list[dict[str, Any]] = Field(min_length=1, max_length=100)


# -- the app -----------------------------------------------------------------------------


def build_app(backend: Backend, store: DecisionStore, symbols: SymbolTable, *,
              token: str | Callable[[bytes], bool],
              ledger_path: Path | None = None, title: str = "Tripwire") -> FastAPI:
    if not token:
        raise ValueError("the API needs a bearer token for its mutating routes (set "
                         "TRIPWIRE_API_TOKEN)")
    app = FastAPI(title=title, version="1", description=__doc__)
    _errors(app)
    # A callable is a verifier (serve_apps.bearer.TokenVerifier): the Serve ingress never
    # holds the token itself, only a salted digest of it.
    auth = _auth(token if callable(token) else _equals(token.encode()))
    _health_routes(app, backend, store)
    _read_routes(app, backend, store, ledger_path)
    _write_routes(app, backend, store, symbols, auth)
    _stream_route(app, store)
    if CONSOLE_DIR.is_dir():
        app.mount("/console", StaticFiles(directory=CONSOLE_DIR), name="console")

        @app.get("/", include_in_schema=False)
        async def console() -> FileResponse:
            return FileResponse(CONSOLE_DIR / "index.html")
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        msg = f"{field or 'request'}: {first.get('msg', 'invalid')}"
        return _error(422, "invalid", msg, field)

    @app.exception_handler(ApiError)
    async def api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(StoreError)
    async def store_error(_req: Request, exc: StoreError) -> JSONResponse:
        return _error(422, "invalid", str(exc))  # the store refused an argument

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))


def _equals(token: bytes) -> Callable[[bytes], bool]:
    return lambda given: hmac.compare_digest(given, token)


def _auth(check: Callable[[bytes], bool]):
    async def require(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not check(given.strip().encode()):
            raise ApiError(401, "unauthorized", "a valid bearer token is required")
    return Depends(require)


class Page:
    """``limit``/``offset``/``since``/``until``/``symbol``/``run`` of a list route.

    Lists come newest first by arrival (when the row was written), not by market time: a
    replay's rows carry its market's time, and an older run's later market must not hide
    the current run. ``since``/``until`` still select by market time.
    """

    def __init__(self, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
                 since: str | None = Query(None, description="ns since epoch or ISO-8601"),
                 until: str | None = Query(None, description="ns since epoch or ISO-8601"),
                 symbol: str | None = Query(None, max_length=64),
                 run: str | None = Query(None, min_length=1, max_length=100,
                                         description="only rows of this run (/v1/runs)")
                 ) -> None:
        self.limit, self.offset, self.symbol, self.run = limit, offset, symbol, run
        self.since_ns = _time(since, "since")
        self.until_ns = _time(until, "until")

    def kw(self) -> dict[str, Any]:
        return {"offset": self.offset, "since_ns": self.since_ns, "until_ns": self.until_ns,
                "symbol": self.symbol, "run": self.run, "by": "arrival"}

    def wrap(self, items: list[Any]) -> dict[str, Any]:
        more = len(items) == self.limit
        return {"items": items, "limit": self.limit, "offset": self.offset,
                "next_offset": self.offset + self.limit if more else None}


PageDep = Annotated[Page, Depends()]


def _time(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        ns = parse_time_ns(text)
    except ValueError as exc:
        raise ApiError(422, "invalid", f"{name}: {exc}", name) from None
    if not 0 <= ns < 2**63:
        raise ApiError(422, "invalid", f"{name}: {text!r} is outside 1970..2262 (int64 ns)", name)
    return ns


def _health_routes(app: FastAPI, backend: Backend, store: DecisionStore) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await store.read_halt()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            checks.update(await asyncio.wait_for(backend.ready(), 5.0))
        except Exception as exc:
            checks["services"] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(exposition(await backend.metrics()),
                                 media_type="text/plain; version=0.0.4")


def _read_routes(app: FastAPI, backend: Backend, store: DecisionStore,
                 ledger_path: Path | None) -> None:
    @app.get("/v1/incidents", tags=["read"])
    async def incidents(page: PageDep, status: str | None = None) -> dict[str, Any]:
        return page.wrap(await store.incidents(page.limit, status=status, **page.kw()))

    @app.get("/v1/incidents/{incident_id}", tags=["read"])
    async def incident(incident_id: str) -> dict[str, Any]:
        row = await store.incident(incident_id)
        if row is None:
            raise ApiError(404, "not_found", f"no incident {incident_id}")
        return {**row, "verdicts": await store.verdicts_of(incident_id)}

    @app.get("/v1/verdicts", tags=["read"])
    async def verdicts(page: PageDep,
                       classification: str | None = None) -> dict[str, Any]:
        rows = await store.verdicts(page.limit, classification=classification, **page.kw())
        return page.wrap(rows)

    @app.get("/v1/decisions", tags=["read"])
    async def decisions(page: PageDep, outcome: str | None = None) -> dict[str, Any]:
        rows = await store.decisions(page.limit, outcome=outcome, **page.kw())
        waiting = {a.decision_id for a in await store.pending_approvals()}
        return page.wrap([{**r, "awaiting_approval": r["id"] in waiting} for r in rows])

    @app.get("/v1/decisions/{decision_id}", tags=["read"])
    async def decision(decision_id: str) -> dict[str, Any]:
        chain = await store.chain(decision_id)
        if chain is None:
            raise ApiError(404, "not_found", f"no decision {decision_id}")
        return _jsonable(chain)

    @app.get("/v1/approvals", tags=["read"])
    async def approvals() -> dict[str, Any]:
        return {"items": [_jsonable(a) for a in await store.pending_approvals()]}

    @app.get("/v1/positions", tags=["read"])
    async def positions() -> dict[str, Any]:
        return await backend.positions()

    @app.get("/v1/pnl", tags=["read"])
    async def pnl() -> dict[str, Any]:
        return await backend.pnl()

    @app.get("/v1/account", tags=["read"])
    async def account() -> dict[str, Any]:
        return await backend.account()

    @app.get("/v1/llm/costs", tags=["read"])
    async def llm_costs(since: str | None = None) -> dict[str, Any]:
        return await _llm_costs(ledger_path, _time(since, "since"))

    @app.get("/v1/dead-letters", tags=["read"])
    async def dead_letters(page: PageDep) -> dict[str, Any]:
        rows = await store.dead_letters(page.limit, offset=page.offset, since_ns=page.since_ns)
        return page.wrap(rows)

    @app.get("/v1/halt", tags=["read"])
    async def halt() -> dict[str, Any]:
        return await _halt(store)

    @app.get("/v1/runs", tags=["read"])
    async def runs(limit: int = Query(50, ge=1, le=500),
                   offset: int = Query(0, ge=0)) -> dict[str, Any]:
        """Runs (a demo, a service start), newest first; lists take ``run=<id>``."""
        rows = await store.runs(limit, offset=offset)
        return {"items": rows, "limit": limit, "offset": offset,
                "next_offset": offset + limit if len(rows) == limit else None}


async def _halt(store: DecisionStore) -> dict[str, Any]:
    h = await store.read_halt()
    return {"halted": h.halted, "reason": h.reason, "set_by": h.by}


async def _llm_costs(path: Path | None, since_ns: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "usd": 0.0,
                           "by_route": {}}
    if path is None or not path.exists():
        return out
    for r in await JsonlLedger(path).summarise(since_ns, None, by=("route",)):
        row = r.as_dict()
        out["by_route"][row["route"]] = row
        out["calls"] += r.calls
        out["tokens_in"] += r.input_tokens
        out["tokens_out"] += r.output_tokens
        out["usd"] += r.cost_usd
    return out


def _write_routes(app: FastAPI, backend: Backend, store: DecisionStore, symbols: SymbolTable,
                  auth: Any) -> None:
    @app.post("/v1/ticks", tags=["write"], dependencies=[auth],
              openapi_extra={"requestBody": {"content": {
                  "application/json": {"schema": {"type": "object"}},
                  ARROW_TYPE: {"schema": {"type": "string", "format": "binary"}}}}})
    async def ticks(request: Request) -> dict[str, Any]:
        body = await request.body()
        try:
            if request.headers.get("content-type", "").startswith(ARROW_TYPE):
                decoded = decode_arrow(body, symbols)
            else:
                decoded = decode_rows(body, symbols)
        except TickCodecError as exc:
            raise ApiError(422, "invalid", str(exc), exc.field) from None
        for d in decoded.unknown:
            await store.dead_letter(d.ts_ns, "http", d.reason.value, d.symbol, d.detail, d.raw)
        try:
            result = await backend.ingest(decoded.batch)
        except ValueError as exc:
            raise ApiError(422, "invalid", str(exc), "ticks") from None
        result["rejected"] += len(decoded.unknown)
        return result

    @app.post("/v1/news", tags=["write"], dependencies=[auth])
    async def news(body: NewsBody) -> dict[str, int]:
        items = [NewsItem(n.id or new_id(), n.ts_ns, n.headline, tuple(n.symbols), n.source)
                 for n in body.items]
        # Headlines outside the feed's time window are dead letters (bad_time), not taken.
        return await backend.news(items)

    @app.post("/v1/incidents", tags=["write"], dependencies=[auth])
    async def submit(body: IncidentsBody) -> dict[str, Any]:
        try:
            return {"items": await backend.submit(body.incidents)}
        except ValueError as exc:  # pydantic's ValidationError is one
            raise ApiError(422, "invalid", f"incidents: {exc}"[:2000], "incidents") from None

    @app.post("/v1/decisions/{decision_id}/approve", tags=["write"], dependencies=[auth])
    async def approve(decision_id: str, body: Answer) -> dict[str, Any]:
        return await _answer(backend.approve, decision_id, body)

    @app.post("/v1/decisions/{decision_id}/reject", tags=["write"], dependencies=[auth])
    async def reject(decision_id: str, body: Answer) -> dict[str, Any]:
        return await _answer(backend.reject, decision_id, body)

    @app.post("/v1/halt", tags=["write"], dependencies=[auth])
    async def halt(body: HaltBody) -> dict[str, Any]:
        reason = body.reason if ":" in body.reason else f"operator: {body.reason}"
        await store.set_halt(reason, body.by, _now())
        return await _halt(store)

    @app.post("/v1/resume", tags=["write"], dependencies=[auth])
    async def resume(body: ResumeBody) -> dict[str, Any]:
        current = await store.read_halt()
        if not current.halted:
            raise ApiError(409, "not_halted", "trading is not halted")
        problem = acknowledgement_error(current.reason, body.acknowledgement)
        if problem is not None:
            raise ApiError(409, "acknowledgement_required", problem, "acknowledgement")
        try:
            await store.resume(body.by, body.acknowledgement, _now())
        except StoreError as exc:
            raise ApiError(409, "acknowledgement_required", str(exc), "acknowledgement") from None
        return await _halt(store)

    @app.post("/v1/orders/cancel-all", tags=["write"], dependencies=[auth])
    async def cancel_all() -> dict[str, int]:
        return {"cancelled": await backend.cancel_all()}

    @app.post("/v1/positions/flatten", tags=["write"], dependencies=[auth])
    async def flatten() -> dict[str, int]:
        return {"orders": await backend.flatten()}


async def _answer(fn: Any, decision_id: str, body: Answer) -> dict[str, Any]:
    try:
        return await fn(decision_id, body.by, body.note)
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except ValueError as exc:
        raise ApiError(409, "conflict", str(exc)) from None


def _stream_route(app: FastAPI, store: DecisionStore) -> None:
    @app.get("/v1/stream", tags=["read"])
    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(_events(store, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})


async def _events(store: DecisionStore, request: Request) -> AsyncIterator[str]:
    """New or changed incidents, verdicts, decisions and the halt flag, as SSE events.

    It polls the store (every replica of the ingress sees every writer's rows the same
    way); a row is sent when first seen and again when its status or outcome changes.
    """
    seen: dict[str, Any] = {}
    waited = STREAM_PING_S
    yield "retry: 2000\n\n"
    while not await request.is_disconnected():
        sent = False
        for event, rows in await _latest(store):
            for row in reversed(rows):  # oldest first
                key = f"{event}:{row.get('id', '')}"
                state = (row.get("status"), row.get("outcome"), row.get("halted"),
                         row.get("awaiting_approval"))
                if key in seen and seen[key] == state:
                    continue
                seen[key] = state
                sent = True
                yield f"event: {event}\ndata: {json.dumps(_jsonable(row))}\n\n"
        while len(seen) > STREAM_SEEN_MAX:
            seen.pop(next(iter(seen)))
        waited = 0.0 if sent else waited + STREAM_POLL_S
        if waited >= STREAM_PING_S:
            waited = 0.0
            yield "event: ping\ndata: {}\n\n"
        await asyncio.sleep(STREAM_POLL_S)


async def _latest(store: DecisionStore) -> list[tuple[str, list[dict[str, Any]]]]:
    halt = await _halt(store)
    waiting = {a.decision_id for a in await store.pending_approvals()}
    decisions = [{**d, "awaiting_approval": d["id"] in waiting}
                 for d in await store.decisions(20, by="arrival")]
    return [("incident", await store.incidents(20, by="arrival")),
            ("verdict", await store.verdicts(20, by="arrival")),
            ("decision", decisions), ("halt", [{"id": "flag", **halt}])]


def _jsonable(x: Any) -> Any:
    from graphs.signoff import jsonable

    return jsonable(x)


def _now() -> int:
    import time

    return time.time_ns()
