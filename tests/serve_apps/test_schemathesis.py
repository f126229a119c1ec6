"""Schemathesis against the live Serve app: the API does what its OpenAPI schema says.

Every documented operation gets generated requests, valid ones and invalid ones, with the
bearer token (so the mutating routes' bodies are exercised too, not only their 401), on a
bounded, derandomised budget (``EXAMPLES`` per operation and mode: the same cases in every
run). Each answer must not be a 5xx, must have a documented status code and content type,
and its body and headers must match the schema. ``GET /v1/stream`` is an endless event
stream and is left to tests/serve_apps/test_api.py.

The run may halt trading (``POST /v1/halt`` is a valid request), cancel every order (a
position's stop included) and open positions from fuzzed ticks; the test resumes trading
and closes what it left open after, so the session's later tests start from a running app
with no position (a position whose stop was cancelled is a watchdog breach).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from tests.serve_apps.conftest import LiveApp

pytestmark = pytest.mark.timeout(600)

EXAMPLES = 6  # per operation and generation mode: ~300 requests, well under a minute
SKIP = {("GET", "/v1/stream")}


def _checks() -> list:
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance,
            response_schema_conformance, response_headers_conformance]


def _resume(dsn: str) -> None:
    from tripwire.store.pg_decisions import PgDecisionStore
    from tripwire.watchdog.reasons import halt_code

    async def main() -> None:
        store = await PgDecisionStore.connect(dsn, max_size=1)
        try:
            halt = await store.read_halt()
            if halt.halted:
                await store.resume("schemathesis", f"{halt_code(halt.reason) or 'operator'} "
                                   "checked: the fuzzing run is over", time.time_ns())
        finally:
            await store.close()

    asyncio.run(main())


def _flatten(app: LiveApp, timeout_s: float = 60.0) -> None:
    """Cancel what the fuzzing left, close every position (market orders filled by fresh
    ticks at each mark) and wait until the book is flat."""
    time.sleep(6.0)  # fuzzed ticks may be stamped up to the live skew (5 s) ahead of now
    with app.client() as c:
        c.post("/v1/orders/cancel-all").raise_for_status()
        deadline = time.monotonic() + timeout_s
        while True:
            rows = c.get("/v1/positions").json()["positions"]
            if not rows:
                return
            assert time.monotonic() < deadline, f"positions left open after fuzzing: {rows}"
            c.post("/v1/orders/cancel-all").raise_for_status()
            c.post("/v1/positions/flatten").raise_for_status()
            time.sleep(0.2)  # past the paper venue's latency
            for row in rows:
                app.push_ticks(row["symbol"], row["mark"] or row["avg_price"], n=3)


def test_the_live_api_keeps_its_openapi_contract(serve_app: LiveApp) -> None:
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{serve_app.url}/openapi.json", timeout=30)
    headers = {"Authorization": f"Bearer {serve_app.token}"}
    checks = _checks()
    failures: list[str] = []
    ran = 0
    try:
        for result in schema.get_all_operations():
            op = result.ok()
            if (op.method.upper(), op.path) in SKIP:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                calls = 0

                @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                          database=None, phases=[Phase.generate],
                          suppress_health_check=list(HealthCheck))
                @given(case=op.as_strategy(generation_mode=mode))
                def run(case) -> None:
                    nonlocal calls
                    calls += 1
                    case.call_and_validate(base_url=serve_app.url, headers=headers,
                                           checks=checks, timeout=30)

                try:
                    run()
                except Unsatisfiable:  # nothing invalid to say about an operation
                    pass
                except Exception as exc:  # every operation is tried; all failures reported
                    failures.append(f"{op.method.upper()} {op.path} ({mode.value}): "
                                    f"{exc}"[:4000])
                ran += calls
    finally:
        _resume(serve_app.dsn)
        _flatten(serve_app)
    assert ran > 100, ran  # the budget was spent on requests, not skipped
    assert not failures, "\n\n".join(failures)
