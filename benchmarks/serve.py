"""The HTTP API under load: the Ray Serve app against the same FastAPI app on plain uvicorn.

Run from the project root::

    python -m benchmarks.serve            # rich progress + table
    python -m benchmarks.serve --json     # one JSON object on stdout
    python -m benchmarks.serve --quick    # fewer requests per phase (under a minute)

Both hosts run on one private PostgreSQL cluster (a temporary directory) and this process's
Ray (the detector shards are Ray actors in both): first the baseline, where
:class:`serve_apps.local.LocalServices` serves its FastAPI app from uvicorn on this process's
event loop, then :func:`serve_apps.app.start` (proxy -> ingress replica -> data plane /
sign-off replicas through deployment handles). Each host is seeded with incidents (so the
list route returns 50 rows) and left to finish triaging them before the load starts.

The load runs in a separate process (``--drive``, so the client does not share this
process's GIL with the baseline server): 16 concurrent clients, each with its own
connection, in three phases (after one client's GETs alone): GET /v1/incidents?limit=50,
POST /v1/ticks with 1,000-tick Arrow IPC batches, then the same as JSON. Each client owns
its own symbols, so every symbol's ticks arrive in time order and are all accepted; prices
are a gentle random walk, so few trips. Latency is per request as the client sees it.
Figures (JSON keys; the Serve app's at the top level, the baseline's under
``baseline_uvicorn``):

  api_p50_ms / api_p99_ms            GET /v1/incidents?limit=50
  api_single_client_p50_ms / _p99_ms the same from one client alone (no queueing: what
                                     each request costs, which is where Serve's hops show)
  ticks_post_p50_ms / _p99_ms        POST /v1/ticks, 1,000 ticks, Arrow IPC
  ticks_post_json_p50_ms / _p99_ms   the same batches as JSON rows
  ticks_per_s_via_http               ticks accepted per second in the Arrow phase
  ticks_per_s_json                   the same in the JSON phase
  requests / errors                  timed requests, and those that did not answer 2xx
  serve_overhead_ms                  Serve minus baseline, per route, p50 and p99

Then, on the Serve app only, the live stream: 50 SSE clients on /v1/stream while decisions
are written straight into PostgreSQL (as a sign-off replica would):

  sse_latency_ms_p50 / _p99          a decision's write (timed from before the INSERT, so
                                     it bounds commit -> event from above) to its SSE event,
                                     over every (decision, stream) pair
  sse_events_missing                 (decision, stream) pairs that never arrived
  idle_db_xact_per_s_no_streams      transactions/s in the app's database while idle (the
                                     data plane's heartbeats), from pg_stat_database
  idle_db_xact_per_s_50_streams      the same with the 50 streams open
  idle_stream_queries_per_s          the difference: what the open streams cost (~0)

The machine is a shared 2-CPU box here: client, servers, Ray and PostgreSQL all compete.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CLIENTS = 16
BATCH_TICKS = 1_000
N_SYMBOLS = 20
SEED_INCIDENTS = 60  # > 50, so GET ?limit=50 returns a full page
IDLE_TIMEOUT_S = 120.0  # seeded incidents must be triaged and decided within this
DRIVE_TIMEOUT_S = 300.0
ARROW = "application/vnd.apache.arrow.stream"
TOKEN_ENV = "TRIPWIRE_API_TOKEN"
STREAMS = 50  # open SSE streams in the stream phase
STATS_FLUSH_S = 11.0  # > PostgreSQL 15's PGSTAT_IDLE_INTERVAL: earlier counts are published


@dataclass(frozen=True)
class Load:
    """Requests per client in each phase (``warmup`` untimed: connections, plans, pools)."""

    get: int
    arrow: int
    json: int
    single: int  # GETs from one client alone: the per-request cost without queueing
    warmup: int = 3

    @classmethod
    def of(cls, quick: bool) -> Load:
        return (cls(get=10, arrow=3, json=1, single=20) if quick
                else cls(get=40, arrow=10, json=3, single=60))


# -- the load driver (runs in its own process) -------------------------------------------------


class TickSource:
    """One client's ticks: its own symbols, time rising per symbol, a gentle random walk."""

    def __init__(self, symbols: list[str], seed: int) -> None:
        if not symbols:
            raise ValueError("a tick source needs at least one symbol")
        self.symbols = symbols
        self.rng = np.random.default_rng(seed)
        self.price = np.full(len(symbols), 100.0)
        self.last_ts = np.zeros(len(symbols), np.int64)

    def batch(self, n: int = BATCH_TICKS) -> dict[str, np.ndarray | list[str]]:
        k = len(self.symbols)
        which = np.arange(n) % k  # round robin over this client's symbols
        steps = self.rng.normal(0.0, 2e-5, n)  # ~0.002% a tick: no shocks, few trips
        prices, ts = np.empty(n), np.empty(n, np.int64)
        now = time.time_ns()
        for j in range(k):
            rows = np.flatnonzero(which == j)
            walk = self.price[j] * np.exp(np.cumsum(steps[rows]))
            prices[rows] = walk
            self.price[j] = walk[-1]
            start = max(now, int(self.last_ts[j]) + 1)
            ts[rows] = start + np.arange(len(rows), dtype=np.int64) * 1_000
            self.last_ts[j] = ts[rows][-1]
        return {"symbol": [self.symbols[j] for j in which], "ts_ns": ts,
                "price": prices.round(6), "qty": self.rng.uniform(0.01, 2.0, n).round(4),
                "side": self.rng.choice(np.array([-1, 1], np.int8), n),
                "trade_id": np.zeros(n, np.int64)}


