"""``tripwire watchdog``, ``tripwire halt``, ``tripwire resume`` and ``tripwire status``.

The watchdog runs the invariant checks every ``[watchdog] interval_s`` until Ctrl-C (``--once``:
one pass), logging one structured line per check on stderr and printing a summary at the end.
With ``--api URL`` it reads the account and cancels/flattens through the orchestrator's HTTP
API (token from ``$TRIPWIRE_API_TOKEN`` or ``[watchdog] api_token_env``). With ``--exchange``
it goes to the venue itself: it builds the ``[execution]`` broker (ccxt; credentials from the
variables it names) and reads the account, cancels and flattens there, so a Serve app that
is down or wedged cannot keep it from stopping trading. Without either only the heartbeats
and the database are checked, and it says so.

The database: ``--dsn``, else ``$TRIPWIRE_WATCHDOG_DSN`` (the watchdog's own credentials),
else ``$TRIPWIRE_PG_DSN``, else the private cluster under the data directory.

Exit codes: 0 fine (``--once``: no breach; ``resume``: resumed or nothing to resume),
1 a breach was found (``--once``) or the database failed, 2 bad usage: a bad config value,
an empty halt reason, or a resume whose acknowledgement does not name the halt's code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from tripwire.commands.common import UsageError, add_config, add_json
from tripwire.model import NS_PER_SECOND, SystemClock
from tripwire.watchdog import (
    DSN_ENV,
    HttpControl,
    Watchdog,
    WatchdogFile,
    acknowledgement_error,
    load_watchdog_file,
    operator_reason,
)


@contextlib.contextmanager
def _dsn(args: argparse.Namespace, wd: WatchdogFile) -> Iterator[str]:
    explicit = args.dsn or os.environ.get(DSN_ENV, "").strip()
    if explicit:
        yield explicit
        return
    from tripwire.store.pg import database

    with database(wd.data_dir) as dsn:
        yield dsn


class ReconnectingStore:
    """The parts of the decision store the watchdog uses, connecting lazily and again after
    a failure, so a database that is down at start or goes away is a breach, not a crash."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._store: Any = None

    async def _get(self) -> Any:
        if self._store is None:
            from tripwire.store.pg_decisions import PgDecisionStore

            self._store = await asyncio.wait_for(PgDecisionStore.connect(self.dsn), 10.0)
        return self._store

    async def _call(self, name: str, *args: Any) -> Any:
        store = await self._get()
        try:
            return await getattr(store, name)(*args)
        except Exception:
            self._store = None  # reconnect next time
            with contextlib.suppress(Exception):
                await asyncio.wait_for(store.close(), 5.0)
            raise

    async def read_halt(self) -> Any:
        return await self._call("read_halt")

    async def set_halt(self, reason: str, by: str, ts_ns: int) -> None:
        await self._call("set_halt", reason, by, ts_ns)

    async def heartbeats(self) -> dict[str, tuple[int, str]]:
        return await self._call("heartbeats")

    async def heartbeat(self, component: str, ts_ns: int, detail: str = "") -> None:
        await self._call("heartbeat", component, ts_ns, detail)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None


def _control(args: argparse.Namespace, wd: WatchdogFile) -> Any:
    if args.api and getattr(args, "exchange", False):
        raise UsageError("--api and --exchange are two ways to reach the venue: give one")
    if getattr(args, "exchange", False):
        return _exchange_control(args)
    if not args.api:
        return None
    token = os.environ.get(wd.config.api_token_env, "")
    if not token:
        raise UsageError(f"--api needs the API token in ${wd.config.api_token_env}")
    return HttpControl(args.api, token, timeout_s=wd.config.api_timeout_s)


class _ExchangeControl:
    """BrokerControl over the ``[execution]`` ccxt broker, closing the broker with it."""

    def __init__(self, built: Any) -> None:
        from tripwire.watchdog import BrokerControl

        self.built = built
        self.inner = BrokerControl(built.broker, blocking=True)  # network: worker thread

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def close(self) -> None:
        self.built.close()


