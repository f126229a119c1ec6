"""``tripwire slurm submit/status`` against fake ``sbatch``/``scontrol`` on PATH.

The fakes are small shell scripts that record their arguments and print what SLURM prints
("Submitted batch job 42", ``scontrol show job -o`` lines); the end-to-end test against a
real SLURM lives with the sbatch script.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tripwire.cli import main
from tripwire.slurm import DEFAULT_SCRIPT

SBATCH = """#!/bin/sh
printf '%s\\n' "$@" > "$FAKE/sbatch.args"
printf '%s' "$TRIPWIRE_VENV" > "$FAKE/sbatch.venv"
if [ -n "$SBATCH_FAIL" ]; then echo "sbatch: error: $SBATCH_FAIL" >&2; exit 1; fi
if [ -n "$SBATCH_SAYS" ]; then echo "$SBATCH_SAYS"; exit 0; fi
for a in "$@"; do
  case "$a" in --output=*) out=$(echo "${a#--output=}" | sed 's/%j/42/');
                           echo "ray-ready-seconds: 3" > "$out"; echo "sweep done" >> "$out";;
  esac
done
echo "Submitted batch job 42"
"""

# Each call prints the next line of $FAKE/states (the last one repeats); "UNKNOWN" fails
# the way scontrol does for a job it does not know.
SCONTROL = """#!/bin/sh
echo "$@" >> "$FAKE/scontrol.calls"
n=$(wc -l < "$FAKE/scontrol.calls")
state=$(sed -n "${n}p" "$FAKE/states"); [ -n "$state" ] || state=$(tail -n 1 "$FAKE/states")
if [ "$state" = UNKNOWN ]; then
  echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1
