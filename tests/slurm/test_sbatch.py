"""slurm/ray-cluster.sbatch on a real local SLURM: a backtest job, and scancel mid-job."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.slurm.conftest import LocalSlurm

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "slurm" / "ray-cluster.sbatch"
JOB_TIMEOUT_S = 240
READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60  # KillWait (30 s) plus margin: SLURM SIGKILLs whatever is left after it
READY_RE = re.compile(r"^ray-ready-seconds: (\d+(?:\.\d+)?)$", re.MULTILINE)

STOPPED_RE = re.compile(r"^ray-stopped$", re.MULTILINE)

pytestmark = pytest.mark.slow


def _submit(slurm: LocalSlurm, tmp_path: Path, command: list[str],
            env: dict[str, str] | None = None) -> tuple[int, Path]:
    """Submit the sbatch script from the repo root with this venv; returns (job id, output)."""
    env = {"TRIPWIRE_VENV": sys.prefix, "RAY_AUTH_MODE": "disabled",
           "TRIPWIRE_RAY_OBJECT_STORE_BYTES": str(256 * 1024 * 1024), **(env or {})}
    job = slurm.sbatch(["--time", "10", "--output", str(tmp_path / "slurm-tripwire-%j.out"),
                        str(SBATCH), "--", *command], cwd=REPO, env=env)
    return job, tmp_path / f"slurm-tripwire-{job}.out"


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _wait_for_line(slurm: LocalSlurm, job: int, out: Path, pattern: re.Pattern,
                   timeout: float, *, while_running: bool) -> str:
    """Poll the job's output until ``pattern`` shows up; fails with the output if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _text(out)
        if pattern.search(text):
            return text
        if while_running and slurm.state(job) not in ("PENDING", "RUNNING", "CONFIGURING"):
            break
        time.sleep(0.5)
    pytest.fail(f"job {job} ({slurm.state(job)}): no {pattern.pattern!r} in its output within "
                f"{timeout} s:\n{_text(out)}\n{slurm.logs()}")


