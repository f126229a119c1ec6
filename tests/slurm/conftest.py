"""A real, private, single-node SLURM for the tests (session-scoped ``local_slurm``).

Installs Debian's ``slurm-wlm`` and ``munge`` when missing (root + apt only; anything else
fails the tests with a message saying what is missing, it never skips), writes a
slurm.conf into a temp dir (free ports, state, spool, logs and PID files all in there),
starts ``munged``, ``slurmctld`` and ``slurmd`` in the foreground with Popen (so their PIDs
are known), waits until ``sinfo`` shows the node idle, and stops the daemons by PID at the
end. Clients (sbatch, scontrol, scancel, srun inside jobs) find it through ``SLURM_CONF``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "sinfo", "squeue", "scontrol",
            "scancel")
APT_TIMEOUT_S = 900
READY_TIMEOUT_S = 60
CMD_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
DRAIN_TIMEOUT_S = 45  # KillWait (30 s) plus margin
MEMORY_MARGIN_MIB = 1024  # slurmd drains a node that reports less memory than configured
TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "BOOT_FAIL", "DEADLINE",
})


# ----------------------------------------------------------------------------- install


def _missing() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def _apt_install() -> str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "slurm-wlm", "munge"]
    out = ""
    for attempt in (cmd, ["apt-get", "update"], cmd):  # an update only when needed
        try:
            res = subprocess.run(attempt, env=env, capture_output=True, text=True,
                                 timeout=APT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"{' '.join(attempt)} took more than {APT_TIMEOUT_S} s"
        out = res.stdout[-2000:] + res.stderr[-2000:]
        if attempt is cmd and res.returncode == 0:
            return ""
    return out


def ensure_installed() -> None:
    """Install slurm-wlm and munge when missing; pytest.fail (never skip) when impossible."""
    missing = _missing()
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.fail(f"SLURM tests need {missing}: install slurm-wlm and munge (apt-get install "
                    "slurm-wlm munge) or run the tests as root so the fixture can", pytrace=False)
    if shutil.which("apt-get") is None:
        pytest.fail(f"SLURM tests need {missing} and there is no apt-get to install them",
                    pytrace=False)
    err = _apt_install()
    if err or _missing():
        pytest.fail(f"installing slurm-wlm munge failed (still missing {_missing()}): {err}",
                    pytrace=False)


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


# ----------------------------------------------------------------------------- config


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _mem_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - MEMORY_MARGIN_MIB
    raise RuntimeError("/proc/meminfo has no MemTotal line")


def write_conf(root: Path, host: str, munge_socket: Path) -> Path:
    """A single-node slurm.conf with everything under ``root``; returns its path."""
    for sub in ("state", "spool", "log", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ctld_port, slurmd_port = _free_ports(2)  # never a system SLURM's 6817/6818
    cpus = len(os.sched_getaffinity(0))
    lines = [
        "ClusterName=tripwire-test",
        f"SlurmctldHost={host}",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MailProg=/bin/true",
        "ReturnToService=2",
        "KillWait=30",  # scancel: SIGTERM, then this long for the teardown, then SIGKILL
        "MinJobAge=600",
        # job ids name Ray temp dirs (/tmp/ray-slurm-<id>): start at a random one so two
        # test sessions on one machine do not both run a job 1
        f"FirstJobId={random.randint(10_000, 9_000_000)}",  # finished jobs stay visible to scontrol for the tests
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'run' / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        f"NodeName={host} CPUs={cpus} RealMemory={_mem_mib()} State=UNKNOWN",
        "PartitionName=debug Default=YES Nodes=ALL MaxTime=INFINITE State=UP",
    ]
    conf = root / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


# ----------------------------------------------------------------------------- the cluster


@dataclasses.dataclass
class LocalSlurm:
    """A running private SLURM: run clients against it, submit and watch jobs."""

    root: Path
    conf: Path
    host: str
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict)

    def run(self, cmd: Sequence[str], *, timeout: float = CMD_TIMEOUT_S, check: bool = True,
            cwd: str | Path | None = None, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(list(cmd), env={**self.env, **(env or {})}, cwd=cwd,
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {res.returncode}: "
                               f"{res.stdout}{res.stderr}\n{self.logs()}")
        return res

    def sbatch(self, args: Sequence[str], *, cwd: str | Path | None = None,
               env: dict[str, str] | None = None) -> int:
        """Submit; returns the job id."""
        out = self.run(["sbatch", "--parsable", *args], cwd=cwd, env=env).stdout.strip()
        if not re.fullmatch(r"\d+(;\S+)?", out):
            raise RuntimeError(f"sbatch printed {out!r}, not a job id")
        return int(out.split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """``scontrol show job`` as a dict; empty once the job is forgotten."""
        res = self.run(["scontrol", "-o", "show", "job", str(job_id)], check=False)
        if res.returncode != 0:
            if "Invalid job id" in res.stderr + res.stdout:
                return {}
            raise RuntimeError(f"scontrol show job {job_id}: {res.stderr}")
        return dict(kv.split("=", 1) for kv in res.stdout.split() if "=" in kv)

    def state(self, job_id: int) -> str:
        return self.job(job_id).get("JobState", "GONE")

    def wait(self, job_id: int, timeout: float) -> str:
        """Poll until the job is in a final state (or gone); returns that state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(job_id)
            if state in TERMINAL_STATES or state == "GONE":
                return state
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} still {self.state(job_id)} after {timeout} s\n"
                           f"{self.logs()}")

    def logs(self, tail: int = 30) -> str:
        parts = []
        for name in ("munged", "slurmctld", "slurmd"):
            path = self.root / "log" / f"{name}.out"
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {name} (last {tail} lines)\n" + "\n".join(text))
        return "\n".join(parts)


