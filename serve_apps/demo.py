"""`tripwire demo`: the whole system on a laptop, on the embedded defaults.

The arguments are parsed in :mod:`serve_apps.commands`; this module runs the demo.

It starts local Ray, the private PostgreSQL under the data directory, the chdb tick store
and the Serve app on 127.0.0.1, and the watchdog as a separate process. It then replays the
default labelled scenario (24 symbols, one simulated day, injected events and news) into the
data plane deployment through its Ray handle, as the live job does (the HTTP ingest routes
are for outside producers), as fast as the app takes them:
detection -> triage -> sign-off -> paper execution, on market time (``[serve] clock =
"market"``: price and verdict ages are measured on the ticks' clock, as in a backtest). When a
batch trips, the replay waits for the decisions before it goes on, so the market does not
outrun the agents. The demo is one *run* (``GET /v1/runs``; the console shows it by default):
the summary's counts and the report are that run's rows only, over the scenario's market
period, and positions, PnL and the halt flag are read at the end (after ``--keep-running``'s
session too). At the end it prints a summary (ticks, trips, incidents by verdict,
detection precision/recall against the labels, decisions and outcomes, PnL, LLM calls and
cost, where the console is) and writes the report (markdown + HTML + PNG plots).

``--keep-running`` leaves the console up until Ctrl-C; ``--json`` prints the summary as one
JSON object. LLM: the configured routes (the offline rules analyst when no key is set),
``--llm rules`` to force it, ``--llm local`` for the bundled small model (llama.cpp). Ctrl-C
stops gracefully: the replay stops, decisions in flight finish, the tick sink flushes,
PostgreSQL stops. Exit codes: 0 done, 1 a failure, 2 bad input or a missing prerequisite.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tripwire.config import Settings, load_settings
from tripwire.feeds.scenario import Scenario, default_scenario_config
from tripwire.model import NS_PER_SECOND, TickBatch, new_id

API_TOKEN_FILE = "secrets/api-token"  # under the data dir, 0600: the operator's API token
IDLE_WAIT_S = 120.0  # the longest the replay waits for the decisions of one batch
WATCHDOG_TOML = """[watchdog]
interval_s = 1.0
heartbeats = ["shard:*"]
heartbeat_max_age_s = 15.0
max_drawdown = 0.05
max_gross_exposure = {exposure}
require_stops = true
"""


def cmd_demo(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
        settings, scenario = _prepare(args)
    except ValueError as exc:
        err.print(f"[red]tripwire demo: {exc}[/red]")
        return 2
    if args.llm == "local":  # `make demo` does not install the local model: say how, up front
        from tripwire.llm.local import LocalModelError, check_installed

        try:
            check_installed()
        except LocalModelError as exc:
            err.print(f"[red]tripwire demo --llm local: {exc}[/red]")
            return 2
    from tripwire.store.pg import PgError, PgNotInstalledError, database

    try:
        with database(settings.data_dir) as dsn:
            summary = _Demo(settings, scenario, dsn, args, err).run()
    except PgNotInstalledError as exc:
        err.print(f"[red]tripwire demo: {exc}[/red]")
        return 2
    except (PgError, OSError, RuntimeError, TimeoutError) as exc:
        err.print(f"[red]tripwire demo: {type(exc).__name__}: {exc}[/red]")
        return 1
    _print(summary, args.json)
    return 0


def _prepare(args: argparse.Namespace) -> tuple[Settings, Scenario]:
    from tripwire.risk.modes import parse_safety_mode

    settings = load_settings(args.config)
    mode = parse_safety_mode(args.mode, "--mode")
    settings = dataclasses.replace(
        settings, decisions=dataclasses.replace(settings.decisions, mode=mode))
    if args.llm == "rules":
        from tripwire.llm.config import load_llm_config

        settings = dataclasses.replace(settings, llm=load_llm_config({}))
    if not 1_000 <= args.batch <= 100_000:
        raise ValueError(f"--batch must be in [1000, 100000], got {args.batch}")
    cfg = default_scenario_config(args.seed)
    changes: dict[str, Any] = {}
    if args.symbols is not None:
        changes["n_symbols"] = args.symbols
    if args.hours is not None:
        changes["duration_s"] = args.hours * 3600.0
    if changes:
        cfg = dataclasses.replace(cfg, **changes, warmup_s=None)
    return settings, Scenario(cfg)


class _Demo:
    def __init__(self, settings: Settings, scenario: Scenario, dsn: str,
                 args: argparse.Namespace, err: Console) -> None:
        self.settings, self.scenario, self.dsn = settings, scenario, dsn
        self.args, self.err = args, err
        self.token, self.token_where = _operator_token(Path(settings.data_dir))
        self.stopping = False
        self.counts = collections.Counter()
        self.run_id = new_id()  # this run's id: GET /v1/runs, ?run= on the lists, the report

    def run(self) -> dict[str, Any]:
        from ray import serve

        from actors.runtime import RAY_TOKEN_FILE, ensure_command_ray
        from serve_apps.app import start
        from serve_apps.config import ServeConfig
        from tripwire.store.migrate import migrate

        t0 = time.perf_counter()
        logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the summary says it all
        asyncio.run(migrate(self.dsn))
        asyncio.run(self._start_run())  # before the app: every row it writes is this run's
        with contextlib.ExitStack() as stack:
            settings = self._llm(stack)
            with self.err.status("starting Ray and the Serve app", spinner="dots"):
                # Loopback only, token auth, session logs in <data>/ray (0700).
                ensure_command_ray(self.settings.data_dir,
                                   dashboard=not self.args.no_dashboard)
                stack.callback(_quiet(_ray_shutdown))
                base = ServeConfig.from_settings(settings)
                config = dataclasses.replace(base, clock="market",
                                             port=self.args.port or base.port)
                app = start(settings, self.dsn, self.scenario.symbols, config=config,
                            token=self.token)
                stack.callback(_quiet(serve.shutdown))
            setup_s = time.perf_counter() - t0
            watchdog, stop_watchdog = self._watchdog(app.url, stack)
            self._warn_if_halted(app.url)
            drained: dict[str, Any] = {}
            try:
                with _interrupts_as_stop(self):
                    replay_s = self._replay(app)
                    self._wait_idle(app)
                    live = self._live(app)
                    if self.args.keep_running and not self.stopping:
                        interim = self._summary(live, asyncio.run(self._stored(live)),
                                                setup_s, replay_s, watchdog)
                        _print(interim, self.args.json)
                        self.err.print(f"console: {app.url}/  (operator token: "
                                       f"{self.token_where}; Ray dashboard token: in "
                                       f"{Path(self.settings.data_dir).resolve() / RAY_TOKEN_FILE})"
                                       " -- Ctrl-C stops")
                        while not self.stopping:
                            time.sleep(0.5)
                        # The end is now: the operator may have traded, halted or resumed.
                        self._wait_idle(app)
                        live = self._live(app)
            finally:
                stop_watchdog()  # first: the app going away is not a breach
                with self.err.status("shutting down: decisions finish, the tick sink "
                                     "flushes", spinner="dots"):
                    drained = _drain(app)
            # The run ends after the drain: decisions finished by it are the run's too.
            summary = self._summary(live, asyncio.run(self._stored(live, end=True)),
                                    setup_s, replay_s, watchdog)
            summary["shutdown"] = _shutdown_figures(drained, summary)
            summary["wall_s"] = round(time.perf_counter() - t0, 1)
            return summary

    # -- parts -------------------------------------------------------------------------------

    def _llm(self, stack: contextlib.ExitStack) -> Settings:
        if self.args.llm != "local":
            return self.settings
        from tripwire.llm.config import load_llm_config
        from tripwire.llm.local import LocalServer

        with self.err.status("starting the local model (llama.cpp)", spinner="dots"):
            server = stack.enter_context(LocalServer(threads=2))
        llm = load_llm_config({"routes": [
            {"name": "local", "provider": "openai-compatible", "model": server.model_id,
             "base_url": server.base_url, "timeout_s": 120.0, "retries": 0},
            {"name": "rules", "provider": "rules"}]})
        return dataclasses.replace(self.settings, llm=llm)

    def _watchdog(self, url: str, stack: contextlib.ExitStack) -> tuple[dict[str, Any], Any]:
        """The watchdog: its own process, outside Ray and the graphs."""
        data = Path(self.settings.data_dir)
        cfg = data / "watchdog-demo.toml"
        exposure = self.settings.decisions.limits.max_gross_exposure
        cfg.write_text(WATCHDOG_TOML.format(exposure=exposure))
        path = data / "watchdog-demo.log"
        # Append, never truncate: the lines of an earlier run say why it halted. The marker
        # (and the watchdog's own watchdog_start line) separate the runs in the file.
        log = open(path, "a", encoding="utf-8")  # closed by the stack
        stack.callback(log.close)
        log.write(json.dumps({"event": "demo_watchdog_start", "run": self.run_id,
                              "ts_ns": time.time_ns(), "api": url}) + "\n")
        log.flush()
        env = {**os.environ, "TRIPWIRE_API_TOKEN": self.token, "TRIPWIRE_WATCHDOG_DSN": self.dsn}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tripwire.cli", "watchdog", "--config", str(cfg),
             "--api", url, "--log", str(path)], env=env, stdout=log, stderr=subprocess.STDOUT)

        def stop() -> None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        stack.callback(stop)
        info = {"pid": proc.pid, "log": str(path), "config": str(cfg)}
        return info, stop

    def _warn_if_halted(self, url: str) -> None:
        import httpx

        halt = httpx.get(f"{url}/v1/halt", timeout=30).json()
        if halt["halted"]:
            self.err.print(f"[yellow]trading is halted ({halt['reason']}); no order will be "
                           f"placed until `tripwire resume --ack ...` names the reason[/yellow]")

    def _replay(self, app: Any) -> float:
        t0 = time.perf_counter()
        with Progress(
                TextColumn("[bold]replaying"), BarColumn(), MofNCompleteColumn(),
                TextColumn("minutes · {task.fields[ticks]:,} ticks · {task.fields[trips]} trips "
                           "· {task.fields[incidents]} incidents"), TimeElapsedColumn(),
                console=self.err, transient=True, disable=self.args.json) as bar:
            minutes = int(self.scenario.config.duration_s // self.scenario.config.block_s)
            task = bar.add_task("replay", total=minutes or None, ticks=0, trips=0, incidents=0)
            pending: list[TickBatch] = []
            for chunk in self.scenario.blocks():
                if self.stopping:
                    break
                if chunk.news:  # news first: an incident only sees news older than itself
                    self._news(app, chunk.news)
                pending.append(chunk.ticks)
                if sum(len(p) for p in pending) >= self.args.batch:
                    self._post(app, TickBatch.concat(pending))
                    pending = []
                bar.update(task, advance=1, ticks=self.counts["accepted"],
                           trips=self.counts["trips"], incidents=self.counts["incidents"])
            if pending and not self.stopping:
                self._post(app, TickBatch.concat(pending))
        return time.perf_counter() - t0

    def _post(self, app: Any, ticks: TickBatch) -> None:
        for lo in range(0, len(ticks), self.args.batch):
            out = self._ticks(app, ticks.take(slice(lo, lo + self.args.batch)))
            if out["incidents"]:
                self._wait_idle(app)

    def _news(self, app: Any, items: list) -> None:
        app.dataplane.news.remote(list(items)).result(timeout_s=300)
        self.counts["news"] += len(items)

    def _ticks(self, app: Any, batch: TickBatch) -> dict[str, Any]:
        out, _replayed = app.dataplane.ingest.remote(batch).result(timeout_s=300)
        self.counts["sent"] += len(batch)
        for key in ("accepted", "rejected", "trips"):
            self.counts[key] += out[key]
        self.counts["incidents"] += len(out["incidents"])
        return out

    def _wait_idle(self, app: Any) -> None:
        deadline = time.monotonic() + IDLE_WAIT_S
        while time.monotonic() < deadline and not self.stopping:
            if app.signoff.idle.remote().result(timeout_s=60):
                return
            time.sleep(0.05)

    # -- the summary -------------------------------------------------------------------------

    async def _start_run(self) -> None:
        from tripwire.store.pg_decisions import PgDecisionStore

        sc = self.scenario.config
        store = await PgDecisionStore.connect(self.dsn, max_size=1)
        try:
            await store.start_run(
                self.run_id, f"demo: {len(self.scenario.symbols)} symbols, "
                f"{sc.duration_s / 3600:g} simulated h, {self.settings.decisions.mode.value}",
                period_start_ns=sc.start_ns, period_end_ns=sc.end_ns + NS_PER_SECOND,
                payload={"kind": "demo", "seed": self.args.seed})
        finally:
            await store.close()

    def _live(self, app: Any) -> dict[str, Any]:
        """What only the running app knows, read now: trips (scored against the labels),
        PnL, positions, LLM cost and the halt flag."""
        import httpx

        from tripwire.detect.evaluate import evaluate

        sc = self.scenario
        trips = app.dataplane.trips.remote().result(timeout_s=120)
        quality = evaluate(trips, sc.labels, sc.symbols,
                           duration_ns=int(sc.config.duration_s * 1e9))
        with httpx.Client(base_url=app.url, timeout=60) as c:
            return {"quality": quality, "pnl": c.get("/v1/pnl").json(),
                    "positions": c.get("/v1/positions").json()["positions"],
                    "costs": c.get("/v1/llm/costs").json(), "halt": c.get("/v1/halt").json(),
                    "console": f"{app.url}/", "api_docs": f"{app.url}/docs",
                    "ray_dashboard": _dashboard_url()}

    def _summary(self, live: dict[str, Any], stored: tuple[dict[str, Any], dict[str, Any]],
                 setup_s: float, replay_s: float, watchdog: dict[str, Any]) -> dict[str, Any]:
        sc, quality = self.scenario, live["quality"]
        pnl, costs = live["pnl"], live["costs"]
        counts, report = stored
        return {
            "run": report["run"],
            "ticks": {"sent": self.counts["sent"], "accepted": self.counts["accepted"],
                      "rejected": self.counts["rejected"], "news": self.counts["news"]},
            "trips": self.counts["trips"], "incidents": counts["incidents"],
            "verdicts": counts["verdicts"], "decisions": counts["decisions"],
            "orders": counts["orders"], "fills": counts["fills"],
            "detection": {"precision": round(quality.precision, 4),
                          "recall": {k: round(v, 4) for k, v in quality.recall.items()},
                          "alarms": quality.alarms, "false_alarms": quality.false_alarms},
            "pnl": {k: pnl[k] for k in ("equity", "realised_pnl", "unrealised_pnl", "fees",
                                        "drawdown")},
            "open_positions": len(live["positions"]),
            "positions": [{"symbol": p["symbol"], "qty": p["qty"]} for p in live["positions"]],
            "llm": {"calls": costs["calls"], "usd": round(costs["usd"], 6),
                    "routes": sorted(costs["by_route"])},
            "halt": live["halt"], "mode": self.settings.decisions.mode.value,
            "symbols": len(sc.symbols), "simulated_hours": sc.config.duration_s / 3600,
            "setup_s": round(setup_s, 1), "replay_s": round(replay_s, 1),
            "ticks_per_s": round(self.counts["accepted"] / replay_s) if replay_s else 0,
            "console": live["console"], "api_docs": live["api_docs"],
            "ray_dashboard": live["ray_dashboard"], "watchdog": watchdog,
            "report": {k: v for k, v in report.items() if k != "run"},
        }

    async def _stored(self, live: dict[str, Any], *, end: bool = False
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
        """This run's counts and report, both from the run's rows only (``end``: the run
        is over; its end is recorded first)."""
        from tripwire.report import build_report, write_report
        from tripwire.store.pg_decisions import PgDecisionStore

        quality = live["quality"]
        store = await PgDecisionStore.connect(self.dsn, max_size=2)
        try:
            if end:
                await store.end_run(self.run_id)
            counts = await store.counts(run=self.run_id)
            report = await build_report(
                store, run=self.run_id, ledger=store.llm_ledger(),  # the cluster's llm_calls
                quality={"precision": quality.precision,
                         **{f"recall_{k}": v for k, v in quality.recall.items()}})
            run = await store.run(self.run_id)
        finally:
            await store.close()
        paths = write_report(report, Path(self.settings.data_dir) / "reports" / "demo")
        out = {k: str(v) for k, v in paths.items() if k in ("markdown", "html", "json")}
        return counts, {**out, "period": report["period"],
                        "run": {"id": run["id"], "label": run["label"],
                                "started_ns": run["started_ns"], "ended_ns": run["ended_ns"],
                                "period_start_ns": run["period_start_ns"],
                                "period_end_ns": run["period_end_ns"]}}


@contextlib.contextmanager
def _interrupts_as_stop(demo: _Demo):
    """Ctrl-C: stop the replay and go to the graceful shutdown (a second one is fatal)."""
    previous = signal.getsignal(signal.SIGINT)

    def on_int(signum, frame) -> None:
        if demo.stopping:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        demo.stopping = True
        demo.err.print("[yellow]stopping: finishing decisions and flushing ticks "
                       "(Ctrl-C again to abort)[/yellow]")

    signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _drain(app: Any, timeout_s: float = 60.0) -> dict[str, Any]:
    """Drain the app, and read the data plane's own counters after its sink flushed.

    The plane counts every tick it accepted from any client (an operator may post ticks
    during ``--keep-running``), the sink every tick it stored: those two are comparable.
    The demo's own count of what it sent is not (it was: stored minus the demo's ticks
    went negative by the operator's ticks). After its drain the plane accepts nothing more,
    so the two are final. ``app.shutdown()`` then drains again (a no-op) and deletes it.
    """
    plane = app.dataplane.drain.remote().result(timeout_s=timeout_s)
    stats = app.dataplane.stats.remote().result(timeout_s=timeout_s)
    rest = app.shutdown(timeout_s)
    return {"dataplane": plane, "plane": stats, "signoff": rest.get("signoff")}


def _shutdown_figures(drained: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    stored = (drained.get("dataplane") or {}).get("ticks")
    accepted = (drained.get("plane") or {}).get("accepted")
    lost = None if stored is None or accepted is None else accepted - stored
    return {"ticks_stored": stored, "ticks_accepted_by_app": accepted, "ticks_lost": lost,
            "ticks_from_other_clients": None if accepted is None
            else accepted - summary["ticks"]["accepted"],
            "decisions_unfinished": (drained.get("signoff") or {}).get("unfinished_at_close")}


def _dashboard_url() -> str:
    """Where Ray's dashboard is (its Serve and metrics pages show this app)."""
    import ray

    url = ray.get_runtime_context().dashboard_url if hasattr(
        ray.get_runtime_context(), "dashboard_url") else None
    if not url:
        with contextlib.suppress(Exception):
            url = ray._private.worker.get_dashboard_url()
    return f"http://{url}" if url else "not started (--no-dashboard)"