def arrow_body(cols: dict[str, Any]) -> bytes:
    import pyarrow as pa

    table = pa.table(cols)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def json_body(cols: dict[str, Any]) -> bytes:
    keys = list(cols)
    rows = zip(*(c if isinstance(c, list) else c.tolist() for c in cols.values()), strict=True)
    return json.dumps({"ticks": [dict(zip(keys, r, strict=True)) for r in rows]}).encode()


@dataclass
class Phase:
    latencies_ms: list[float]
    elapsed_s: float
    errors: int
    accepted: int
    first_error: str = ""


async def _client_loop(client: Any, n: int, request: Callable, out: Phase) -> None:
    for _ in range(n):
        method, path, body, headers = request()
        t0 = time.perf_counter()
        r = await client.request(method, path, content=body, headers=headers)
        out.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        if r.status_code >= 300:
            out.errors += 1
            out.first_error = out.first_error or f"{method} {path}: {r.status_code} {r.text[:200]}"
        elif method == "POST":
            out.accepted += int(r.json()["accepted"])


async def _phase(clients: list, n: int, requests: list[Callable]) -> Phase:
    out = Phase([], 0.0, 0, 0)
    t0 = time.perf_counter()
    await asyncio.gather(*(_client_loop(c, n, req, out)
                           for c, req in zip(clients, requests, strict=True)))
    out.elapsed_s = time.perf_counter() - t0
    return out


async def drive(url: str, token: str, symbols: list[str], load: Load) -> dict[str, Any]:
    """The three phases against ``url``; raw figures per phase."""
    import httpx

    auth = {"Authorization": f"Bearer {token}"}
    sources = [TickSource(symbols[i::CLIENTS] or [symbols[i % len(symbols)]], seed=i)
               for i in range(CLIENTS)]
    if len(symbols) < CLIENTS:
        raise ValueError(f"need at least {CLIENTS} symbols (one per client), got {len(symbols)}")

    def get() -> tuple:
        return "GET", "/v1/incidents?limit=50", None, None

    def post(src: TickSource, kind: str) -> Callable:
        encode, ctype = (arrow_body, ARROW) if kind == "arrow" else (json_body,
                                                                      "application/json")
        return lambda: ("POST", "/v1/ticks", encode(src.batch()),
                        {**auth, "content-type": ctype})

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(
            httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits))
            for _ in range(CLIENTS)]
        await _phase(clients, load.warmup, [get] * CLIENTS)
        await _phase(clients, 1, [post(s, "arrow") for s in sources])
        phases = {"single": await _phase(clients[:1], load.single, [get]),
                  "get": await _phase(clients, load.get, [get] * CLIENTS),
                  "arrow": await _phase(clients, load.arrow, [post(s, "arrow") for s in sources]),
                  "json": await _phase(clients, load.json, [post(s, "json") for s in sources])}
    return {k: vars(v) for k, v in phases.items()}


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    def pct(xs: list[float], q: float) -> float:
        return round(float(np.percentile(xs, q)), 3)

    get, arrow, js, one = raw["get"], raw["arrow"], raw["json"], raw["single"]
    out = {"api_p50_ms": pct(get["latencies_ms"], 50), "api_p99_ms": pct(get["latencies_ms"], 99),
           "api_single_client_p50_ms": pct(one["latencies_ms"], 50),
           "api_single_client_p99_ms": pct(one["latencies_ms"], 99)}
    for name, ph in (("ticks_post", arrow), ("ticks_post_json", js)):
        out[f"{name}_p50_ms"] = pct(ph["latencies_ms"], 50)
        out[f"{name}_p99_ms"] = pct(ph["latencies_ms"], 99)
    out["ticks_per_s_via_http"] = round(arrow["accepted"] / arrow["elapsed_s"], 1)
    out["ticks_per_s_json"] = round(js["accepted"] / js["elapsed_s"], 1)
    out["get_per_s"] = round(len(get["latencies_ms"]) / get["elapsed_s"], 1)
    out["ticks_accepted"] = arrow["accepted"] + js["accepted"]
    out["requests"] = {k: len(v["latencies_ms"]) for k, v in raw.items()}
    out["errors"] = sum(v["errors"] for v in raw.values())
    out["first_error"] = next((v["first_error"] for v in raw.values() if v["first_error"]), "")
    return out