def _exchange_control(args: argparse.Namespace) -> _ExchangeControl:
    """The venue's own account, orders and positions (``--exchange``): the symbols are
    ``[risk] allowed_symbols``, the only ones Tripwire may hold. A configuration error
    (not ccxt, a missing credential variable, an unknown exchange id) is exit 2; an
    exchange that cannot be reached at start is exit 1."""
    from tripwire.config import load_settings
    from tripwire.execution.base import AuthenticationFailed
    from tripwire.execution.factory import build_broker
    from tripwire.model import SymbolTable

    settings = load_settings(args.config)
    if settings.execution.broker != "ccxt":
        raise UsageError(f'--exchange needs [execution] broker = "ccxt", got '
                         f'"{settings.execution.broker}" (a paper venue lives in the Serve '
                         f"app: use --api)")
    symbols = SymbolTable(sorted(settings.decisions.limits.allowed_symbols))
    try:
        built = build_broker(settings, symbols, SystemClock())
    except AuthenticationFailed as exc:
        if getattr(exc, "operation", "") == "configure":
            raise UsageError(f"--exchange: {exc}") from None
        raise
    return _ExchangeControl(built)


def _setup_logging(log_file: str | None = None, *, api: bool = False) -> None:
    """Structured lines on stderr, or appended to ``log_file``: never truncated, so the
    lines that say why an earlier run halted survive a restart. Each start writes a
    ``watchdog_start`` line first, so the runs in one file can be told apart."""
    handler: logging.Handler
    if log_file:
        # mode "a": O_APPEND; a second writer (e.g. the demo's copy of stderr) interleaves
        # whole lines instead of overwriting them.
        handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tripwire.watchdog")
    for old in logger.handlers:
        old.close()
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.info(json.dumps({"event": "watchdog_start", "pid": os.getpid(),
                            "ts_ns": SystemClock().now_ns(), "api": api}))


async def _watch(args: argparse.Namespace, wd: WatchdogFile, dsn: str) -> dict[str, Any]:
    control = await asyncio.to_thread(_control, args, wd)  # --exchange: network I/O
    store = ReconnectingStore(dsn)
    dog = Watchdog(store, control, wd.config, SystemClock())
    last: list[Any] = []
    try:
        if args.once:
            last = await dog.check_once()
        else:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            with contextlib.suppress(NotImplementedError):
                import signal

                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
            await dog.run(stop)
        halt = None
        with contextlib.suppress(Exception):
            halt = await store.read_halt()
    finally:
        await store.close()
        if control is not None:
            control.close()
    return {"checks": dog.stats["checks"], "breaches": dog.stats["breaches"],
            "halts": dog.stats["halts"], "cancelled": dog.stats["cancelled"],
            "flattened": dog.stats["flattened"], "alerts": dog.stats["alerts"],
            "outages": dog.stats["outages"], "outage_halts": dog.stats["outage_halts"],
            "restarts_seen": dog.stats["restarts_seen"],
            "last_breaches": [{"code": b.code, "detail": b.detail} for b in last],
            "halted": None if halt is None else halt.halted,
            "halt_reason": None if halt is None else halt.reason,
            "execution": ("none" if control is None
                          else "exchange" if isinstance(control, _ExchangeControl) else "api")}


def cmd_watchdog(args: argparse.Namespace) -> int:
    def body(wd: WatchdogFile) -> int:
        _setup_logging(args.log, api=bool(args.api or args.exchange))
        if not (args.api or args.exchange):
            print("tripwire watchdog: no --api or --exchange given: checking heartbeats and "
                  "the database "
                  "only (no drawdown, exposure or stop checks, no order cancels)",
                  file=sys.stderr)
        with _dsn(args, wd) as dsn:
            summary = asyncio.run(_watch(args, wd, dsn))
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"watchdog: {summary['checks']} check(s), {summary['breaches']} breach(es), "
                  f"{summary['halts']} halt(s) set, {summary['cancelled']} order(s) cancelled"
                  + (f"; halted: {summary['halt_reason']}" if summary["halted"] else ""))
        return 1 if args.once and summary["last_breaches"] else 0

    return _run("watchdog", args, body)


async def _with_store(dsn: str, fn: Any) -> Any:
    from tripwire.store.pg_decisions import PgDecisionStore

    store = await PgDecisionStore.connect(dsn)
    try:
        return await fn(store)
    finally:
        await store.close()


def _operator(args: argparse.Namespace) -> str:
    by = (args.by or "").strip()
    if by:
        return by
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "operator"


def cmd_halt(args: argparse.Namespace) -> int:
    def body(wd: WatchdogFile) -> int:
        try:
            reason = operator_reason(args.reason)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        by = _operator(args)

        async def act(store: Any) -> None:
            await store.set_halt(reason, by, SystemClock().now_ns())

        with _dsn(args, wd) as dsn:
            asyncio.run(_with_store(dsn, act))
        _say(args, {"halted": True, "reason": reason, "set_by": by},
             f"halted by {by}: {reason}")
        return 0

    return _run("halt", args, body)