fi
echo "JobId=$4 JobName=tripwire-ray UserId=u(0) JobState=$state Reason=None ExitCode=0:0 \
StdOut=/tmp/slurm-tripwire-$4.out"
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch) -> Path:
    """A bin dir with the fakes first on PATH; the cwd is a fresh folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", SBATCH), ("scontrol", SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE", str(tmp_path))
    for var in ("SBATCH_FAIL", "SBATCH_SAYS", "TRIPWIRE_VENV"):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def _states(fake: Path, *states: str) -> None:
    (fake / "states").write_text("\n".join(states) + "\n")


def _sbatch_args(fake: Path) -> list[str]:
    return (fake / "sbatch.args").read_text().splitlines()


JOB = ["python", "-m", "serve_apps.jobs.sweep", "--returns-threshold", "8,12", "--json"]


def test_submit_runs_sbatch_with_the_script_and_the_job(fake, capsys):
    argv = ["slurm", "submit", "--nodes", "2", "--time", "00:30:00", "--partition", "debug",
            "--cpus-per-node", "4", "--", *JOB]
    assert main(argv) == 0
    out_file = fake / "work" / "slurm-tripwire-42.out"
    assert _sbatch_args(fake) == [
        "--nodes=2", "--time=00:30:00", "--partition=debug", "--cpus-per-task=4",
        f"--output={fake / 'work'}/slurm-tripwire-%j.out", str(DEFAULT_SCRIPT), *JOB]
    printed = capsys.readouterr().out
    assert "job 42 submitted" in printed and str(out_file) in printed
    assert not (fake / "scontrol.calls").exists()  # no --wait: no polling
    # the nodes get a venv to activate: this interpreter's
    assert (Path((fake / "sbatch.venv").read_text()) / "bin" / "activate").is_file()


def test_wait_polls_until_completed_and_exits_0(fake, capsys):
    _states(fake, "PENDING", "RUNNING", "RUNNING", "COMPLETED")
    argv = ["slurm", "submit", "--nodes", "1", "--time", "1-00:00:00", "--wait",
            "--poll-s", "0.01", "--", *JOB]
    assert main(argv) == 0
    calls = (fake / "scontrol.calls").read_text().splitlines()
    assert calls == ["show job -o 42"] * 4
    cap = capsys.readouterr()
    assert "job 42 ended COMPLETED" in cap.out
    assert "sweep done" in cap.out  # the output's tail
    for state in ("PENDING", "RUNNING", "COMPLETED"):
        assert f"job 42: {state}" in cap.err


@pytest.mark.parametrize("end", ["FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"])
def test_wait_exits_1_when_the_job_did_not_complete(fake, capsys, end):
    _states(fake, "RUNNING", end)
    argv = ["slurm", "submit", "--nodes", "1", "--time", "00:05:00", "--wait", "--poll-s",
            "0.01", "--", "true"]
    assert main(argv) == 1
    assert f"ended {end}" in capsys.readouterr().out


def test_wait_fails_closed_when_the_state_cannot_be_read(fake, capsys):
    _states(fake, "RUNNING", "UNKNOWN")
    argv = ["slurm", "submit", "--nodes", "1", "--time", "00:05:00", "--wait", "--poll-s",
            "0.01", "--", "true"]
    assert main(argv) == 1
    assert "Invalid job id" in capsys.readouterr().err


def test_wait_is_bounded(fake, capsys):
    _states(fake, "PENDING")
    argv = ["slurm", "submit", "--nodes", "1", "--time", "00:05:00", "--wait", "--poll-s",
            "0.01", "--wait-timeout-s", "0.05", "--", "true"]
    assert main(argv) == 1
    assert "still PENDING" in capsys.readouterr().err
    assert len((fake / "scontrol.calls").read_text().splitlines()) == 6  # 0.05 / 0.01 + 1


@pytest.mark.parametrize(("env", "message"), [
    ({"SBATCH_FAIL": "invalid partition specified: nope"}, "invalid partition specified"),
    ({"SBATCH_SAYS": "sbatch: queued somewhere"}, "no job id"),
])
def test_sbatch_errors_exit_1_with_its_message(fake, capsys, monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["slurm", "submit", "--nodes", "1", "--time", "00:05:00", "--", "true"]) == 1
    assert message in capsys.readouterr().err


def test_missing_sbatch_is_named(fake, capsys, monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert main(["slurm", "submit", "--nodes", "1", "--time", "00:05:00", "--", "true"]) == 1
    assert "sbatch not found" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "named"), [
    (["--time", "30"], "--time"),
    (["--time", "00:61:00"], "--time"),
    (["--partition", "a b"], "--partition"),
    (["--script", "/no/such.sbatch"], "--script"),
    (["--venv", "/no/such/venv"], "--venv"),
    (["--job-name", "x;rm"], "--job-name"),
])
def test_bad_options_exit_2_naming_them(fake, capsys, extra, named):
    argv = ["slurm", "submit", "--nodes", "1", "--time", "00:05:00", *extra, "--", "true"]
    assert main(argv) == 2
    assert named in capsys.readouterr().err
    assert not (fake / "sbatch.args").exists()


def test_no_job_exits_2(fake, capsys):
    assert main(["slurm", "submit", "--nodes", "1", "--time", "00:05:00", "--"]) == 2
    assert "no job given" in capsys.readouterr().err
    assert not (fake / "sbatch.args").exists()


@pytest.mark.parametrize(("extra", "named"), [(["--nodes", "0"], "--nodes"),
                                              (["--cpus-per-node", "x"], "--cpus-per-node")])
def test_argparse_refusals_exit_2_naming_them(fake, capsys, extra, named):
    with pytest.raises(SystemExit) as exc:
        main(["slurm", "submit", "--time", "00:05:00", "--nodes", "1", *extra, "--", "true"])
    assert exc.value.code == 2
    assert named in capsys.readouterr().err


def test_status_prints_the_state(fake, capsys):
    _states(fake, "RUNNING")
    assert main(["slurm", "status", "42", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["job_id"] == 42 and info["state"] == "RUNNING"
    assert info["finished"] is False and info["ok"] is False
    assert info["stdout"] == "/tmp/slurm-tripwire-42.out"


def test_status_of_an_unknown_job_exits_1(fake, capsys):
    _states(fake, "UNKNOWN")
    assert main(["slurm", "status", "7"]) == 1
    assert "Invalid job id" in capsys.readouterr().err
