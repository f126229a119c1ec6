"""The orchestrator's HTTP API: one FastAPI app, whatever hosts it.

:func:`build_app` takes a :class:`Backend` — the deployment handles inside the Serve app
(:mod:`serve_apps.app`), or in-process objects for the plain-uvicorn baseline and tests —
and the decision store it reads from. Routes are versioned under ``/v1`` and documented at
``/docs``. Mutating routes need ``Authorization: Bearer <token>``; a wrong or missing token
is a bare 401. Every error body is ``{"error": {"code", "message", "field"}}``; a bad body
or query is a 422 naming the field.

The contract (:mod:`serve_apps.contract`): mutating routes check the token before the body
is read; every text field, query and path parameter is under one text rule (no control
characters but tab/LF/CR, no unpaired surrogates) and every integer is int64, else a 422
naming the field; a database outage is a 503 ``database_unavailable``, a dead or overloaded
deployment a 503 ``service_unavailable``; every route documents its 4xx/5xx answers with the
error body; a 405 carries ``Allow``. ``POST /v1/ticks`` with an ``Idempotency-Key`` header
(or a ``batch_id`` field) is applied at most once: a retry gets the first answer
(``Idempotent-Replayed: true``), see :meth:`actors.dataplane.DataPlane.ingest_once`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from serve_apps.codec import ARROW_TYPE, TickCodecError, decode_arrow, decode_rows
from serve_apps.contract import (
    INT64_MAX,
    KEY_PATTERN,
    TEXT_PATTERN,
    Text,
    error_schemas,
    first_problem,
    key_error,
    responses,
    text_error,
)
from serve_apps.errors import is_database_outage, is_service_outage, unwrap
from serve_apps.news_webhook import PATH as NEWS_WEBHOOK_PATH
from serve_apps.news_webhook import add_news_webhook
from serve_apps.prometheus import CONTENT_TYPE, exposition
from serve_apps.stream import REFRESH, RESYNC, StreamHub
from tripwire.incident import Incident
from tripwire.llm.ledger import JsonlLedger
from tripwire.model import DeadLetter, NewsItem, SymbolTable, new_id
from tripwire.store.decisions import DecisionStore, StoreError
from tripwire.timeparse import parse_time_ns
from tripwire.watchdog import acknowledgement_error

# Routes that authenticate their caller by a signature over the body, not the bearer token.
SIGNED_PATHS = frozenset({NEWS_WEBHOOK_PATH})
CONSOLE_DIR = Path(__file__).resolve().parent / "console"
STREAM_PING_S = 15.0  # a keep-alive comment while nothing changes (no query behind it)
STREAM_READY_S = 5.0  # a new stream waits this long for the replica's listener to start
STREAM_SEEN_MAX = 20_000  # ids remembered per stream; the oldest are forgotten first


class Backend(Protocol):
    """The stateful services behind the API (Serve deployment handles, or local objects)."""

    async def ingest(self, batch: Any, *, batch_id: str | None = None, digest: str = "",
                     dead: list[DeadLetter] | None = None) -> tuple[dict[str, Any], bool]:
        """(result, replayed): ``dead`` are the batch's rows refused before it (recorded
        and counted with it); a ``batch_id`` seen before gets its first result back."""
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
    by: Text = Field(min_length=1, max_length=100, description="who answers")
    note: Text = Field(default="", max_length=2000)


class HaltBody(BaseModel):
    reason: Text = Field(min_length=1, max_length=500)
    by: Text = Field(default="operator", min_length=1, max_length=100)


class ResumeBody(BaseModel):
    by: Text = Field(min_length=1, max_length=100)
    acknowledgement: Text = Field(min_length=1, max_length=2000,
                                 description="must name the halt reason's code")


class NewsIn(BaseModel):
    id: Text = Field(default="", max_length=64)
    ts_ns: int = Field(ge=0, le=INT64_MAX)
    headline: Text = Field(min_length=1, max_length=500)
    symbols: list[Text] = Field(default_factory=list, max_length=64)
    source: Text = Field(default="", max_length=100)


class NewsBody(BaseModel):
    items: list[NewsIn] = Field(min_length=1, max_length=1000)


class IncidentsBody(BaseModel):
    incidents: list[dict[str, Any]] = Field(
        min_length=1, max_length=100,
        description="each an Incident (tripwire.incident.Incident), checked here")


class Readiness(BaseModel):
    """``/readyz``'s answer, 200 or 503 alike."""

    ready: bool
    checks: dict[str, str]


# -- the app -----------------------------------------------------------------------------


