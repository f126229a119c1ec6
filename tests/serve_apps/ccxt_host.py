"""Test helper: the real Serve app with ``[execution] broker = "ccxt"``, in a process of its own.

Run as ``python -m tests.serve_apps.ccxt_host`` by tests/serve_apps/test_ccxt_serve_app.py.
The session's Serve app (the paper venue) owns the session Ray's one Serve instance, so
this one gets a private local Ray of its own (:func:`actors.runtime.ensure_ray`: loopback
only, no dashboard, a small object store, token auth off on purpose) and
:func:`serve_apps.app.start` runs every deployment on it, HTTP on 127.0.0.1.

Input, from the environment (the test process owns the exchange and the database):

* ``CCXT_HOST_DSN`` -- a migrated database of the session's PostgreSQL;
* ``CCXT_HOST_PORT`` -- the HTTP port; ``CCXT_HOST_DATA`` -- the data directory;
* ``CCXT_HOST_URLS`` -- JSON, ccxt's ``urls['api']`` aimed at the loopback exchange;
* ``CCXT_HOST_API_TOKEN`` -- the bearer token of the mutating routes (read and removed from
  this process's environment before Ray starts: only its verifier reaches the replicas);
* ``TRIPWIRE_CCXT_API_KEY`` / ``TRIPWIRE_CCXT_SECRET`` -- the exchange credentials, read by
  the sign-off replica from its environment, as in production (Ray's processes inherit it).

The test-only ccxt class ``bracketbinance`` is registered in every Ray worker by the local
Ray's ``worker_process_setup_hook`` (:func:`worker_setup`), beside the loopback gRPC patch
that hook runs anyway. Output: one line ``READY <json>`` on stdout once the app answers,
progress on stderr; the app is drained and Ray shut down when stdin closes (the test is
done, or its process died) or on SIGTERM.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from typing import Any

from tests.execution.fake_binance import BRACKET_EXCHANGE, register_bracket_binance
from tests.execution.venues import CCXT_OPTIONS
from tests.graphs.harness import SYMBOL

READY = "READY "
# By its importable name: run with -m, this module is __main__ in the host process only.
HOOK = "tests.serve_apps.ccxt_host.worker_setup"
# The loopback exchange lists these two markets (no SOLUSDT, unlike the session app).
SYMBOLS = (SYMBOL, "BTCUSDT")


class _Setter:
    """``register_bracket_binance`` takes a pytest monkeypatch; a worker has none and keeps
    the class for its whole life."""

    @staticmethod
    def setattr(target: Any, name: str, value: Any, raising: bool = True) -> None:
        setattr(target, name, value)


def register() -> None:
    import ccxt

    if BRACKET_EXCHANGE not in ccxt.exchanges:
        register_bracket_binance(_Setter())


def worker_setup() -> None:
    """Every worker of this Ray: the loopback gRPC patch, then ``bracketbinance``."""
    from actors.runtime import loopback_grpc_hook

    loopback_grpc_hook()
    register()


def settings(data: str, urls: dict[str, str]) -> Any:
    """DIRECT mode on the wall clock, the ccxt broker aimed at the loopback exchange."""
    from tripwire.config import load_settings

    env = {"TRIPWIRE_DATA__DIR": data, "TRIPWIRE_RISK__MODE": "DIRECT",
           # every pushed incident is its own decision (no coalescing)
           "TRIPWIRE_SIGNOFF__INCIDENT_COOLDOWN_S": "0.001",
           "TRIPWIRE_EXECUTION__BROKER": "ccxt", "TRIPWIRE_EXECUTION__EXCHANGE": BRACKET_EXCHANGE,
           "TRIPWIRE_EXECUTION__RATE_LIMIT": "false",
           # a loaded 2-core CI machine: the loopback answers in ms, the replica may not run
           "TRIPWIRE_EXECUTION__TIMEOUT_S": "10.0", "TRIPWIRE_EXECUTION__POLL_S": "0.5"}
    for name, url in urls.items():
        env[f"TRIPWIRE_EXECUTION__URLS__{name.upper()}"] = f'"{url}"'
    loaded = load_settings(env=env)
    # ccxt's option keys are camelCase: a file's job (variables' keys are lowercased)
    execution = loaded.execution.model_copy(update={"ccxt_options": CCXT_OPTIONS})
    return dataclasses.replace(loaded, execution=execution)


def start_ray(data: str) -> None:
    """A private local Ray as :func:`actors.runtime.ensure_ray` starts one, with this
    module's setup hook in place of the runtime's (which it still runs)."""
    import ray

    from actors.runtime import ensure_ray

    init = ray.init

    def init_with_hook(*args: Any, **kwargs: Any) -> Any:
        env = dict(kwargs.get("runtime_env") or {})
        env["worker_process_setup_hook"] = HOOK
        return init(*args, **{**kwargs, "runtime_env": env})

    ray.init = init_with_hook
    try:
        ensure_ray(num_cpus=2, object_store_memory=128 * 1024 * 1024, data_dir=data)
    finally:
        ray.init = init


def main() -> int:
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    token = os.environ.pop("CCXT_HOST_API_TOKEN")
    t0 = time.monotonic()
    register()  # the driver validates nothing against ccxt, but keep one view of ccxt
    start_ray(os.environ["CCXT_HOST_DATA"])  # Ray's sessions and logs under it, 0700
    progress(f"ray up in {time.monotonic() - t0:.1f} s")
    import ray
    from ray import serve

    from serve_apps.app import start
    from serve_apps.config import ServeConfig

    app = None
    try:
        config = ServeConfig(port=int(os.environ["CCXT_HOST_PORT"]), shards=1, heartbeat_s=0.5,
                             triage_max_replicas=1, signoff_workers=1, store_ticks=False)
        app = start(settings(os.environ["CCXT_HOST_DATA"], json.loads(os.environ[
            "CCXT_HOST_URLS"])), os.environ["CCXT_HOST_DSN"], SYMBOLS, config=config,
            token=token, timeout_s=150.0)
        progress(f"app running in {time.monotonic() - t0:.1f} s")
        print(READY + json.dumps({"url": app.url, "pid": os.getpid()}), flush=True)
        sys.stdin.read()  # until the test closes it (or dies: its end of the pipe closes)
        t0 = time.monotonic()
    finally:
        try:
            if app is not None:
                app.shutdown(timeout_s=30.0)
        finally:
            serve.shutdown()
            ray.shutdown()
            progress(f"stopped in {time.monotonic() - t0:.1f} s")
    return 0


def progress(line: str) -> None:
    print(f"ccxt_host: {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
