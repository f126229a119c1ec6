"""SLURM from tripwire: the ``sbatch`` line that runs a job in a Ray cluster, the job id it
prints, and the job's state as ``scontrol`` reports it.

Plain subprocess calls to the SLURM client tools (no Ray here): ``slurm/ray-cluster.sbatch``
starts Ray inside the allocation and runs the command given after it.

>>> submit_command(["python", "-m", "serve_apps.jobs.sweep"], SubmitOptions(nodes=2,
...     time="00:30:00", output="/tmp/tw-%j.out"), script="slurm/ray-cluster.sbatch")
['sbatch', '--nodes=2', '--time=00:30:00', '--output=/tmp/tw-%j.out', \
'slurm/ray-cluster.sbatch', 'python', '-m', 'serve_apps.jobs.sweep']
>>> parse_job_id("Submitted batch job 42\\n"), parse_job_id("43;cluster\\n")
(42, 43)
>>> parse_state("JobId=42 JobName=tw JobState=COMPLETED Reason=None ExitCode=0:0")
JobInfo(job_id=42, state='COMPLETED', exit_code='0:0', reason='None', stdout=None)
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCRIPT = REPO / "slurm" / "ray-cluster.sbatch"
DEFAULT_OUTPUT = "slurm-tripwire-%j.out"  # the script's own #SBATCH --output
CLIENT_TIMEOUT_S = 60.0  # per sbatch/scontrol call: the controller may be slow, never hung
MAX_NODES = 10_000
MAX_CPUS = 4_096
# States after which the job will not run again (squeue/scontrol JOB STATE CODES).
DONE_OK = frozenset({"COMPLETED"})
DONE_BAD = frozenset({"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                      "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"})
_TIME = re.compile(r"^(?:(\d+)-)?(\d{1,2}):([0-5]\d):([0-5]\d)$")
_NAME = re.compile(r"^[A-Za-z0-9_.,+-]{1,200}$")
_SUBMITTED = re.compile(r"Submitted batch job (\d+)")
_PARSABLE = re.compile(r"^(\d+)(?:;\S+)?$")

Runner = Callable[..., subprocess.CompletedProcess]


class SlurmError(RuntimeError):
    """A SLURM client call failed or printed something unexpected (the message says what)."""


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """What ``sbatch`` is asked for; validated at construction, errors name the option."""

    nodes: int
    time: str  # [D-]HH:MM:SS
    partition: str | None = None
    cpus_per_node: int | None = None
    output: str = DEFAULT_OUTPUT  # %j: the job id
    job_name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or not (
                1 <= self.nodes <= MAX_NODES):
            raise ValueError(f"--nodes must be an integer in [1, {MAX_NODES}], got {self.nodes!r}")
        time_limit_s(self.time)
        if self.partition is not None and not _NAME.match(self.partition):
            raise ValueError(f"--partition must be a SLURM partition name, got {self.partition!r}")
        if self.cpus_per_node is not None and (
                isinstance(self.cpus_per_node, bool) or not isinstance(self.cpus_per_node, int)
                or not 1 <= self.cpus_per_node <= MAX_CPUS):
            raise ValueError(f"--cpus-per-node must be an integer in [1, {MAX_CPUS}], "
                             f"got {self.cpus_per_node!r}")
        if not self.output or "\n" in self.output:
            raise ValueError(f"--output must be a file name pattern, got {self.output!r}")
        if self.job_name is not None and not _NAME.match(self.job_name):
            raise ValueError(f"--job-name must be letters, digits and _.,+-, "
                             f"got {self.job_name!r}")


@dataclass(frozen=True, slots=True)
class JobInfo:
    job_id: int
    state: str
    exit_code: str | None = None
    reason: str | None = None
    stdout: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in DONE_OK or self.state in DONE_BAD

    @property
    def ok(self) -> bool:
        return self.state in DONE_OK


def time_limit_s(text: str) -> int:
    """Seconds of a ``[D-]HH:MM:SS`` limit; ValueError naming ``--time`` otherwise.

    >>> time_limit_s("00:30:00"), time_limit_s("1-02:00:00")
    (1800, 93600)
    """
    m = _TIME.match(text or "")
    if not m:
        raise ValueError(f"--time must be [D-]HH:MM:SS, e.g. 00:30:00, got {text!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total < 1:
        raise ValueError(f"--time must be at least one second, got {text!r}")
    return total


def submit_command(job: Sequence[str], opts: SubmitOptions,
                   script: str | Path = DEFAULT_SCRIPT) -> list[str]:
    """``sbatch [options] <script> <job ...>``: the job's words are passed as they are."""
    if not job or not job[0]:
        raise ValueError("no job command given after --")
    cmd = ["sbatch", f"--nodes={opts.nodes}", f"--time={opts.time}"]
    if opts.partition:
        cmd.append(f"--partition={opts.partition}")
    if opts.cpus_per_node:
        cmd.append(f"--cpus-per-task={opts.cpus_per_node}")  # one task (Ray node) per node
    if opts.job_name:
        cmd.append(f"--job-name={opts.job_name}")
    cmd.append(f"--output={opts.output}")
    return [*cmd, str(script), *job]