def build_app(backend: Backend, store: DecisionStore, symbols: SymbolTable, *,
              token: str | Callable[[bytes], bool],
              ledger_path: Path | None = None, title: str = "Tripwire",
              news_table: Mapping[str, Any] | None = None,
              replay_dsn: str | None = None) -> FastAPI:
    """The API. ``news_table`` (raw ``[news]``: its aliases tag webhook headlines) and
    ``replay_dsn`` (the webhook's shared replay memory) go to :mod:`serve_apps.news_webhook`."""
    if not token:
        raise ValueError("the API needs a bearer token for its mutating routes (set "
                         "TRIPWIRE_API_TOKEN)")
    app = FastAPI(title=title, version="1", description=__doc__)
    _errors(app)
    # A callable is a verifier (serve_apps.bearer.TokenVerifier): the Serve ingress never
    # holds the token itself, only a salted digest of it.
    check = token if callable(token) else _equals(token.encode())
    auth = _auth(check)
    _health_routes(app, backend, store)
    _read_routes(app, backend, store, ledger_path)
    _write_routes(app, backend, store, symbols, auth)
    # Pushed news: signed with HMAC (serve_apps.news_webhook), not with the bearer token.
    add_news_webhook(app, lambda items: backend.news(items), ApiError,
                     news_table=news_table, replay_dsn=replay_dsn)
    _stream_route(app, store)
    _auth_first(app, check)
    _document(app)
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
    async def http_error(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "unparsable_body", 401: "unauthorized", 404: "not_found",
                405: "method_not_allowed", 413: "too_large",
                415: "unsupported_media_type"}.get(exc.status_code, "http_error")
        out = _error(exc.status_code, code, str(exc.detail))
        out.headers.update(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route of the path
            out.headers["Allow"] = _allowed(app, req)
        return out

    # Faults: from the handlers themselves or, unwrapped, from a Serve replica behind them.
    for kind in _FAULTS:
        app.add_exception_handler(kind, _fault)
    app.add_exception_handler(Exception, _fault)  # the last resort: a JSON 500


def _allowed(app: FastAPI, request: Request) -> str:
    """Every method some route of the request's path answers (a 405's ``Allow``)."""
    from starlette.routing import Match, Route

    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= route.methods
    return ", ".join(sorted(methods))


def _fault_kinds() -> tuple[type[BaseException], ...]:
    import asyncpg
    from ray.exceptions import RayError

    return (RayError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, RuntimeError,
            ValueError, LookupError, ValidationError)


_FAULTS = _fault_kinds()


async def _fault(_req: Request, exc: Exception) -> JSONResponse:
    """What a fault means for the caller; nothing secret (no DSN, no token) in the body."""
    from actors.dataplane import BatchKeyReused, BatchNotRecorded, BatchOutcomeUnknown

    cause = unwrap(exc)
    if isinstance(cause, ApiError):
        return _error(cause.status, cause.code, cause.message, cause.field)
    if isinstance(cause, BatchKeyReused):
        return _error(422, "idempotency_key_reused", str(cause), "Idempotency-Key")
    if isinstance(cause, BatchOutcomeUnknown):
        return _error(409, "batch_outcome_unknown", str(cause), "Idempotency-Key")
    if isinstance(cause, BatchNotRecorded):
        return _error(503, "database_unavailable", str(cause))
    if isinstance(cause, StoreError):
        return _error(422, "invalid", str(cause))
    if isinstance(cause, ValidationError):
        err = cause.errors()[0] if cause.errors() else {}
        where = ".".join(str(p) for p in err.get("loc", ())) or None
        return _error(422, "invalid", f"{where or 'request'}: {err.get('msg', 'invalid')}",
                      where)
    if is_database_outage(cause):
        return _error(503, "database_unavailable",
                      "the database is unavailable; nothing was written, retry later")
    if is_service_outage(cause):
        return _error(503, "service_unavailable",
                      "a service behind the API is unavailable or overloaded; retry later")
    return _error(500, "internal", f"internal error ({type(cause).__name__}); see the "
                                   "service log")


def _equals(token: bytes) -> Callable[[bytes], bool]:
    return lambda given: hmac.compare_digest(given, token)


def _auth(check: Callable[[bytes], bool]):
    async def require(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not check(given.strip().encode()):
            raise ApiError(401, "unauthorized", "a valid bearer token is required")
    return Depends(require)


_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def _auth_first(app: FastAPI, check: Callable[[bytes], bool]) -> None:
    """Every mutating route checks the bearer token before anything reads its body, so a
    caller without the token learns nothing (a malformed body is a 401, not a 400/422)."""
    for route in app.routes:
        if isinstance(route, APIRoute) and route.methods & _MUTATING \
                and route.path not in SIGNED_PATHS:
            route.app = _guarded(route.app, check)
            route.openapi_extra = {**(route.openapi_extra or {}),
                                   "security": [{"bearer": []}]}


def _guarded(inner: ASGIApp, check: Callable[[bytes], bool]) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        _authorize(Request(scope).headers.get("authorization", ""), check)
        await inner(scope, receive, send)
    return guarded


def _authorize(header: str, check: Callable[[bytes], bool]) -> None:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not check(given.strip().encode()):
        raise ApiError(401, "unauthorized", "a valid bearer token is required")


def _document(app: FastAPI) -> None:
    """Every route's 4xx/5xx answers with the error body in the OpenAPI schema (a route's
    own ``responses`` win), and the bearer scheme the mutating routes name."""
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        codes = {404} if "{" in route.path else set()
        if route.dependant.query_params or route.dependant.path_params or route.body_field \
                or route.dependencies or route.methods & _MUTATING:
            codes.add(422)
        if route.methods & _MUTATING:
            codes |= {400, 401, 409}
        route.responses = {**responses(*codes), **route.responses}
    openapi = app.openapi

    def with_bearer() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = openapi()
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(error_schemas())
            components.setdefault("securitySchemes", {})["bearer"] = {"type": "http",
                                                                      "scheme": "bearer"}
        return app.openapi_schema

    app.openapi = with_bearer  # type: ignore[method-assign]


def _text(value: str | None, name: str) -> str | None:
    """A query or path parameter under the text rule (422 naming it)."""
    if value is not None:
        problem = text_error(value)
        if problem is not None:
            raise ApiError(422, "invalid", f"{name}: {problem}", name)
    return value


def _q(default: Any = None, **kw: Any) -> Any:
    """A text query parameter: the text rule's pattern in the schema, checked by _text."""
    return Query(default, json_schema_extra={"pattern": TEXT_PATTERN}, **kw)


class Page:
    """``limit``/``offset``/``since``/``until``/``symbol``/``run`` of a list route.

    Lists come newest first by arrival (when the row was written), not by market time: a
    replay's rows carry its market's time, and an older run's later market must not hide
    the current run. ``since``/``until`` still select by market time.
    """

    def __init__(self, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
                 since: str | None = Query(None, description="ns since epoch or ISO-8601"),
                 until: str | None = Query(None, description="ns since epoch or ISO-8601"),
                 symbol: str | None = _q(max_length=64),
                 run: str | None = _q(min_length=1, max_length=100,
                                      description="only rows of this run (/v1/runs)")
                 ) -> None:
        self.limit, self.offset = limit, offset
        self.symbol, self.run = _text(symbol, "symbol"), _text(run, "run")
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
    _text(text, name)
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

    @app.get("/readyz", tags=["health"], response_model=Readiness,
             responses={503: {"model": Readiness, "description": "not ready: which check "
                                                                 "failed"}})
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
                                 media_type=CONTENT_TYPE)


def _read_routes(app: FastAPI, backend: Backend, store: DecisionStore,
                 ledger_path: Path | None) -> None:
    @app.get("/v1/incidents", tags=["read"])
    async def incidents(page: PageDep, status: str | None = _q(max_length=64)
                        ) -> dict[str, Any]:
        rows = await store.incidents(page.limit, status=_text(status, "status"), **page.kw())
        return page.wrap(rows)

    @app.get("/v1/incidents/{incident_id}", tags=["read"])
    async def incident(incident_id: str) -> dict[str, Any]:
        row = await store.incident(_text(incident_id, "incident_id"))
        if row is None:
            raise ApiError(404, "not_found", f"no incident {incident_id}")
        return {**row, "verdicts": await store.verdicts_of(incident_id)}

    @app.get("/v1/verdicts", tags=["read"])
    async def verdicts(page: PageDep, classification: str | None = _q(max_length=64)
                       ) -> dict[str, Any]:
        rows = await store.verdicts(page.limit, classification=_text(
            classification, "classification"), **page.kw())
        return page.wrap(rows)

    @app.get("/v1/decisions", tags=["read"])
    async def decisions(page: PageDep, outcome: str | None = _q(max_length=64)
                        ) -> dict[str, Any]:
        rows = await store.decisions(page.limit, outcome=_text(outcome, "outcome"),
                                     **page.kw())
        waiting = {a.decision_id for a in await store.pending_approvals()}
        return page.wrap([{**r, "awaiting_approval": r["id"] in waiting} for r in rows])

    @app.get("/v1/decisions/{decision_id}", tags=["read"])
    async def decision(decision_id: str) -> dict[str, Any]:
        chain = await store.chain(_text(decision_id, "decision_id"))
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
    async def llm_costs(since: str | None = _q()) -> dict[str, Any]:
        return await _llm_costs(store, ledger_path, _time(since, "since"))

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


async def _llm_costs(store: DecisionStore, path: Path | None,
                     since_ns: int | None) -> dict[str, Any]:
    """The cluster's LLM spend from PostgreSQL (``llm_calls`` and today's shared budget rows,
    written by every replica); a store without a database falls back to the JSONL ledger."""
    spend = getattr(store, "llm_spend", None)
    if spend is not None:
        report = await spend(since_ns, by=("route",))
        rows = report.pop("rows")
        return {**report, "by_route": {r["route"]: r for r in rows}}
    out: dict[str, Any] = {"source": "jsonl", "calls": 0, "tokens_in": 0, "tokens_out": 0,
                           "usd": 0.0, "by_route": {}}
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
              responses={200: {"headers": {"Idempotent-Replayed": {
                  "description": "true: the answer of an earlier request with this key",
                  "schema": {"type": "string"}}}}},
              openapi_extra={"parameters": [{
                  "name": "Idempotency-Key", "in": "header", "required": False,
                  "description": "the batch's id: a retry with it is applied at most once "
                                 "and gets the first answer",
                  "schema": {"type": "string", "pattern": KEY_PATTERN}}],
                  "requestBody": {"content": {
                      "application/json": {"schema": {"type": "object"}},
                      ARROW_TYPE: {"schema": {"type": "string", "format": "binary"}}}}})
    async def ticks(request: Request, response: Response) -> dict[str, Any]:
        body = await request.body()
        arrow = request.headers.get("content-type", "").startswith(ARROW_TYPE)
        try:
            decoded = decode_arrow(body, symbols) if arrow else decode_rows(body, symbols)
        except TickCodecError as exc:
            raise ApiError(422, "invalid", str(exc), exc.field) from None
        key = _batch_id(request.headers.get("idempotency-key"), decoded.batch_id)
        try:
            result, replayed = await backend.ingest(
                decoded.batch, batch_id=key, digest=decoded.digest() if key else "",
                dead=list(decoded.unknown))
        except ValueError as exc:
            cause = unwrap(exc)
            if type(cause) is not ValueError:
                raise  # a BatchKeyReused or a ValidationError: the fault handler says which
            raise ApiError(422, "invalid", str(cause), "ticks") from None
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return result

    @app.post("/v1/news", tags=["write"], dependencies=[auth])
    async def news(body: NewsBody) -> dict[str, int]:
        items = [NewsItem(n.id or new_id(), n.ts_ns, n.headline, tuple(n.symbols), n.source)
                 for n in body.items]
        # Headlines outside the feed's time window are dead letters (bad_time), not taken.
        return await backend.news(items)

    @app.post("/v1/incidents", tags=["write"], dependencies=[auth])
    async def submit(body: IncidentsBody) -> dict[str, Any]:
        for i, raw in enumerate(body.incidents):  # refused here, before any replica sees it
            _check_incident(i, raw)
        try:
            return {"items": await backend.submit(body.incidents)}
        except ValueError as exc:  # pydantic's ValidationError is one
            cause = unwrap(exc)
            raise ApiError(422, "invalid", f"incidents: {cause}"[:2000], "incidents") from None

    @app.post("/v1/decisions/{decision_id}/approve", tags=["write"], dependencies=[auth])
    async def approve(decision_id: str, body: Answer) -> dict[str, Any]:
        return await _answer(backend.approve, _text(decision_id, "decision_id"), body)

    @app.post("/v1/decisions/{decision_id}/reject", tags=["write"], dependencies=[auth])
    async def reject(decision_id: str, body: Answer) -> dict[str, Any]:
        return await _answer(backend.reject, _text(decision_id, "decision_id"), body)

    @app.post("/v1/halt", tags=["write"], dependencies=[auth])
    async def halt(body: HaltBody) -> dict[str, Any]:
        reason = body.reason if ":" in body.reason else f"operator: {body.reason}"
        await store.set_halt(reason, body.by, _now())  # set, or a fault (503): never half
        return {"halted": True, "reason": reason, "set_by": body.by}

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