def run_driver(url: str, token: str, symbols: list[str], load: Load) -> dict[str, Any]:
    """The driver in a child process; its summary. Blocking (call it from a thread)."""
    argv = [sys.executable, "-m", "benchmarks.serve", "--drive", url,
            "--symbols", ",".join(symbols), "--load", json.dumps(vars(load))]
    env = {**os.environ, TOKEN_ENV: token}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1], timeout=DRIVE_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"the load driver failed (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


# -- the hosts ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def symbol_names(incident_symbol: str) -> list[str]:
    names = [incident_symbol] + [f"B{i:02d}USDT" for i in range(N_SYMBOLS)]
    return names[:N_SYMBOLS]


async def seed(url: str, token: str, incident: Any, n: int) -> None:
    """``n`` copies of the news-shock incident, fresh ids and times, 20 per request."""
    import httpx

    from tripwire.model import new_id

    bodies = [incident.model_copy(update={"id": new_id(), "ts_ns": time.time_ns()})
              .model_dump(mode="json") for _ in range(n)]
    async with httpx.AsyncClient(base_url=url, timeout=60.0,
                                 headers={"Authorization": f"Bearer {token}"}) as c:
        for i in range(0, n, 20):
            r = await c.post("/v1/incidents", json={"incidents": bodies[i:i + 20]})
            if r.status_code != 200:
                raise RuntimeError(f"seeding incidents failed: {r.status_code} {r.text[:500]}")


async def wait_idle(idle: Callable, what: str) -> None:
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    while not await idle():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: seeded incidents not decided in {IDLE_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.2)


# -- live stream: NOTIFY latency and idle queries ----------------------------------------------


@dataclass(frozen=True)
class StreamLoad:
    """The stream phase: ``decisions`` written ``gap_s`` apart while ``STREAMS`` streams are
    open; idle windows of ``window_s`` (each after ``STATS_FLUSH_S``)."""

    decisions: int
    gap_s: float
    window_s: float

    @classmethod
    def of(cls, quick: bool) -> StreamLoad:
        return cls(15, 0.1, 5.0) if quick else cls(60, 0.05, 15.0)


