"""Two simulated machines (network namespaces): one Ray cluster whose tasks run on both.

First by hand: a head in namespace a (10.213.0.1), a worker in namespace b (10.213.0.2),
the driver in namespace a too (nothing in the root namespace talks to those addresses).
Then through SLURM: nodes tw-a and tw-b (own network and UTS namespaces), and
``slurm/ray-cluster.sbatch --nodes=2`` submitted from namespace a builds the cluster.
Afterwards no process, namespace or temp dir of the run may be left.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.slurm.conftest import ensure_installed
from tests.slurm.netns import list_namespaces, netns_pair, ray_cluster, slurm_two_nodes

NODES_TIMEOUT_S = 60
TASKS = 20
REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "slurm" / "ray-cluster.sbatch"
JOB_TIMEOUT_S = 180

# Runs inside namespace a. Waits (bounded) for both nodes, then fans out tasks that each
# hold the node's only CPU for a moment, so the scheduler has to spill some to node b.
DRIVER = f"""
import json, time
import ray

ray.init()
deadline = time.monotonic() + {NODES_TIMEOUT_S}
while sum(n["Alive"] for n in ray.nodes()) < 2:
    if time.monotonic() > deadline:
        raise SystemExit(f"only {{ray.nodes()}} after {NODES_TIMEOUT_S} s")
    time.sleep(0.5)

@ray.remote(num_cpus=1)
def where():
    time.sleep(0.3)
    return ray.get_runtime_context().get_node_id()

ran = ray.get([where.remote() for _ in range({TASKS})])
nodes = {{n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}}
print(json.dumps({{"nodes": nodes, "ran": ran}}))
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tasks_run_on_both_namespaced_nodes() -> None:
    with netns_pair() as pair:
        with ray_cluster(pair, nodes=2) as cluster:
            res = cluster.driver([sys.executable, "-c", DRIVER], timeout=180)
            temp_dirs = list(cluster.temp_dirs)
        left_pids = _pgrep(temp_dirs)
    _check_spread(json.loads(res.stdout.strip().splitlines()[-1]), pair.ip_a, pair.ip_b)
    # nothing of the run survives: processes, namespaces, temp dirs
    assert left_pids == []
    assert set(pair.names).isdisjoint(list_namespaces())
    assert pair.leftovers() == []
    assert not any(p.exists() for p in temp_dirs)


def _check_spread(out: dict, ip_a: str, ip_b: str) -> None:
    by_ip = {ip: node for node, ip in out["nodes"].items()}
    assert set(by_ip) == {ip_a, ip_b}, out["nodes"]
    assert len(out["ran"]) == TASKS
    assert set(out["ran"]) == {by_ip[ip_a], by_ip[ip_b]}, out["ran"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sbatch_two_slurm_nodes_form_one_ray_cluster(tmp_path_factory) -> None:
    ensure_installed()
    root = tmp_path_factory.mktemp("s2n", numbered=True)  # short: munge's socket lives here
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    out = root / "job.out"
    env = {"TRIPWIRE_VENV": sys.prefix, "RAY_AUTH_MODE": "disabled",
           "TRIPWIRE_RAY_OBJECT_STORE_BYTES": str(256 * 1024 * 1024)}
    with netns_pair() as pair:
        with slurm_two_nodes(pair, root) as slurm:
            assert slurm.run_a(["hostname"]).stdout.strip() == "tw-a"  # its UTS namespace
            job = slurm.sbatch(["--nodes=2", "--time", "10", "--output", str(out), str(SBATCH),
                                "--", sys.executable, str(driver)], env=env, cwd=REPO)
            state = slurm.wait(job, JOB_TIMEOUT_S)
            logs = slurm.logs()
        temp_dir = Path(f"/tmp/ray-slurm-{job}")
        left_pids = _pgrep([temp_dir])
    text = out.read_text(errors="replace") if out.exists() else ""
    assert state == "COMPLETED", f"{state}\n{text}\n{logs}"
    assert "2 node(s)" in text and "ray-stopped" in text, text
    result = [line for line in text.splitlines() if line.startswith('{"nodes"')]
    assert len(result) == 1, text
    _check_spread(json.loads(result[0]), pair.ip_a, pair.ip_b)
    assert left_pids == []
    assert not temp_dir.exists()
    assert pair.leftovers() == []


def _pgrep(paths: list[Path]) -> list[int]:
    found: list[int] = []
    for path in paths:
        res = subprocess.run(["pgrep", "-f", f"{path}( |/|$)"], capture_output=True,
                             text=True, timeout=30)
        assert res.returncode in (0, 1), res.stderr  # 1: no match
        found += [int(p) for p in res.stdout.split()]
    return found