def _operator_token(data_dir: Path) -> tuple[str, str]:
    """The API token and where the operator reads it (never the token itself: it must not
    reach a terminal, a log or CI output). ``$TRIPWIRE_API_TOKEN`` if set, else the token in
    ``<data_dir>/secrets/api-token`` (0600), made on the first run and kept for the next."""
    if os.environ.get("TRIPWIRE_API_TOKEN", "").strip():
        return os.environ["TRIPWIRE_API_TOKEN"].strip(), "the value of $TRIPWIRE_API_TOKEN"
    from tripwire.secretfile import ensure_secret

    path = data_dir.resolve() / API_TOKEN_FILE
    return ensure_secret(path, 24), f"in {path}"


def _ray_shutdown() -> None:
    import ray

    ray.shutdown()


def _quiet(fn):
    def call() -> None:
        with contextlib.suppress(Exception):
            fn()
    return call


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        # flush: with --keep-running a reader of the pipe needs it while the demo goes on
        print(json.dumps(summary, default=str), flush=True)
        return
    out = Console()
    t = Table(title=f"Tripwire demo ({summary['mode']}, paper venue, "
              f"{summary['symbols']} symbols, {summary['simulated_hours']:g} simulated h)",
              show_header=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    ticks = summary["ticks"]
    t.add_row("ticks", f"{ticks['accepted']:,} accepted, {ticks['rejected']:,} dead-lettered, "
              f"{ticks['news']} news; {summary['ticks_per_s']:,} ticks/s via HTTP")
    d = summary["detection"]
    recall = ", ".join(f"{k} {v:.2f}" for k, v in sorted(d["recall"].items()))
    t.add_row("detection", f"{summary['trips']:,} trips; precision {d['precision']:.2f}; "
              f"recall {recall}")
    t.add_row("incidents", _kv(summary["incidents"]))
    t.add_row("verdicts", _kv(summary["verdicts"]))
    t.add_row("decisions", _kv(summary["decisions"]))
    t.add_row("orders/fills", f"{_kv(summary['orders'])}; {summary['fills']} fills")
    p = summary["pnl"]
    t.add_row("PnL", f"equity {p['equity']:,.2f} (realised {p['realised_pnl']:+,.2f}, "
              f"unrealised {p['unrealised_pnl']:+,.2f}, fees {p['fees']:,.2f}); "
              f"{summary['open_positions']} open position(s)")
    t.add_row("LLM", f"{summary['llm']['calls']} calls, {summary['llm']['usd']:.4f} USD "
              f"({', '.join(summary['llm']['routes']) or '-'})")
    h = summary["halt"]
    t.add_row("halt", f"HALTED: {h['reason']}" if h["halted"] else "not halted")
    t.add_row("time", f"set-up {summary['setup_s']} s, replay {summary['replay_s']} s")
    t.add_row("console", summary["console"])
    t.add_row("Ray dashboard", summary["ray_dashboard"])
    run = summary.get("run") or {}
    t.add_row("run", f"{run.get('id', '-')} ({run.get('label', '')}); counts, report and "
              "console are this run's rows")
    t.add_row("report", summary["report"].get("html", "-"))
    if "shutdown" in summary:
        s = summary["shutdown"]
        t.add_row("shutdown", f"{s['ticks_stored']} ticks stored of "
                  f"{s['ticks_accepted_by_app']} accepted, {s['ticks_lost']} lost, "
                  f"{s['decisions_unfinished']} decisions unfinished")
    out.print(t)


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"
