"""The API's contract at its edge, over real HTTP on the live Serve app (fixture ``serve_app``).

Bad bytes and numbers are 422s naming the field and write nothing; auth comes before the
body; 405s say what is allowed; the OpenAPI schema documents every error answer; ingest is
idempotent by batch id, through a database outage too (the session's PostgreSQL is stopped
and started again on the same port).
"""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import Any

import httpx
import pyarrow as pa
import pytest

from serve_apps.api import SIGNED_PATHS
from tests.graphs.harness import PRICE, SYMBOL, news_incident
from tests.serve_apps.conftest import LiveApp

pytestmark = pytest.mark.timeout(300)

NUL = "a\x00b"


def _incident(**update: Any) -> dict[str, Any]:
    body = news_incident().model_copy(update={"ts_ns": time.time_ns()}).model_dump(mode="json")
    body.update(update)
    return body


def _tick(**update: Any) -> dict[str, Any]:
    return {"symbol": SYMBOL, "ts_ns": time.time_ns(), "price": PRICE, "qty": 1.0, **update}


def _news(**update: Any) -> dict[str, Any]:
    return {"items": [{"ts_ns": time.time_ns(), "headline": "ETH upgrade ships",
                       "symbols": [SYMBOL], "source": "wire", **update}]}


# (path, JSON body, the field the 422 must name): one per text field of every body.
BODIES = [
    ("/v1/halt", {"reason": NUL}, "reason"),
    ("/v1/halt", {"reason": "feed check", "by": NUL}, "by"),
    ("/v1/resume", {"by": NUL, "acknowledgement": "checked"}, "by"),
    ("/v1/resume", {"by": "ops", "acknowledgement": NUL}, "acknowledgement"),
    ("/v1/decisions/d-1/approve", {"by": NUL}, "by"),
    ("/v1/decisions/d-1/approve", {"by": "ops", "note": NUL}, "note"),
    ("/v1/decisions/d-1/reject", {"by": NUL}, "by"),
    ("/v1/decisions/d-1/reject", {"by": "ops", "note": NUL}, "note"),
    ("/v1/news", _news(headline=NUL), "items.0.headline"),
    ("/v1/news", _news(source=NUL), "items.0.source"),
    ("/v1/news", _news(symbols=[SYMBOL, NUL]), "items.0.symbols.1"),
    ("/v1/news", _news(id=NUL), "items.0.id"),
    ("/v1/ticks", {"ticks": [_tick(symbol=NUL)]}, "ticks.0.symbol"),
    ("/v1/incidents", {"incidents": [_incident(symbol=NUL)]}, "incidents.0.symbol"),
    ("/v1/incidents", {"incidents": [_incident(id=NUL)]}, "incidents.0.id"),
]

# (path, query parameters, the field): one per text query and path parameter.
QUERIES = [
    ("/v1/incidents", {"symbol": NUL}, "symbol"),
    ("/v1/incidents", {"status": NUL}, "status"),
    ("/v1/incidents", {"since": NUL}, "since"),
    ("/v1/incidents", {"until": NUL}, "until"),
    ("/v1/incidents", {"run": NUL}, "run"),
    ("/v1/verdicts", {"classification": NUL}, "classification"),
    ("/v1/decisions", {"outcome": NUL}, "outcome"),
    ("/v1/dead-letters", {"since": NUL}, "since"),
    ("/v1/llm/costs", {"since": NUL}, "since"),
    ("/v1/incidents/a%00b", None, "incident_id"),
    ("/v1/decisions/a%00b", None, "decision_id"),
]


@pytest.mark.parametrize(("path", "body", "field"), BODIES,
                         ids=[f"{p}:{f}" for p, _, f in BODIES])