def _job_processes(job: int) -> str:
    """Processes whose command line names the job's Ray temp dir ('' when none)."""
    res = subprocess.run(["pgrep", "-a", "-f", f"/tmp/ray-slurm-{job}( |/|$)"],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode in (0, 1), res.stderr
    return res.stdout


def test_backtest_job_runs_on_a_ray_cluster_in_the_allocation(local_slurm, tmp_path):
    out_dir = tmp_path / "bt"
    submitted = time.monotonic()
    job, out = _submit(local_slurm, tmp_path, [
        "python", "-m", "serve_apps.jobs.backtest", "--scenario-seed", "7", "--groups", "2",
        "--symbols", "BTCUSDT,ETHUSDT", "--out", str(out_dir)])
    # the wall time from sbatch to a ready cluster, scheduling included
    _wait_for_line(local_slurm, job, out, READY_RE, READY_TIMEOUT_S, while_running=True)
    to_ready = time.monotonic() - submitted
    state = local_slurm.wait(job, JOB_TIMEOUT_S)
    elapsed = time.monotonic() - submitted
    text = _text(out)
    assert state == "COMPLETED", f"job {job} ended {state}:\n{text}"
    assert local_slurm.job(job)["ExitCode"] == "0:0"
    ready = READY_RE.search(text)
    assert ready, text
    assert text.rstrip().endswith("ray-stopped"), text
    print(f"\nsbatch -> ray ready: {to_ready:.1f} s (the script's own ray-ready-seconds: "
          f"{ready.group(1)}); whole job {elapsed:.1f} s")

    report = json.loads((out_dir / "backtest.json").read_text())
    assert report["source"]["kind"] == "scenario"
    assert report["source"]["scenario"]["seed"] == 7
    assert report["tasks"] == 2 and len(report["per_task"]) == 2
    assert set(report["per_symbol"]) == {"BTCUSDT", "ETHUSDT"}
    totals = report["totals"]
    assert totals["ticks"] > 0
    assert totals["incidents"] >= 1  # seed 7 has events on BTC/ETH
    assert totals["anomalies"] >= totals["incidents"]
    assert sum(t["incidents"] for t in report["per_task"]) == totals["incidents"]
    assert len(report["decisions"]) == totals["incidents"]  # one sign-off per incident
    assert (out_dir / "backtest.md").exists()
    assert _job_processes(job) == ""


def test_job_exit_code_is_the_commands(local_slurm, tmp_path):
    job, out = _submit(local_slurm, tmp_path, [
        "python", "-c", "import os, sys; print('addr', os.environ['RAY_ADDRESS']); sys.exit(3)"])
    state = local_slurm.wait(job, JOB_TIMEOUT_S)
    text = _text(out)
    assert state == "FAILED", text
    assert local_slurm.job(job)["ExitCode"] == "3:0", text
    assert re.search(r"^addr \d+\.\d+\.\d+\.\d+:\d+$", text, re.MULTILINE), text
    assert text.rstrip().endswith("ray-stopped"), text
    assert _job_processes(job) == ""


def test_scancel_tears_the_ray_cluster_down(local_slurm, tmp_path):
    job, out = _submit(local_slurm, tmp_path, ["python", "-c", "import time; time.sleep(600)"])
    _wait_for_line(local_slurm, job, out, READY_RE, READY_TIMEOUT_S, while_running=True)
    assert "ray-stopped" not in _text(out)
    assert _job_processes(job) != ""  # the cluster is really up before we cancel it

    local_slurm.run(["scancel", str(job)])
    assert local_slurm.wait(job, STOP_TIMEOUT_S) == "CANCELLED"
    # SLURM marks the job CANCELLED at once; the script's SIGTERM trap then tears Ray down
    text = _wait_for_line(local_slurm, job, out, STOPPED_RE, STOP_TIMEOUT_S,
                          while_running=False)
    assert "got SIGTERM" in text
    assert _job_processes(job) == ""


# The driver the token test runs inside the job: the job's token connects, a wrong one not.
AUTH_CHECK = """
import os, subprocess, sys
import ray
ray.init()
print("right-token-nodes", len(ray.nodes()), flush=True)
ray.shutdown()
env = dict(os.environ, RAY_AUTH_TOKEN="0" * 32)
probe = "import ray; ray.init(); print('wrong-token-connected')"
res = subprocess.run(["timeout", "90", sys.executable, "-c", probe], env=env,
                     capture_output=True, text=True)
print("wrong-token-rc", res.returncode, "connected" in res.stdout, flush=True)
"""


def test_token_auth_admits_the_jobs_token_only(local_slurm, tmp_path):
    token = uuid.uuid4().hex
    script = tmp_path / "auth_check.py"
    script.write_text(AUTH_CHECK)
    job, out = _submit(local_slurm, tmp_path, ["python", str(script)],
                       env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    state = local_slurm.wait(job, JOB_TIMEOUT_S)
    text = _text(out)
    assert state == "COMPLETED", text
    assert "auth token" in text and "right-token-nodes 1" in text, text
    wrong = re.search(r"^wrong-token-rc (\d+) (True|False)$", text, re.MULTILINE)
    assert wrong and wrong.group(1) != "0" and wrong.group(2) == "False", text
    assert token not in text  # the secret stays out of the job's output
    assert text.rstrip().endswith("ray-stopped"), text


@pytest.mark.parametrize(("env", "message"), [
    ({"TRIPWIRE_VENV": "{tmp}/no-venv"}, "no venv at {tmp}/no-venv"),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "", "RAY_AUTH_TOKEN_PATH": "{tmp}/none"},
     "RAY_AUTH_MODE=token but no RAY_AUTH_TOKEN"),
    ({"RAY_AUTH_MODE": "open"}, "RAY_AUTH_MODE must be 'disabled' or 'token', got 'open'"),
    ({"TRIPWIRE_RAY_WAIT_S": "2m"}, "TRIPWIRE_RAY_WAIT_S must be whole seconds, got '2m'"),
])
def test_bad_settings_fail_the_job_with_a_clear_message(local_slurm, tmp_path, env, message):
    env = {"TRIPWIRE_VENV": sys.prefix} | {k: v.format(tmp=tmp_path) for k, v in env.items()}
    job = local_slurm.sbatch(["--output", str(tmp_path / "slurm-tripwire-%j.out"), str(SBATCH),
                              "--", "true"], cwd=REPO, env=env)
    assert local_slurm.wait(job, JOB_TIMEOUT_S) == "FAILED"
    text = _text(tmp_path / f"slurm-tripwire-{job}.out")
    assert local_slurm.job(job)["ExitCode"] == "2:0", text
    assert message.format(tmp=tmp_path) in text
    assert "ray-ready-seconds" not in text and _job_processes(job) == ""


# Run inside the job: one more Ray node through srun + ray-node.sh (the path the sbatch takes
# for nodes 2..N; a single-node SLURM cannot give the job a second node), then SIGTERM to its
# step, as the sbatch teardown does.
SRUN_WORKER = r"""
set -u
srun --nodes=1 --ntasks=1 -w "$SLURMD_NODENAME" --overlap \
    slurm/ray-node.sh worker "/tmp/ray-slurm-$SLURM_JOB_ID-w" auto "$RAY_ADDRESS" &
srun_pid=$!
python slurm/ray_wait.py --address "$RAY_ADDRESS" --nodes 2 --timeout-s 90 \
    && echo "worker-joined"
for step in $(squeue -h -s -j "$SLURM_JOB_ID" -o %i); do
    [[ $step == *.batch || $step == *.extern ]] || scancel --signal=TERM "$step"
done
wait "$srun_pid"
pgrep -f "/tmp/ray-slurm-$SLURM_JOB_ID-w/" >/dev/null && echo "worker-left" || echo "worker-gone"
"""


def test_a_worker_started_through_srun_joins_and_stops_on_step_sigterm(local_slurm, tmp_path):
    script = tmp_path / "srun_worker.sh"
    script.write_text(SRUN_WORKER)
    job, out = _submit(local_slurm, tmp_path, ["bash", str(script)])
    state = local_slurm.wait(job, JOB_TIMEOUT_S)
    text = _text(out)
    assert state == "COMPLETED", text
    assert re.search(r"^worker-joined$", text, re.MULTILINE), text
    assert re.search(r"^worker-gone$", text, re.MULTILINE), text
    assert text.rstrip().endswith("ray-stopped"), text
    assert _job_processes(job) == ""
    shutil.rmtree(f"/tmp/ray-slurm-{job}-w", ignore_errors=True)  # a worker node's own /tmp
