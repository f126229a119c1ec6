"""What the LLM router costs per call, how fast a cache hit is, and how fast it fails over.

Run from the project root::

    python -m benchmarks.router            # rich table + pass/fail summary
    python -m benchmarks.router --json     # one JSON object on stdout
    python -m benchmarks.router --quick    # 200 calls instead of 1,000

A real OpenAI-wire-format server (tests/llm/servers.py) runs in a *separate process* on
127.0.0.1, so its work does not share this process's GIL; the client is the real
``OpenAIProvider`` on the official SDK. Figures (JSON keys):

  overhead_p50_us / overhead_p99_us  per call, the router's time (``Router.call``: cache
                        lookup, budget, breaker, rate limit, validation, ledger, span) plus
                        the provider's own work around the SDK, minus the time spent inside
                        the SDK's ``chat.completions.create`` for that call; ``calls``
                        calls, cache off. ``sdk_p50_us`` / ``sdk_p99_us``: the SDK call itself.
  cache_hit_us_p50 / _p99  ``Router.call`` for a request already answered (exact cache).
  failover_ms           the first route answers 529 to every call and allows one retry
                        with a backoff of ``backoff_ms``; from its *first* 529 to the next
                        route's valid answer (median of ``failover_runs``). Target: at most
                        the configured backoff + 5 ms.
  budget_overspend_usd  two processes (tests/llm/spend_worker.py) fire ``budget_calls`` / 2
                        concurrent calls each at a paid-looking route whose day budget
                        (``budget_per_day_usd``) is shared in PostgreSQL (a private cluster,
                        or ``TRIPWIRE_PG_DSN``): what the answered calls cost beyond the
                        limit (0 when within). Target: at most one call's hold
                        (``budget_hold_usd``). ``budget_answered`` of ``budget_calls``.
  reserve_ms_p50 / _p99 one reservation's round trip (``llm_reserve``) in that burst: 200
                        calls queue on one locked (day, scope) row and 2 x 8 connections.
  reserve_ms_idle_p50 / _p99  the same, one reservation at a time (reserve + settle x 200).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from tripwire.llm.base import LLMRequest, Message
from tripwire.llm.config import RoutePolicy
from tripwire.llm.ledger import InMemoryLedger
from tripwire.llm.providers import OpenAIProvider
from tripwire.llm.router import Route, Router

ROOT = Path(__file__).resolve().parent.parent

TARGETS = {"overhead_p99_us": 200.0, "cache_hit_us_p50": 50.0}


class Verdict(BaseModel):
    """A triage-shaped answer (the benchmark does not depend on the skills' files)."""

    classification: str = Field(pattern="^(TECHNICAL_SPIKE|NEWS_DRIVEN|IGNORE)$")
    confidence: float = Field(ge=0, le=1)
    reasoning: str
    key_factors: list[str]


ANSWER = {"classification": "TECHNICAL_SPIKE", "confidence": 0.7,
          "reasoning": "one print far from the market, back on the next trade",
          "key_factors": ["return z 41", "no news"]}

_SERVER = """
import asyncio, sys
from tests.llm.servers import OpenAIServer, ok, status
answer = {answer!r}
reply = ok(answer) if sys.argv[1] == "ok" else status(529, "Overloaded")
async def main():
    async with OpenAIServer(default=reply) as server:
        print(server.base_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


class ServerProcess:
    """The loopback server in a child process; ends when its stdin closes."""

    def __init__(self, behaviour: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER.format(answer=ANSWER), behaviour],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.close()
            raise RuntimeError(f"benchmark server did not start ({behaviour})")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def request(i: int = 0) -> LLMRequest:
    return LLMRequest(role="bench", system="Classify the incident. Answer with JSON only.",
                      messages=(Message("user", f"incident {i}: BTCUSDT return z 41"),),
                      schema=Verdict, max_tokens=200)


class _TimedSDK:
    """Wraps the SDK's create() to time each call from outside, leaving it untouched."""

    def __init__(self, provider: OpenAIProvider) -> None:
        self.inner = provider._client.chat.completions.create
        self.last_ns = 0
        self.first_fail_ns: int | None = None

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter_ns()
        try:
            return await self.inner(*args, **kwargs)
        except Exception:
            if self.first_fail_ns is None:
                self.first_fail_ns = time.perf_counter_ns()
            raise
        finally:
            self.last_ns = time.perf_counter_ns() - t0


def _policy(**over: Any) -> RoutePolicy:
    base = {"timeout_s": 10.0, "max_concurrency": 4, "rate_per_s": float("inf"), "burst": 1,
            "retries": 0, "metered": False, "cache_answers": False}
    return RoutePolicy(**{**base, **over})


def _provider(url: str) -> tuple[OpenAIProvider, _TimedSDK]:
    provider = OpenAIProvider("bench-model", api_key="bench", base_url=url, mode="json_schema")
    timed = _TimedSDK(provider)
    provider._client.chat.completions.create = timed  # type: ignore[method-assign]
    return provider, timed


async def measure_overhead(url: str, calls: int) -> dict[str, Any]:
    provider, timed = _provider(url)
    router = Router([Route("local", provider, _policy())], ledger=InMemoryLedger(), cache=None)
    over, sdk = [], []
    for i in range(calls + 50):  # the first 50 warm up connections and caches
        t0 = time.perf_counter_ns()
        await router.call(request(i))
        total = time.perf_counter_ns() - t0
        if i >= 50:
            over.append(total - timed.last_ns)
            sdk.append(timed.last_ns)
    await router.aclose()
    o, s = np.array(over) / 1e3, np.array(sdk) / 1e3
    return {"overhead_p50_us": float(np.percentile(o, 50)),
            "overhead_p99_us": float(np.percentile(o, 99)),
            "sdk_p50_us": float(np.percentile(s, 50)), "sdk_p99_us": float(np.percentile(s, 99))}


async def measure_cache(url: str, calls: int) -> dict[str, Any]:
    from tripwire.llm.cache import ExactCache, ResponseCache
    from tripwire.model import SystemClock

    provider, _ = _provider(url)
    cache = ResponseCache(ExactCache(ttl_s=3600.0, capacity=1024, clock=SystemClock()), None)
    router = Router([Route("local", provider, _policy(cache_answers=True))],
                    ledger=InMemoryLedger(), cache=cache)
    await router.call(request(0))
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        res = await router.call(request(0))
        times.append(time.perf_counter_ns() - t0)
        assert res.cached
    await router.aclose()
    t = np.array(times) / 1e3
    return {"cache_hit_us_p50": float(np.percentile(t, 50)),
            "cache_hit_us_p99": float(np.percentile(t, 99))}


async def measure_failover(bad_url: str, good_url: str, backoff_s: float, runs: int):
    out = []
    for i in range(runs):
        bad, timed_bad = _provider(bad_url)
        good, _ = _provider(good_url)
        policy = _policy(retries=1, backoff_base_s=backoff_s, backoff_cap_s=backoff_s,
                         failure_threshold=100)
        router = Router([Route("primary", bad, policy), Route("secondary", good, _policy())],
                        ledger=InMemoryLedger(), cache=None)
        res = await router.call(request(i))
        done = time.perf_counter_ns()
        assert res.route == "secondary"
        out.append((done - timed_bad.first_fail_ns) / 1e6)
        await router.aclose()
    return {"failover_ms": float(np.median(out)), "failover_ms_max": float(max(out)),
            "backoff_ms": backoff_s * 1e3, "failover_runs": runs}


def measure_budget(calls: int = 200, per_day_usd: float = 6.0) -> dict[str, Any]:
    """Two processes, one day budget in PostgreSQL (see the module docs)."""
    import asyncpg

    from tests.llm import spend_worker
    from tests.llm.servers import OpenAIServer, ok
    from tripwire.llm.limits import estimate_tokens
    from tripwire.llm.spend import summarise_pg
    from tripwire.store.migrate import migrate
    from tripwire.store.pg import PrivateCluster, resolve_dsn

    def run(dsn: str) -> dict[str, Any]:
        asyncio.run(migrate(dsn))
        with OpenAIServer(default=ok({"text": "hi"}, usage=(90, 60))) as server:
            procs = [subprocess.Popen(
                [sys.executable, "-m", "tests.llm.spend_worker", dsn, server.base_url,
                 "--calls", str(calls // 2), "--per-day-usd", str(per_day_usd)],
                cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
            outs = [json.loads(p.communicate(timeout=300)[0].splitlines()[-1]) for p in procs]

        async def sequential(dsn: str, n: int = 200) -> np.ndarray:
            """One reservation at a time: the round trip without queueing behind others."""
            from tripwire.llm.config import BudgetConfig
            from tripwire.llm.spend import PgBudget

            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
            budget = PgBudget(pool, BudgetConfig(per_day_usd=1e9, per_day_tokens=None))
            try:
                for i in range(n):
                    r = await budget.reserve_attempt(
                        route="paid", model="m", role="bench", call_id=str(i), tokens_in=100,
                        tokens_out=100, usd=0.2, call_tokens=0, call_usd=0.0,
                        route_timeout_s=30.0)
                    await budget.settle_attempt(r, 150, 0.15)
                return np.array(budget.reserve_ms)
            finally:
                await pool.close()

        async def spent() -> float:
            conn = await asyncpg.connect(dsn)
            try:
                rows = await summarise_pg(conn, by=("outcome",))
            finally:
                await conn.close()
            return sum(r.cost_usd for r in rows if r.outcome == "ok")

        usd = asyncio.run(spent())
        idle = asyncio.run(sequential(dsn))
        est_in, est_out = estimate_tokens(spend_worker.request(0))
        lat = np.array([ms for o in outs for ms in o["reserve_ms"]])
        return {"budget_calls": calls, "budget_answered": sum(o["answered"] for o in outs),
                "budget_per_day_usd": per_day_usd, "budget_spent_usd": round(usd, 6),
                "budget_overspend_usd": round(max(0.0, usd - per_day_usd), 6),
                "budget_hold_usd": (est_in + est_out) * spend_worker.PRICE / 1e6,
                "reserve_ms_p50": float(np.percentile(lat, 50)),
                "reserve_ms_p99": float(np.percentile(lat, 99)),
                "reserve_ms_idle_p50": float(np.percentile(idle, 50)),
                "reserve_ms_idle_p99": float(np.percentile(idle, 99))}

    dsn = resolve_dsn()
    if dsn is not None:
        return run(dsn)
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="tw-bench-pg-"))
    root.chmod(0o711)  # as root the server runs as postgres, who must enter it
    with PrivateCluster(root / "pg", durable=False) as admin:
        return run(admin)


def measure(quick: bool) -> dict[str, Any]:
    calls = 200 if quick else 1_000
    good, bad = ServerProcess("ok"), ServerProcess("529")
    try:
        res: dict[str, Any] = {"calls": calls}
        res.update(asyncio.run(measure_overhead(good.base_url, calls)))
        res.update(asyncio.run(measure_cache(good.base_url, calls)))
        res.update(asyncio.run(measure_failover(bad.base_url, good.base_url, 0.05,
                                                5 if quick else 20)))
    finally:
        good.close()
        bad.close()
    res.update(measure_budget())
    res["targets"] = {**{k: f"<= {v}" for k, v in TARGETS.items()},
                      "failover_ms": f"<= backoff_ms + 5 = {res['backoff_ms'] + 5}",
                      "budget_overspend_usd": f"<= one hold = {res['budget_hold_usd']}"}
    res["meets_targets"] = {
        **{k: res[k] <= v for k, v in TARGETS.items()},
        "failover_ms": res["failover_ms"] <= res["backoff_ms"] + 5,
        "budget_overspend_usd": res["budget_overspend_usd"] <= res["budget_hold_usd"],
    }
    res["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                      "python": platform.python_version()}
    res["quick"] = quick
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.router", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quick", action="store_true", help="200 calls instead of 1,000")
    args = p.parse_args(argv)
    res = measure(args.quick)
    if args.json:
        print(json.dumps(res))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="LLM router benchmark")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in res.items():
        if k not in ("targets", "meets_targets", "machine"):
            table.add_row(k, f"{v:,.1f}" if isinstance(v, float) else str(v))
    console = Console()
    console.print(table)
    console.print("[bold]summary[/bold]: " + ", ".join(
        f"{k} {'[green]met[/green]' if ok else '[red]missed[/red]'} ({res['targets'][k]})"
        for k, ok in res["meets_targets"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