def test_nul_in_any_text_field_of_a_body_is_a_422_naming_it(serve_app: LiveApp, path: str,
                                                            body: dict, field: str) -> None:
    r = serve_app.post(path, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field, r.text


@pytest.mark.parametrize(("path", "params", "field"), QUERIES,
                         ids=[f"{p}:{f}" for p, _, f in QUERIES])
def test_nul_in_any_query_or_path_parameter_is_a_422_naming_it(
        serve_app: LiveApp, path: str, params: dict | None, field: str) -> None:
    with serve_app.client(auth=False) as c:
        r = c.get(path, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field, r.text


@pytest.mark.parametrize("bad", ["\x1b[2J", "\x7f", "\x85", "\ud800"],
                         ids=["escape", "delete", "c1", "lone-surrogate"])
def test_a_halt_with_bad_text_is_refused_and_nothing_is_written(serve_app: LiveApp,
                                                                bad: str) -> None:
    with serve_app.client() as c:  # the JSON text spells the character as a \u escape
        r = c.post("/v1/halt", content=json.dumps({"reason": f"feed {bad} stale"}),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "reason", r.text
    with serve_app.client(auth=False) as c:
        assert c.get("/v1/halt").json()["halted"] is False


def test_text_with_tabs_and_newlines_is_accepted(serve_app: LiveApp) -> None:
    with serve_app.client(auth=False) as c:
        r = c.get("/v1/incidents", params={"status": "open\t"})
        assert r.status_code == 200, r.text
        r = c.get("/v1/incidents", params={"symbol": "ÉTH/ユーロ"})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/ticks", {"ticks": [_tick(ts_ns=2**64)]}, "ticks.0.ts_ns"),
    ("/v1/ticks", {"ticks": [_tick(), _tick(trade_id=-(2**63) - 1)]}, "ticks.1.trade_id"),
    ("/v1/news", _news(ts_ns=2**64), "items.0.ts_ns"),
    ("/v1/incidents", {"incidents": [_incident(ts_ns=2**64)]}, "incidents.0.ts_ns"),
    ("/v1/incidents", {"incidents": [_incident(recent={"ticks": 2**70, "span_s": 1.0})]},
     "incidents.0.recent.ticks"),
], ids=["tick-ts", "tick-trade-id", "news-ts", "incident-ts", "incident-nested"])
def test_integers_outside_int64_are_a_422_naming_the_field(serve_app: LiveApp, path: str,
                                                           body: dict, field: str) -> None:
    r = serve_app.post(path, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field, r.text


def _arrow(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


@pytest.mark.parametrize(("column", "values", "dtype"), [
    ("ts_ns", [2**64 - 1], pa.uint64()),
    ("trade_id", [2**63], pa.uint64()),
    ("side", [257], pa.int64()),  # would wrap to 1 (a buy) as int8
])
def test_arrow_integers_that_would_wrap_are_a_422(serve_app: LiveApp, column: str,
                                                  values: list, dtype: pa.DataType) -> None:
    cols: dict[str, Any] = {"symbol": [SYMBOL], "ts_ns": [time.time_ns()], "price": [PRICE],
                            "qty": [1.0]}
    cols[column] = pa.array(values, dtype)
    with serve_app.client() as c:
        r = c.post("/v1/ticks", content=_arrow(pa.table(cols)),
                   headers={"Content-Type": "application/vnd.apache.arrow.stream"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == column


@pytest.mark.parametrize(("incident", "field"), [
    ({"symbol": SYMBOL}, "incidents.0.ts_ns"),
    ("not an object", "incidents.0"),
    (_incident(z="high"), "incidents.0.z"),
    (_incident(recent={"ticks": -1, "span_s": 1.0}), "incidents.0.recent.ticks"),
])
def test_an_invalid_incident_is_a_422_naming_the_field(serve_app: LiveApp, incident: Any,
                                                       field: str) -> None:
    r = serve_app.post("/v1/incidents", {"incidents": [incident]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field, r.text


MUTATING = ["/v1/ticks", "/v1/news", "/v1/incidents", "/v1/halt", "/v1/resume",
            "/v1/decisions/d-1/approve", "/v1/decisions/d-1/reject",
            "/v1/orders/cancel-all", "/v1/positions/flatten"]


@pytest.mark.parametrize("path", MUTATING)
def test_auth_comes_before_the_body(serve_app: LiveApp, path: str) -> None:
    with httpx.Client(base_url=serve_app.url, timeout=30) as c:
        for body in (b"{not json", b'{"reason": 5}', b"\x00" * 64):
            r = c.post(path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 401, (path, body, r.text)
            assert r.json()["error"]["code"] == "unauthorized"


def test_a_405_says_which_methods_are_allowed(serve_app: LiveApp) -> None:
    with serve_app.client(auth=False) as c:
        r = c.delete("/v1/halt")
        assert r.status_code == 405
        assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
        assert r.json()["error"]["code"] == "method_not_allowed"
        r = c.put("/v1/incidents")
        assert r.status_code == 405 and "GET" in r.headers["allow"]


def test_the_openapi_schema_documents_every_error_answer(serve_app: LiveApp) -> None:
    with serve_app.client(auth=False) as c:
        schema = c.get("/openapi.json").json()
    error = schema["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"error"}
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"500", "503"} <= codes, (method, path, codes)
            if method == "post":
                assert {"401", "422"} <= codes, (method, path, codes)
                # The news webhook is signed (HMAC headers), every other POST needs the bearer.
                if path not in SIGNED_PATHS:
                    assert op["security"] == [{"bearer": []}]
                else:
                    assert "security" not in op, path
                ref = op["responses"]["401"]["content"]["application/json"]["schema"]
                assert ref["$ref"].endswith("/ErrorBody")
            if "{" in path:
                assert "404" in codes, (method, path)
    ready = schema["paths"]["/readyz"]["get"]["responses"]["503"]["content"]
    assert ready["application/json"]["schema"]["$ref"].endswith("/Readiness")
    halt_reason = schema["components"]["schemas"]["HaltBody"]["properties"]["reason"]
    assert "pattern" in halt_reason  # the text rule is in the contract, not only the code


# -- idempotent ingest ---------------------------------------------------------------------


def _batches(serve_app: LiveApp) -> int:
    return serve_app.app.dataplane.stats.remote().result(timeout_s=60)["batches"]


def _ticks_body(n: int = 3) -> dict[str, Any]:
    now = time.time_ns()
    return {"ticks": [_tick(ts_ns=now + i, symbol="SOLUSDT", price=150.0 + i)
                      for i in range(n)]}


def test_a_retried_batch_is_applied_once_and_answered_the_same(serve_app: LiveApp) -> None:
    key = str(uuid.uuid4())
    body = _ticks_body()
    before = _batches(serve_app)
    with serve_app.client() as c:
        first = c.post("/v1/ticks", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == 200, first.text
        assert "idempotent-replayed" not in first.headers
        again = c.post("/v1/ticks", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        in_body = c.post("/v1/ticks", json={**body, "batch_id": key})
        assert in_body.json() == first.json()
        other = c.post("/v1/ticks", json=_ticks_body(), headers={"Idempotency-Key": key})
        assert other.status_code == 422, other.text
        assert other.json()["error"]["code"] == "idempotency_key_reused"
        bad = c.post("/v1/ticks", json=body, headers={"Idempotency-Key": "a b"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "Idempotency-Key"
    assert _batches(serve_app) == before + 1


def _restart_same_port(cluster: Any) -> None:
    """Start the stopped session cluster again where the app's pools expect it."""
    cluster._pg_ctl("start", "-w", "-t", "60", "-l", str(cluster.log_file),
                    "-o", cluster._server_options(cluster.port))


def _until_not_503(c: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        r = c.request(method, path, **kw)
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)  # pooled connections cut by the restart are replaced on next use


class _PlaneOnly:
    """A Backend with only the data plane (the outage test needs no sign-off)."""

    def __init__(self, plane: Any) -> None:
        self.plane = plane

    async def ingest(self, batch: Any, *, batch_id: str | None = None, digest: str = "",
                     dead: list | None = None) -> tuple[dict, bool]:
        return await self.plane.ingest_once(batch, time.time_ns(), batch_id=batch_id,
                                            digest=digest, dead=dead or ())

    async def ready(self) -> dict[str, str]:
        return {"data_plane": "ok"}


@pytest.fixture
def outage_api(ray_local, pg_root) -> Any:
    """The API over a real data plane and its own PostgreSQL (stopping the session's would
    cut the session Serve app's sign-off), served by uvicorn on 127.0.0.1."""
    import asyncio
    import secrets
    import threading
    from types import SimpleNamespace

    import uvicorn

    from actors.dataplane import DataPlane, DataPlaneConfig
    from serve_apps.api import build_app
    from serve_apps.lazy_store import LazyStore
    from tests.serve_apps.conftest import free_port
    from tripwire.model import SymbolTable
    from tripwire.store.migrate import migrate
    from tripwire.store.pg import PrivateCluster

    cluster = PrivateCluster(pg_root / "api-outage", durable=False)
    dsn = cluster.start()
    asyncio.run(migrate(dsn))
    symbols = SymbolTable(["SOLUSDT"])
    store = LazyStore(dsn)  # connects on uvicorn's loop

    async def noop(*_: Any) -> None:
        return None

    plane = DataPlane(symbols, DataPlaneConfig(n_shards=1), store, noop).start()
    token = secrets.token_hex(8)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(_PlaneOnly(plane), store, symbols,
                                                     token=token),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", token=token, plane=plane,
                              cluster=cluster)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        for s in plane.shards:
            import ray
            ray.kill(s)
        cluster.stop()


def test_a_database_outage_is_a_503_and_the_retry_applies_the_batch_once(
        outage_api: Any) -> None:
    key = str(uuid.uuid4())
    body = _ticks_body()
    headers = {"Authorization": f"Bearer {outage_api.token}"}
    with httpx.Client(base_url=outage_api.url, headers=headers, timeout=60) as c:
        assert c.post("/v1/ticks", json=_ticks_body()).status_code == 200  # pool is up
        outage_api.cluster._pg_ctl("stop", "-w", "-m", "fast", "-t", "60")
        try:
            r = c.post("/v1/ticks", json=body, headers={"Idempotency-Key": key})
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "database_unavailable"
            assert outage_api.plane._c["batches"] == 1  # the claim failed: nothing applied
            r = c.post("/v1/halt", json={"reason": "outage drill"})
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "database_unavailable"
            for path in ("/v1/incidents", "/v1/halt", "/v1/dead-letters"):
                r = c.get(path)
                assert r.status_code == 503, (path, r.text)
                assert r.json()["error"]["code"] == "database_unavailable"
            ready = c.get("/readyz")  # its own body, as the schema says
            assert ready.status_code == 503 and ready.json()["ready"] is False
            assert ready.json()["checks"]["database"].startswith("error")
        finally:
            _restart_same_port(outage_api.cluster)
        first = _until_not_503(c, "POST", "/v1/ticks", json=body,
                               headers={"Idempotency-Key": key})
        assert first.status_code == 200, first.text
        again = c.post("/v1/ticks", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 200 and again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert _until_not_503(c, "GET", "/v1/halt").json()["halted"] is False
    assert outage_api.plane._c["batches"] == 2  # the warm-up and the key's batch, once


def test_errors_from_a_replica_are_unwrapped(ray_local) -> None:
    """A pydantic ValidationError raised in a Ray task is not an ``except ValueError`` match
    once Ray wraps it; the handle backend hands the API the original."""
    import asyncio

    import ray
    from pydantic import ValidationError

    from serve_apps.app import _result
    from serve_apps.errors import unwrap
    from tripwire.incident import Incident

    @ray.remote(num_cpus=0)
    def validate(raw: dict) -> None:
        Incident.model_validate(raw)

    with pytest.raises(Exception) as wrapped:
        ray.get(validate.remote({"symbol": SYMBOL}))
    assert isinstance(unwrap(wrapped.value), ValidationError)

    async def call() -> None:
        await _result(validate.remote({"symbol": SYMBOL}))

    with pytest.raises(ValidationError):
        asyncio.run(call())


def test_every_error_body_has_the_same_shape(serve_app: LiveApp) -> None:
    with serve_app.client(auth=False) as c:
        for r in (c.get("/v1/nowhere"), c.delete("/v1/halt"), c.post("/v1/halt", json={}),
                  c.get("/v1/incidents", params={"limit": "x"})):
            body = r.json()
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
            json.dumps(body)


def test_the_database_stopping_mid_ingest_never_applies_a_batch_twice(ray_local,
                                                                      pg_root) -> None:
    """Record-then-apply: the claim succeeds, the database stops while the batch is being
    applied, the result cannot be recorded (503); retries while it is down and after it is
    back return the first result and the ticks are applied once. A new data plane (a
    restart) gets the recorded result from the database; a batch a fault stopped part-way
    is never applied again."""
    import asyncio

    import numpy as np

    from actors.dataplane import (
        BatchNotRecorded,
        BatchOutcomeUnknown,
        DataPlane,
        DataPlaneConfig,
    )
    from tripwire.model import SymbolTable, TickBatch
    from tripwire.store.migrate import migrate
    from tripwire.store.pg import PrivateCluster
    from tripwire.store.pg_decisions import PgDecisionStore

    cluster = PrivateCluster(pg_root / "outage", durable=False)
    dsn = cluster.start()
    symbols = SymbolTable(["SOLUSDT"])

    class StopsAfterClaim(PgDecisionStore):
        stop_next = False

        async def claim_ingest_batch(self, *args: Any) -> Any:
            out = await super().claim_ingest_batch(*args)
            if self.stop_next:  # the database goes away with the batch half-way in
                self.stop_next = False
                await asyncio.to_thread(cluster._pg_ctl, "stop", "-w", "-m", "fast")
            return out

    async def noop(*_: Any) -> None:
        return None

    def batch() -> TickBatch:
        now = time.time_ns()
        n = 4
        return TickBatch(np.zeros(n, np.int32), now + np.arange(n, dtype=np.int64),
                         np.full(n, 150.0), np.ones(n), np.ones(n, np.int8),
                         np.zeros(n, np.int64))

    async def main() -> None:
        await migrate(dsn)
        store = await StopsAfterClaim.connect(dsn, max_size=2)
        plane = DataPlane(symbols, DataPlaneConfig(n_shards=1), store, noop)
        await asyncio.to_thread(plane.start)
        try:
            b = batch()
            store.stop_next = True
            with pytest.raises(BatchNotRecorded):
                await plane.ingest_once(b, time.time_ns(), batch_id="k1", digest="d1")
            applied = (await plane.stats())["accepted"]
            assert applied == 4
            with pytest.raises(BatchNotRecorded):  # still down: still not recorded
                await plane.ingest_once(b, time.time_ns(), batch_id="k1", digest="d1")
            await asyncio.to_thread(_restart_same_port, cluster)
            for _ in range(50):  # the pool replaces the connections the stop cut
                try:
                    first, replayed = await plane.ingest_once(b, time.time_ns(),
                                                              batch_id="k1", digest="d1")
                    break
                except BatchNotRecorded:
                    await asyncio.sleep(0.1)
            assert replayed and first["accepted"] == 4
            assert (await plane.stats())["accepted"] == applied  # applied once
            assert (await store.ingest_batch("k1")).result == first

            restarted = DataPlane(symbols, DataPlaneConfig(n_shards=1), store, noop)
            await asyncio.to_thread(restarted.start)
            try:
                again, replayed = await restarted.ingest_once(b, time.time_ns(),
                                                              batch_id="k1", digest="d1")
                assert replayed and again == first
                assert (await restarted.stats())["batches"] == 0
                # claimed by an instance that never finished it: outcome unknown, refused
                await store.claim_ingest_batch("k2", "d2", "gone", time.time_ns())
                with pytest.raises(BatchOutcomeUnknown):
                    await restarted.ingest_once(batch(), time.time_ns(), batch_id="k2",
                                                digest="d2")
                assert (await restarted.stats())["batches"] == 0
            finally:
                await restarted.close()
        finally:
            await plane.close()
            await store.close()

    try:
        asyncio.run(main())
    finally:
        cluster.stop()
