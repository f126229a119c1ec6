"""Wait until a Ray cluster shows N alive nodes; used by ray-cluster.sbatch.

    python slurm/ray_wait.py --address HOST:PORT --nodes N --timeout-s 120

Exit 0 when N nodes are alive, 1 on timeout (the message says how many joined), 2 on bad
arguments. Polls the GCS port first (cheap) so ``ray.init`` is not tried before the head
listens; the whole wait, connection included, is bounded by --timeout-s.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time

POLL_S = 0.5


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ray_wait.py", description=__doc__.splitlines()[0])
    p.add_argument("--address", required=True, help="head GCS address HOST:PORT")
    p.add_argument("--nodes", type=_positive_int, required=True, help="nodes to wait for")
    p.add_argument("--timeout-s", type=float, default=120.0, help="give up after this")
    args = p.parse_args(argv)
    host, _, port = args.address.rpartition(":")
    if not host or not port.isdigit():
        p.error(f"--address must be HOST:PORT, got {args.address!r}")
    return args


def _wait_port(host: str, port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(POLL_S)
    return False


def _alive(ray) -> int:
    return sum(1 for n in ray.nodes() if n.get("Alive"))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    deadline = time.monotonic() + args.timeout_s
    host, _, port = args.address.rpartition(":")
    if not _wait_port(host, int(port), deadline):
        print(f"ray_wait: head {args.address} not listening after {args.timeout_s} s",
              file=sys.stderr)
        return 1
    import ray

    ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        alive = _alive(ray)
        while alive < args.nodes and time.monotonic() < deadline:
            time.sleep(POLL_S)
            alive = _alive(ray)
    finally:
        ray.shutdown()
    if alive < args.nodes:
        print(f"ray_wait: {alive} of {args.nodes} nodes alive after {args.timeout_s} s",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
