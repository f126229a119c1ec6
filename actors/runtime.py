"""Starting or joining Ray, with settings that suit a small machine and a big cluster alike.

``ensure_ray()`` joins the cluster named by ``address`` (or ``RAY_ADDRESS``) when given,
and otherwise starts a local Ray with no dashboard and a modest object store. Token auth:
a local, private Ray is started with ``RAY_AUTH_MODE=disabled`` unless the environment
already chose a mode; a cluster's own setting is left alone.
"""

from __future__ import annotations

import logging
import os
from typing import Any

LOCAL_OBJECT_STORE_BYTES = 512 * 1024 * 1024


def ensure_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_memory: int | None = LOCAL_OBJECT_STORE_BYTES,
    quiet: bool = True,
    dashboard: bool = False,
) -> dict[str, Any]:
    """Initialise Ray once per process; returns the cluster resources."""
    import ray

    if ray.is_initialized():
        return ray.cluster_resources()
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": dashboard, "log_to_driver": not quiet}
    if quiet:  # commands print their own progress and summary; Ray's banner is noise there
        kwargs["logging_level"] = logging.WARNING
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        # "local": always a new private Ray, never a cluster that `ray start` left on this
        # machine (ray.init() alone would join that one).
        kwargs.update(address="local", num_cpus=num_cpus,
                      object_store_memory=object_store_memory)
    else:
        kwargs["address"] = address
    ray.init(**kwargs)
    return ray.cluster_resources()


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
