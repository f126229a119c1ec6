"""Starting or joining Ray, with settings that suit a small machine and a big cluster alike.

``ensure_ray()`` joins the cluster named by ``address`` (or ``RAY_ADDRESS``) when given,
and otherwise starts a local, private Ray with no dashboard and a modest object store.

A local Ray is private to this machine and, given a ``data_dir``, to this user:

- every port (GCS, raylet, object manager, dashboard and its agents, workers) listens on
  127.0.0.1 only (:func:`_loopback_only`): a reachable Ray port is remote code execution
  when auth is off, and an attack surface when it is on;
- with ``data_dir``, Ray's temp, session and log directories are under ``<data_dir>/ray``
  with mode 0700 (not the world-readable ``/tmp/ray``), or under a private ``mkdtemp``
  directory when that path is too long for Ray's unix sockets (:func:`ray_temp_dir`);
- with ``auth_token_file``, Ray's token auth is on (``RAY_AUTH_MODE=token``) and the token
  lives in that owner-only file; the Ray processes get its *path*
  (``RAY_AUTH_TOKEN_PATH``), never the token. Without it, the mode stays whatever the
  environment chose, else ``disabled`` (test sessions: loopback only, nobody else's Ray).

A cluster's own settings (address, auth mode, temp dir) are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tripwire.secretfile import ensure_secret, private_dir

LOCAL_OBJECT_STORE_BYTES = 512 * 1024 * 1024
LOOPBACK = "127.0.0.1"
# Ray puts unix sockets at <temp>/session_<date>_<time>_<us>_<pid>/sockets/plasma_store, and a
# socket path has at most 107 bytes (sun_path); this is that suffix at its longest (7-digit pid).
_SOCKET_SUFFIX = "/session_2026-12-07_03-26-50_123456_4194304/sockets/plasma_store"
MAX_SOCKET_PATH = 107
RAY_TEMP_SUBDIR = "ray"  # <data_dir>/ray: ours, 0700
_RAY_ROOT = "t"  # Ray's own temp root inside it (kept short: the socket path budget)

log = logging.getLogger(__name__)


def ensure_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_memory: int | None = LOCAL_OBJECT_STORE_BYTES,
    quiet: bool = True,
    dashboard: bool = False,
    data_dir: Path | str | None = None,
    auth_token_file: Path | str | None = None,
) -> dict[str, Any]:
    """Initialise Ray once per process; returns the cluster resources.

    ``data_dir`` and ``auth_token_file`` only apply to a local start (see the module doc).
    """
    import ray

    if ray.is_initialized():
        return ray.cluster_resources()
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": dashboard, "log_to_driver": not quiet}
    if quiet:  # commands print their own progress and summary; Ray's banner is noise there
        kwargs["logging_level"] = logging.WARNING
    if address is not None:  # a cluster: its own address, auth mode and temp dir
        ray.init(address=address, **kwargs)
        return ray.cluster_resources()
    if auth_token_file is not None:
        _token_auth(Path(auth_token_file))
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    _reload_auth_config()
    # "local": always a new private Ray, never a cluster that `ray start` left on this
    # machine (ray.init() alone would join that one).
    kwargs.update(address="local", num_cpus=num_cpus, object_store_memory=object_store_memory,
                  _node_ip_address=LOOPBACK, dashboard_host=LOOPBACK)
    if data_dir is not None:
        kwargs["_temp_dir"] = str(ray_temp_dir(data_dir))
    kwargs["runtime_env"] = {"worker_process_setup_hook": f"{__name__}.loopback_grpc_hook"}
    with _loopback_only():
        ray.init(**kwargs)
    return ray.cluster_resources()


RAY_TOKEN_FILE = "secrets/ray-auth-token"  # under the data dir, 0600: the local Ray's token


def ensure_command_ray(data_dir: Path | str, address: str | None = None,
                       **kw: Any) -> dict[str, Any]:
    """The Ray every command runs on: the cluster ``address`` (``[ray] address``, else
    ``RAY_ADDRESS``) names, else a private local Ray -- loopback only, its session under
    ``<data_dir>/ray`` (0700) and token auth with the token in ``<data_dir>/``
    :data:`RAY_TOKEN_FILE` (0600). One rule for ``demo``, ``live``, ``ingest``,
    ``backtest``, ``sweep``, ``eval`` and ``calibrate``: none of them starts a Ray that
    another user of the machine could reach (``kw``: :func:`ensure_ray`'s options)."""
    return ensure_ray(address or None, data_dir=data_dir,
                      auth_token_file=Path(data_dir) / RAY_TOKEN_FILE, **kw)


def ray_temp_dir(data_dir: Path | str) -> Path:
    """Ray's temp root (sessions, logs, sockets): ``<data_dir>/ray/t``.

    Ray makes its temp root and session directories world-writable (0777, so users can
    share a machine's Ray); the parent ``<data_dir>/ray`` is ours with mode 0700, which
    keeps everyone else out of all of it. When that path is too long for Ray's unix sockets
    the parent is a private ``tempfile.mkdtemp`` directory instead (a warning says so).
    """
    wanted = Path(data_dir).resolve() / RAY_TEMP_SUBDIR
    if len(str(wanted / _RAY_ROOT)) + len(_SOCKET_SUFFIX) <= MAX_SOCKET_PATH:
        return private_dir(wanted) / _RAY_ROOT
    short = Path(tempfile.mkdtemp(prefix="tripwire-ray-"))  # mkdtemp makes it 0700
    log.warning("Ray's temp dir is %s, not under %s: that path is too long for Ray's unix "
                "sockets (at most %d characters)", short / _RAY_ROOT, wanted,
                MAX_SOCKET_PATH - len(_SOCKET_SUFFIX) - len(_RAY_ROOT) - 1)
    return short / _RAY_ROOT


def _token_auth(token_file: Path) -> None:
    """Token auth for the local Ray about to start: the token in an owner-only file that
    this process and its children (Ray's processes) read through ``RAY_AUTH_TOKEN_PATH``."""
    ensure_secret(token_file)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_file.resolve())
    # RAY_AUTH_TOKEN beats the path; a token in the environment is copied into every Ray
    # process's environment, which is what the file avoids.
    os.environ.pop("RAY_AUTH_TOKEN", None)