def _batch_id(header: str | None, field: str | None) -> str | None:
    """The batch's id: the Idempotency-Key header or the body's ``batch_id`` (422 when
    malformed or when both are given and differ)."""
    for value, name in ((header, "Idempotency-Key"), (field, "batch_id")):
        if value is not None and key_error(value) is not None:
            raise ApiError(422, "invalid", f"{name}: {key_error(value)}", name)
    if header is not None and field is not None and header != field:
        raise ApiError(422, "invalid", "batch_id: differs from the Idempotency-Key header",
                       "batch_id")
    return header if header is not None else field


def _check_incident(i: int, raw: dict[str, Any]) -> None:
    """An incident body is refused whole (422 naming the field) unless it is an
    :class:`Incident` whose text is under the text rule and whose integers are int64."""
    bad = first_problem(raw, f"incidents.{i}")
    if bad is not None:
        raise ApiError(422, "invalid", f"{bad[0]}: {bad[1]}", bad[0])
    try:
        Incident.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(["incidents", str(i), *(str(p) for p in err["loc"])])
        raise ApiError(422, "invalid", f"{where}: {err['msg']}", where) from None


async def _answer(fn: Any, decision_id: str, body: Answer) -> dict[str, Any]:
    try:
        return await fn(decision_id, body.by, body.note)
    except (LookupError, ValueError) as exc:
        cause = unwrap(exc)
        if isinstance(cause, LookupError):
            raise ApiError(404, "not_found", str(cause)) from None
        if isinstance(cause, ValidationError):
            raise
        raise ApiError(409, "conflict", str(cause)) from None