def parse_job_id(text: str) -> int:
    """The id from sbatch's "Submitted batch job N" (or ``--parsable``'s "N[;cluster]")."""
    m = _SUBMITTED.search(text)
    if m is None:
        m = _PARSABLE.match(text.strip())
    if m is None:
        raise SlurmError(f"sbatch printed no job id: {text.strip()[:200]!r}")
    return int(m.group(1))


def output_path(pattern: str, job_id: int, cwd: Path) -> Path:
    """Where the job's output goes (``%j`` and ``%A`` expanded, relative to ``cwd``)."""
    name = pattern.replace("%j", str(job_id)).replace("%A", str(job_id))
    path = Path(name)
    return path if path.is_absolute() else cwd / path


def parse_state(text: str) -> JobInfo:
    """``scontrol show job -o`` (one line of Key=Value pairs) to a :class:`JobInfo`."""
    fields = dict(re.findall(r"(\w+)=(\S*)", text))
    if not fields.get("JobId", "").isdigit() or not fields.get("JobState"):
        raise SlurmError(f"scontrol printed no JobId/JobState: {text.strip()[:200]!r}")
    return JobInfo(int(fields["JobId"]), fields["JobState"], fields.get("ExitCode"),
                   fields.get("Reason"), fields.get("StdOut"))


def _call(cmd: Sequence[str], run: Runner, **kw) -> str:
    try:
        res = run(list(cmd), capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S,
                  check=False, **kw)
    except FileNotFoundError:
        raise SlurmError(f"{cmd[0]} not found: is this a SLURM login node (PATH)?") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{cmd[0]} did not answer within {CLIENT_TIMEOUT_S:g} s") from None
    if res.returncode != 0:
        raise SlurmError(f"{cmd[0]} failed (exit {res.returncode}): "
                         f"{(res.stderr or res.stdout).strip()[:500]}")
    return res.stdout


def submit(job: Sequence[str], opts: SubmitOptions, *, script: str | Path = DEFAULT_SCRIPT,
           env: dict[str, str] | None = None, cwd: Path | None = None,
           run: Runner = subprocess.run) -> int:
    """Run sbatch; the new job's id."""
    return parse_job_id(_call(submit_command(job, opts, script), run, env=env, cwd=cwd))


def job_state(job_id: int, *, run: Runner = subprocess.run) -> JobInfo:
    """The job's state from ``scontrol show job -o``; SlurmError when SLURM does not know
    it (any more: finished jobs are purged after MinJobAge)."""
    return parse_state(_call(["scontrol", "show", "job", "-o", str(job_id)], run))


def wait_for(job_id: int, *, poll_s: float, timeout_s: float, run: Runner = subprocess.run,
             sleep: Callable[[float], None] = time.sleep,
             on_change: Callable[[JobInfo], None] | None = None) -> JobInfo:
    """Poll until the job has finished; SlurmError after ``timeout_s`` or when the job
    cannot be read (fail closed: an unknown end is not a success)."""
    if poll_s <= 0 or timeout_s <= 0:
        raise ValueError(f"poll_s and timeout_s must be > 0, got {poll_s}, {timeout_s}")
    polls = max(1, int(timeout_s / poll_s) + 1)  # the bound, counted in polls
    last = None
    for _ in range(polls):
        info = job_state(job_id, run=run)
        if on_change is not None and info.state != last:
            on_change(info)
        last = info.state
        if info.finished:
            return info
        sleep(poll_s)
    raise SlurmError(f"job {job_id} still {last} after {timeout_s:g} s of waiting")