def _reload_auth_config() -> None:
    """Make this process see the auth mode and token source now in its environment.

    Ray reads ``RAY_AUTH_MODE`` into its config when ``ray`` is first imported and caches
    the token once loaded; the Ray processes about to start read the environment afresh. A
    driver left on the old mode cannot talk to its own GCS ("token is missing"). This is
    what Ray's own ``_enable_token_auth`` and test helpers do.
    """
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """While a local Ray starts, make it listen on 127.0.0.1 only, on ports of its own.

    Ray turns a node address of 127.0.0.1 into the host's outward address ("so other nodes
    can reach it") unless multi-node clusters are switched off; with them off, the node's
    address stays 127.0.0.1 and the GCS, raylet, object manager, dashboard agents and every
    worker bind to it (Ray 2.60; tests/serve_apps/test_secrets.py checks the sockets). The
    switch is a module constant read when Ray resolves the address; it is set back
    afterwards so a later ``ray.init(address=...)`` of this process still joins a cluster
    with its real address. Not the environment variable: child processes that run
    ``ray start`` for a worker node would then refuse to.

    The dashboard agent's HTTP port is fixed (52365) by default, and ``ray.init`` offers no
    way to change it: a second local Ray on the host (a test session's beside the demo's)
    then runs without it, and the dashboard's log routes answer 500. Here it is 0 (a free
    port, which the agent reports back to Ray), set for this start only.
    """
    import ray._private.ray_constants as ray_constants
    from ray._private import parameter

    before = ray_constants.ENABLE_RAY_CLUSTER
    params_init = parameter.RayParams.__init__

    def any_agent_port(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("dashboard_agent_listen_port", 0)
        params_init(self, *args, **kwargs)

    ray_constants.ENABLE_RAY_CLUSTER = False
    parameter.RayParams.__init__ = any_agent_port  # type: ignore[method-assign]
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        parameter.RayParams.__init__ = params_init  # type: ignore[method-assign]


def loopback_grpc_hook() -> None:
    """Every worker of a local Ray (``worker_process_setup_hook``): gRPC servers that Ray
    code binds to all interfaces bind to 127.0.0.1 instead.

    Ray Serve 2.60 starts an inter-deployment gRPC server in every replica on ``[::]:0``
    whatever the node's address, the one port of a local Ray that the node address does not
    govern. Its callers connect to the node's address, which is 127.0.0.1 here. The patch
    is on ``ray._common.tls_utils.add_port_to_grpc_server`` before Serve imports it
    (a worker runs this hook before any task); only wildcard hosts are rewritten.
    """
    from ray._common import tls_utils

    original = tls_utils.add_port_to_grpc_server
    if getattr(original, "tripwire_loopback", False):
        return

    def add_port(server: Any, address: str) -> int:
        host, _, port = address.rpartition(":")
        if host in ("[::]", "0.0.0.0", ""):
            address = f"{LOOPBACK}:{port}"
        return original(server, address)

    add_port.tripwire_loopback = True  # type: ignore[attr-defined]
    tls_utils.add_port_to_grpc_server = add_port


_STATUS_KEYS = {
    "VmRSS:": "rss_mb",  # resident now
    "VmHWM:": "peak_rss_mb",  # resident at most, since the process started
    "RssAnon:": "anon_mb",  # private memory: what the process itself holds
    "RssShmem:": "shmem_mb",  # shared memory touched (Ray's object store is mapped here)
}


def process_rss_mb(pid: int | None = None) -> dict[str, float]:
    """Resident memory of a process (Linux /proc/<pid>/status), in MiB.

    ``rss_mb`` counts the pages of Ray's shared object store a process has touched, which
    grow towards the store's size as batches cycle through it; ``anon_mb`` is the private
    part, the one that would show a leak.
    """
    out = dict.fromkeys(_STATUS_KEYS.values(), 0.0)
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            key = _STATUS_KEYS.get(line.split(" ", 1)[0].split("\t", 1)[0])
            if key is not None:
                out[key] = int(line.split()[1]) / 1024
    return out


def kill_and_wait(handle: Any, timeout_s: float = 30.0) -> None:
    """Kill an actor and return once its process is gone (so its files are released)."""
    import time

    import ray

    ray.kill(handle, no_restart=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get(handle.__ray_ready__.remote(), timeout=timeout_s)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return
        time.sleep(0.05)
    raise TimeoutError(f"actor {handle} still alive {timeout_s} s after ray.kill")