def _stream_route(app: FastAPI, store: DecisionStore) -> None:
    # One hub per app, i.e. per ingress replica: one LISTEN connection for all its streams.
    hub = StreamHub(store, lambda: _snapshot(store), _render)
    app.state.stream_hub = hub
    app.router.on_shutdown.append(hub.close)  # gives its pooled connection back

    @app.get("/v1/stream", tags=["read"])
    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(_events(store, hub, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})


async def _events(store: DecisionStore, hub: StreamHub, request: Request
                  ) -> AsyncIterator[str]:
    """Incidents, verdicts, decisions and the halt flag as SSE events, woken by NOTIFY.

    First the latest rows (read once, after the replica's listener is up so nothing falls
    in between), then every change as the hub announces it: ``incident``, ``verdict``,
    ``decision`` (with ``awaiting_approval``), ``halt`` carry the row; ``order``, ``fill``
    and ``run`` carry the note (ids) for views to re-read; ``refresh`` says the listener
    was lost or this stream fell behind, and the latest rows follow. A row already sent is
    sent again only when its status, outcome, halt or approval state changed. While nothing
    changes, a ``ping`` every :data:`STREAM_PING_S` and no query.
    """
    client = hub.subscribe()
    try:
        await hub.ready(STREAM_READY_S)  # not listening yet: the refresh after covers it
        seen: dict[str, Any] = {}
        yield "retry: 2000\n\n"
        for text in _fresh(seen, await _snapshot(store)):
            yield text
        while True:
            item = await client.next(STREAM_PING_S)
            if item is None:
                if await request.is_disconnected():
                    return
                yield "event: ping\ndata: {}\n\n"
            elif item == RESYNC:
                yield "event: refresh\ndata: {}\n\n"
                for text in _fresh(seen, await _snapshot(store)):
                    yield text
            elif item == REFRESH:
                yield "event: refresh\ndata: {}\n\n"
            else:
                for text in _fresh(seen, [item]):
                    yield text
    finally:
        hub.unsubscribe(client)


def _render(event: str, row: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(_jsonable(row))}\n\n"


def _fresh(seen: dict[str, Any], events: list[tuple[Any, ...]]) -> list[str]:
    """The SSE texts of ``events`` not sent before in the same state (bounded memory); an
    event may carry its text already rendered (the hub renders once for every stream)."""
    out = []
    for event, row, *text in events:
        if event in ("incident", "verdict", "decision", "halt"):
            key = f"{event}:{row.get('id', '')}"
            state = (row.get("status"), row.get("outcome"), row.get("halted"),
                     row.get("awaiting_approval"), row.get("reason"))
            if seen.get(key, ()) == state:
                continue
            seen.pop(key, None)  # re-inserted last: the oldest are forgotten first
            seen[key] = state
        out.append(text[0] if text else _render(event, row))
    while len(seen) > STREAM_SEEN_MAX:
        seen.pop(next(iter(seen)))
    return out


async def _snapshot(store: DecisionStore) -> list[tuple[str, dict[str, Any]]]:
    """The latest rows as events, oldest first."""
    return [(event, row) for event, rows in await _latest(store) for row in reversed(rows)]


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