def _start(slurm: LocalSlurm, name: str, cmd: list[str]) -> None:
    log = open(slurm.root / "log" / f"{name}.out", "w")  # the daemon's copy outlives ours
    slurm.procs[name] = subprocess.Popen(cmd, env=slurm.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()  # the child holds its own copy


def _wait_until(slurm: LocalSlurm, what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in slurm.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode} while waiting for "
                                   f"{what}\n{slurm.logs()}")
        if check():
            return
        time.sleep(0.3)
    raise TimeoutError(f"no {what} after {timeout} s\n{slurm.logs()}")


def _node_idle(slurm: LocalSlurm) -> bool:
    try:
        res = slurm.run(["timeout", "5", "sinfo", "-h", "-o", "%T"], check=False, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0 and res.stdout.strip() == "idle"


def start_slurm(root: Path) -> LocalSlurm:
    """munged, slurmctld and slurmd in the foreground, all state under ``root``."""
    host = socket.gethostname().split(".")[0]
    (root / "log").mkdir(parents=True, exist_ok=True)
    munge_dir = root / "munge"
    munge_dir.mkdir(mode=0o700, exist_ok=True)
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = munge_dir / "munge.socket"
    conf = write_conf(root, host, sock)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    slurm = LocalSlurm(root=root, conf=conf, host=host, env=env)
    try:
        _start(slurm, "munged", [
            _sbin("munged"), "--foreground", "--force", f"--key-file={key}",
            f"--socket={sock}", f"--pid-file={munge_dir / 'munged.pid'}",
            f"--log-file={root / 'log' / 'munged.log'}", f"--seed-file={munge_dir / 'seed'}"])
        _wait_until(slurm, "munge socket", sock.exists, READY_TIMEOUT_S)
        _start(slurm, "slurmctld", [_sbin("slurmctld"), "-D", "-i", "-f", str(conf)])
        _start(slurm, "slurmd", [_sbin("slurmd"), "-D", "-f", str(conf)])
        _wait_until(slurm, "idle node in sinfo", lambda: _node_idle(slurm), READY_TIMEOUT_S)
    except BaseException:
        stop_slurm(slurm)
        raise
    return slurm


def stop_slurm(slurm: LocalSlurm) -> None:
    """Cancel what is left, then stop the daemons by PID (slurmd first, munged last)."""
    if "slurmctld" in slurm.procs and slurm.procs["slurmctld"].poll() is None:
        slurm.run(["scancel", "--user", "root"], check=False)
        # let the jobs' own teardown run while slurmd still serves them (bounded)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and slurm.run(
                ["squeue", "-h", "-o", "%i"], check=False).stdout.strip():
            time.sleep(0.5)
    for name in ("slurmd", "slurmctld", "munged"):
        proc = slurm.procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def local_slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    ensure_installed()
    # a short path: SLURM and munge put sockets in here
    root = tmp_path_factory.mktemp("slurm", numbered=True)
    try:
        slurm = start_slurm(root)
    except (RuntimeError, TimeoutError, OSError) as exc:
        pytest.fail(f"could not start the local SLURM: {exc}", pytrace=False)
    yield slurm
    stop_slurm(slurm)