class _Streams:
    """``n`` SSE clients on one loop; the arrival time of each decision event per client.

    Plain asyncio sockets, not an HTTP library: 50 clients in one Python process would
    otherwise measure the library's per-event cost (the last of 50 parsed events waits for
    the other 49). Each SSE event is one chunk of the response (one ``yield`` of the
    server's generator), so an event never straddles chunk framing.
    """

    _EVENT = re.compile(rb"event: (\w+)\ndata: (\{[^\n]*\})\n\n")

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrivals: dict[str, list[float]] = {}
        self.ready: set[int] = set()
        self.tasks: list[asyncio.Task] = []

    async def _read(self, host: str, port: int, i: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET /v1/stream HTTP/1.1\r\nHost: {host}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        buf = b""
        try:
            while chunk := await reader.read(65_536):
                now = time.perf_counter()
                buf += chunk
                end = 0
                for m in self._EVENT.finditer(buf):
                    end = m.end()
                    if m.group(1) == b"halt":  # the last row of every snapshot
                        self.ready.add(i)
                    elif m.group(1) == b"decision":
                        row = json.loads(m.group(2))
                        self.arrivals.setdefault(row["id"], []).append(now)
                buf = buf[end:] if end else buf[-65_536:]
        finally:
            writer.close()

    async def open(self, url: str) -> None:
        host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        self.tasks = [asyncio.create_task(self._read(host, int(port), i))
                      for i in range(self.n)]
        deadline = time.monotonic() + 60
        while len(self.ready) < self.n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.ready)}/{self.n} streams opened in 60 s")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _xact(conn: Any) -> int:
    """Transactions committed in this database so far (each query of the app is at least
    one); PostgreSQL 15 publishes a backend's counts within PGSTAT_IDLE_INTERVAL (10 s)."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return await conn.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")


async def _idle_rate(conn: Any, window_s: float) -> float:
    """Transactions per second while this process sends nothing; our own reads subtracted."""
    await asyncio.sleep(STATS_FLUSH_S)  # what ran before has been counted
    a = await _xact(conn)
    await asyncio.sleep(window_s)
    b = await _xact(conn)
    return max(0, b - a - 2) / window_s  # 2: the two reads' own transactions


async def stream_phase(url: str, dsn: str, load: StreamLoad) -> dict[str, Any]:
    """``sse_latency_ms_*`` (a decision written -> its event at each of ``STREAMS`` clients)
    and the database's idle transaction rate without and with the streams open."""
    import asyncpg

    from tripwire.model import new_id
    from tripwire.store.pg_decisions import PgDecisionStore

    conn = await asyncpg.connect(dsn)
    writer = await PgDecisionStore.connect(dsn, max_size=1)
    streams = _Streams(STREAMS)
    sent: dict[str, float] = {}
    try:
        idle_without = await _idle_rate(conn, load.window_s)
        await streams.open(url)
        try:
            idle_with = await _idle_rate(conn, load.window_s)
            for _ in range(load.decisions):
                d = new_id()
                # Timed from before the write: the insert's own round trip is included, so
                # the figure bounds commit -> event from above.
                sent[d] = time.perf_counter()
                await writer.record_proposal(
                    d, incident_id=None, verdict_id=None, symbol="BENCHUSDT",
                    ts_ns=time.time_ns(), action="HOLD", proposal_hash="bench", revision=0,
                    mode="DRY_RUN", payload={})
                await asyncio.sleep(load.gap_s)
            await asyncio.sleep(2.0)  # stragglers
        finally:
            await streams.close()
    finally:
        await writer.close()
        await conn.close()
    lat = [(t - sent[d]) * 1e3 for d, ts in streams.arrivals.items() if d in sent for t in ts]
    expected = len(sent) * STREAMS
    return {"sse_streams": STREAMS, "sse_decisions": len(sent),
            "sse_events_missing": expected - len(lat),
            "sse_latency_ms_p50": round(float(np.percentile(lat, 50)), 3) if lat else None,
            "sse_latency_ms_p99": round(float(np.percentile(lat, 99)), 3) if lat else None,
            "idle_db_xact_per_s_no_streams": round(idle_without, 3),
            "idle_db_xact_per_s_50_streams": round(idle_with, 3),
            "idle_stream_queries_per_s": round(max(0.0, idle_with - idle_without), 3)}


@dataclass
class Bench:
    settings: Any
    dsn: str
    symbols: list[str]
    incident: Any
    load: Load
    token: str
    quick: bool = False