def cmd_resume(args: argparse.Namespace) -> int:
    def body(wd: WatchdogFile) -> int:
        by = _operator(args)

        async def act(store: Any) -> dict[str, Any]:
            halt = await store.read_halt()
            if not halt.halted:
                return {"halted": False, "resumed": False, "reason": ""}
            problem = acknowledgement_error(halt.reason, args.ack)
            if problem is not None:
                raise UsageError(f"resume refused: {problem} (halted: {halt.reason})")
            await store.resume(by, args.ack.strip(), SystemClock().now_ns())
            return {"halted": False, "resumed": True, "reason": halt.reason, "by": by}

        with _dsn(args, wd) as dsn:
            out = asyncio.run(_with_store(dsn, act))
        text = (f"resumed by {by} (was halted: {out['reason']})" if out["resumed"]
                else "not halted: nothing to resume")
        _say(args, out, text)
        return 0

    return _run("resume", args, body)


def cmd_status(args: argparse.Namespace) -> int:
    def body(wd: WatchdogFile) -> int:
        async def read(store: Any) -> tuple[Any, dict[str, tuple[int, str]]]:
            return await store.read_halt(), await store.heartbeats()

        with _dsn(args, wd) as dsn:
            halt, beats = asyncio.run(_with_store(dsn, read))
        now = SystemClock().now_ns()
        ages = {c: round((now - ts) / NS_PER_SECOND, 3) for c, (ts, _) in sorted(beats.items())}
        out = {"halted": halt.halted, "reason": halt.reason, "set_by": halt.by,
               "heartbeats": {c: {"age_s": a, "detail": beats[c][1]} for c, a in ages.items()}}
        state = f"HALTED by {halt.by}: {halt.reason}" if halt.halted else "running (not halted)"
        lines = [state] + [f"  {c}: {a:.1f} s ago {beats[c][1]}".rstrip()
                           for c, a in ages.items()]
        _say(args, out, "\n".join(lines))
        return 0

    return _run("status", args, body)


def _say(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    print(json.dumps(obj) if args.json else text)


def _run(name: str, args: argparse.Namespace, body: Any) -> int:
    """Load the config, run ``body``, and map failures to exit codes with a message."""
    from tripwire.store.pg import PgError, PgNotInstalledError

    try:
        return body(load_watchdog_file(args.config))
    except (ValueError, PgNotInstalledError) as exc:
        print(f"tripwire {name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tripwire {name}: interrupted", file=sys.stderr)
        return 1
    except (PgError, OSError) as exc:
        print(f"tripwire {name}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # asyncpg's errors (server down, schema missing) share no base
        print(f"tripwire {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _common(p: argparse.ArgumentParser) -> None:
    add_config(p, "TOML file with a [watchdog] table (default: $TRIPWIRE_CONFIG)")
    p.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${DSN_ENV}, else $TRIPWIRE_PG_DSN, "
                                 "else the private cluster under the data directory)")
    add_json(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``watchdog``, ``halt``, ``resume`` and ``status`` to the ``tripwire`` command."""
    w = subparsers.add_parser("watchdog", help="check invariants and HALT on a breach")
    _common(w)
    w.add_argument("--once", action="store_true", help="one pass, then exit (1 on a breach)")
    w.add_argument("--api", help="orchestrator base URL for account checks and order cancels")
    w.add_argument("--exchange", action="store_true",
                   help="check and act on the [execution] exchange directly (ccxt), not "
                        "through the Serve app")
    w.add_argument("--log", help="append the structured lines to this file (default: "
                                 "stderr); a start line marks each run")
    w.set_defaults(func=cmd_watchdog)
    h = subparsers.add_parser("halt", help="set the halt flag: no order leaves until resumed")
    _common(h)
    h.add_argument("--reason", required=True, help="why (prefixed 'operator:' unless it "
                                                   "starts with a halt code)")
    h.add_argument("--by", help="who halts (default: the login name)")
    h.set_defaults(func=cmd_halt)
    r = subparsers.add_parser("resume", help="clear the halt flag with a written "
                                             "acknowledgement naming the halt's code")
    _common(r)
    r.add_argument("--ack", required=True, help="what was checked; must name the halt code")
    r.add_argument("--by", help="who resumes (default: the login name)")
    r.set_defaults(func=cmd_resume)
    s = subparsers.add_parser("status", help="the halt flag and the heartbeats")
    _common(s)
    s.set_defaults(func=cmd_status)