async def _baseline(b: Bench) -> dict[str, Any]:
    import uvicorn

    from serve_apps.config import ServeConfig
    from serve_apps.local import LocalServices
    from tripwire.model import SymbolTable

    svc = await LocalServices(b.settings, b.dsn, SymbolTable(b.symbols),
                              ServeConfig.from_settings(b.settings)).start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(svc.app(b.token), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises the server's error
                raise RuntimeError("uvicorn exited before it started")
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        await seed(url, b.token, b.incident, SEED_INCIDENTS)
        await wait_idle(svc.orch.idle, "baseline")
        # The server runs on this loop: the driver's blocking wait goes to a thread.
        return await asyncio.to_thread(run_driver, url, b.token, b.symbols, b.load)
    finally:
        server.should_exit = True
        await task
        await svc.close()


def _serve(b: Bench) -> dict[str, Any]:
    from ray import serve

    from serve_apps.app import start
    from serve_apps.config import ServeConfig

    config = ServeConfig.from_table({**b.settings.table("serve"), "port": free_port()})
    app = start(b.settings, b.dsn, tuple(b.symbols), config=config, token=b.token)
    try:
        asyncio.run(seed(app.url, b.token, b.incident, SEED_INCIDENTS))

        async def idle() -> bool:
            return await asyncio.to_thread(lambda: app.signoff.idle.remote().result(timeout_s=60))

        asyncio.run(wait_idle(idle, "serve"))
        res = run_driver(app.url, b.token, b.symbols, b.load)
        res.update(asyncio.run(stream_phase(app.url, b.dsn, StreamLoad.of(b.quick))))
        return res
    finally:
        try:
            app.shutdown()
        finally:
            serve.shutdown()


def _overhead(serve_res: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    keys = [k for k in serve_res if k.endswith("_ms")]
    return {k: round(serve_res[k] - base[k], 3) for k in keys}


def measure(quick: bool, step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    from actors.runtime import ensure_ray
    from actors.triage import demo_incidents
    from tripwire.config import load_settings
    from tripwire.model import EventKind
    from tripwire.store.migrate import migrate
    from tripwire.store.pg import database

    (_, incident), = demo_incidents(kinds=(EventKind.NEWS_SHOCK,))
    root = Path(tempfile.mkdtemp(prefix="tripwire-bench-serve-"))
    root.chmod(0o711)  # as root the server runs as the postgres user, who must enter it
    try:
        step("starting PostgreSQL")
        with database(root, env={}) as dsn:
            asyncio.run(migrate(dsn))
            settings = load_settings(env={"TRIPWIRE_DATA__DIR": str(root / "data")})
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            step("starting Ray")
            ensure_ray()
            b = Bench(settings, dsn, symbol_names(incident.symbol), incident,
                      Load.of(quick), secrets.token_hex(16), quick)
            step("baseline: LocalServices on uvicorn")
            base = asyncio.run(_baseline(b))
            step("Ray Serve app")
            res = _serve(b)
            step("done")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res["baseline_uvicorn"] = base
    res["serve_overhead_ms"] = _overhead(res, base)
    res["clients"], res["batch_ticks"], res["symbols"] = CLIENTS, BATCH_TICKS, N_SYMBOLS
    res["load_per_client"] = vars(b.load)
    res["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                      "python": platform.python_version()}
    return res


# -- command line ------------------------------------------------------------------------------

STEPS = ("starting PostgreSQL", "starting Ray", "baseline: LocalServices on uvicorn",
         "Ray Serve app", "done")


def _print(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    base = res["baseline_uvicorn"]
    table = Table(title=f"API under load: {CLIENTS} clients, {BATCH_TICKS:,}-tick batches")
    for col in ("figure", "Ray Serve", "uvicorn baseline", "Serve - baseline"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for k, v in res.items():
        if isinstance(v, float) and k not in base:  # the stream phase runs on Serve only
            table.add_row(k, f"{v:,.3f}", "", "")
        if isinstance(v, float) and k in base:
            diff = res["serve_overhead_ms"].get(k)
            table.add_row(k, f"{v:,.3f}", f"{base[k]:,.3f}",
                          "" if diff is None else f"{diff:+,.3f}")
    table.add_row("requests", str(sum(res["requests"].values())),
                  str(sum(base["requests"].values())), "")
    table.add_row("errors", str(res["errors"]), str(base["errors"]), "")
    console = Console()
    console.print(table)
    console.print(f"machine: {res['machine']['cpus']} CPUs, {res['machine']['platform']}")


@contextlib.contextmanager
def _stdout_to_stderr() -> Any:
    """Ray's log monitor prints to stdout (fd 1) from its own thread: send everything there
    to stderr until Ray is down, so ``--json`` prints one object alone. Yields the real
    stdout."""
    import ray

    sys.stdout.flush()
    saved = os.dup(1)
    real, sys.stdout = sys.stdout, sys.stderr
    os.dup2(2, 1)
    try:
        yield os.fdopen(os.dup(saved), "w")
    finally:
        ray.shutdown()
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)
        sys.stdout = real


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quick", action="store_true", help="fewer requests per phase")
    p.add_argument("--drive", metavar="URL", help=argparse.SUPPRESS)  # the child process
    p.add_argument("--symbols", help=argparse.SUPPRESS)
    p.add_argument("--load", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.drive:
        token = os.environ.get(TOKEN_ENV, "")
        if not token or not args.symbols or not args.load:
            p.error(f"--drive needs --symbols, --load and {TOKEN_ENV} in the environment")
        raw = asyncio.run(drive(args.drive, token, args.symbols.split(","),
                                Load(**json.loads(args.load))))
        print(json.dumps(summarise(raw)))
        return 0
    if args.json:
        with _stdout_to_stderr() as out:
            res = measure(args.quick)
        out.write(json.dumps(res) + "\n")
        return 0
    from rich.progress import Progress

    with Progress() as progress:
        task = progress.add_task("serve benchmark", total=len(STEPS))

        def step(name: str) -> None:
            progress.update(task, description=name, completed=STEPS.index(name))

        res = measure(args.quick, step)
        progress.update(task, completed=len(STEPS))
    _print(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
