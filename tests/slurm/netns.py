"""Two simulated machines on one host: network namespaces, a bridge, and a Ray cluster.

``netns_pair()`` creates three namespaces with a per-run suffix: ``tw-a-<s>`` and
``tw-b-<s>`` (the two "machines") and ``tw-br-<s>`` holding the bridge, so the root
namespace never gets a link, an address or a route. Each machine has ``eth0`` (one end
of a veth pair whose other end is a bridge port) with an address in 10.213.0.0/24 that
exists only inside these namespaces, and ``lo`` up. Everything is created with
``ip -n <ns>`` so no interface ever appears in the root namespace, and torn down by name.

Never talk to 10.213.0.x from the root namespace (there is no route; traffic would
leave the machine): every client runs inside a namespace via :meth:`NetnsPair.argv`.

``NetnsRay`` starts a Ray head in machine a and optionally a worker in machine b
(per-run temp dirs: ``ip netns exec`` keeps the mount namespace, so /tmp is shared),
and stops them by PID (never ``ray stop``, which would hit every Ray on the host).

``slurm_two_nodes`` runs SLURM on the same pair: munged in the root namespace (a socket
file), slurmctld and slurmd ``tw-a`` in a, slurmd ``tw-b`` in b, each SLURM daemon also in
its own UTS namespace so its hostname is its node name. The conf is the single-node one
of ``tests/slurm/conftest.py`` rewritten for two nodes (``NodeAddr`` = the namespace
addresses; per-node spool, PID and log files, since /tmp is shared).

The namespaces have no default route, so nothing started in them can reach past the
bridge (Ray's "cannot reach 8.8.8.8" warning in the logs is that, and harmless).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

SUBNET_PREFIX = "10.213.0"
PREFIX_LEN = 24
CMD_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
RAY_START_TIMEOUT_S = 120
RAY_PORT = 6379  # a fresh namespace has every port free; no clash with the host's Ray
OBJECT_STORE_BYTES = 200 * 1024 * 1024  # two nodes' stores share one machine's /dev/shm


class NetnsError(RuntimeError):
    """A namespace or Ray step failed; the message names the command and its output."""


def _run(argv: Sequence[str], *, timeout: float = CMD_TIMEOUT_S,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                             env=env)
    except subprocess.TimeoutExpired as exc:
        raise NetnsError(f"{' '.join(argv)} took more than {timeout} s") from exc
    if res.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} exited {res.returncode}: "
                         f"{(res.stdout + res.stderr)[-2000:]}")
    return res


def list_namespaces() -> set[str]:
    """Names of the named network namespaces (``ip netns list``)."""
    out = _run(["ip", "netns", "list"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def namespace_pids(ns: str) -> list[int]:
    """PIDs of the processes inside namespace ``ns`` (empty when it does not exist)."""
    res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                         timeout=CMD_TIMEOUT_S)
    return [int(p) for p in res.stdout.split()] if res.returncode == 0 else []


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state != "Z"


def kill_pids(pids: Sequence[int], timeout: float = STOP_TIMEOUT_S) -> list[int]:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; returns PIDs still alive after that."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.2)
        if not any(alive(p) for p in pids):
            return []
    return [p for p in pids if alive(p)]


@dataclasses.dataclass(frozen=True)
class NetnsPair:
    """Two "machines" (namespaces a and b) joined by a bridge living in a third namespace."""

    suffix: str

    @property
    def a(self) -> str:
        return f"tw-a-{self.suffix}"

    @property
    def b(self) -> str:
        return f"tw-b-{self.suffix}"

    @property
    def bridge(self) -> str:
        return f"tw-br-{self.suffix}"

    @property
    def names(self) -> tuple[str, str, str]:
        return (self.a, self.b, self.bridge)

    ip_a: str = f"{SUBNET_PREFIX}.1"
    ip_b: str = f"{SUBNET_PREFIX}.2"

    def argv(self, ns: str, cmd: Sequence[str]) -> list[str]:
        """``cmd`` run inside namespace ``ns`` (its network only; mounts stay shared)."""
        if ns not in self.names:
            raise ValueError(f"namespace {ns!r} is not one of {self.names}")
        return ["ip", "netns", "exec", ns, *cmd]

    def run(self, ns: str, cmd: Sequence[str], *, timeout: float = CMD_TIMEOUT_S,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return _run(self.argv(ns, cmd), timeout=timeout, env=env)

    def leftovers(self) -> list[str]:
        """What of this pair still exists: namespaces, and processes inside them."""
        left = sorted(set(self.names) & list_namespaces())
        return left + [f"pid {p} in {ns}" for ns in self.names for p in namespace_pids(ns)]


def _setup(pair: NetnsPair) -> None:
    for ns in pair.names:
        _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
    br = ["ip", "-n", pair.bridge]
    _run([*br, "link", "add", "br0", "type", "bridge"])
    _run([*br, "link", "set", "br0", "up"])
    for ns, port, addr in ((pair.a, "pa", pair.ip_a), (pair.b, "pb", pair.ip_b)):
        # created inside the bridge namespace with the peer moved straight into the
        # machine's namespace: no interface ever exists in the root namespace
        _run([*br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns])
        _run([*br, "link", "set", port, "master", "br0"])
        _run([*br, "link", "set", port, "up"])
        _run(["ip", "-n", ns, "addr", "add", f"{addr}/{PREFIX_LEN}", "dev", "eth0"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])


def teardown(pair: NetnsPair) -> list[str]:
    """Kill whatever runs in the pair's namespaces, delete them; returns what is left."""
    for ns in pair.names:
        kill_pids(namespace_pids(ns))  # started by this run: the namespaces are private
    for ns in pair.names:
        if ns in list_namespaces():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True,
                           timeout=CMD_TIMEOUT_S)
    return pair.leftovers()


@contextlib.contextmanager
def netns_pair(suffix: str | None = None) -> Iterator[NetnsPair]:
    """Create the two namespaces and the bridge; always torn down on exit."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise NetnsError("network namespaces need root and iproute2's `ip`")
    pair = NetnsPair(suffix or uuid.uuid4().hex[:6])
    clash = set(pair.names) & list_namespaces()
    if clash:
        raise NetnsError(f"namespaces {sorted(clash)} already exist")
    try:
        _setup(pair)
        yield pair
    finally:
        left = teardown(pair)
        if left:
            raise NetnsError(f"teardown left {left}")


# ----------------------------------------------------------------------------- Ray


def ray_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Ray commands in the namespaces: no auth token, no usage stats."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TRIPWIRE_PG"))}
    root = str(Path(__file__).resolve().parents[2])  # workers import the project's packages
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")])))
    env.update(extra or {})
    return env


def _ray_bin() -> str:
    found = Path(sys.executable).with_name("ray")
    if not found.exists():
        raise NetnsError(f"no `ray` next to {sys.executable}")
    return str(found)


@dataclasses.dataclass
class NetnsRay:
    """A Ray head in namespace a (and a worker in b after :meth:`add_worker`)."""

    pair: NetnsPair
    cpus_per_node: int = 1
    port: int = RAY_PORT
    temp_dirs: list[Path] = dataclasses.field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.pair.ip_a}:{self.port}"

    def _temp(self, tag: str) -> Path:
        path = Path(f"/tmp/ray-netns-{self.pair.suffix}-{tag}")
        self.temp_dirs.append(path)
        return path

    def _common(self, ip: str, tag: str) -> list[str]:
        return ["--node-ip-address", ip, "--num-cpus", str(self.cpus_per_node),
                "--object-store-memory", str(OBJECT_STORE_BYTES),
                "--temp-dir", str(self._temp(tag)), "--disable-usage-stats"]

    def start_head(self) -> None:
        cmd = [_ray_bin(), "start", "--head", "--port", str(self.port),
               "--include-dashboard", "false", *self._common(self.pair.ip_a, "a")]
        self.pair.run(self.pair.a, cmd, timeout=RAY_START_TIMEOUT_S, env=ray_env())

    def add_worker(self) -> None:
        cmd = [_ray_bin(), "start", "--address", self.address,
               *self._common(self.pair.ip_b, "b")]
        self.pair.run(self.pair.b, cmd, timeout=RAY_START_TIMEOUT_S, env=ray_env())

    def driver(self, cmd: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in namespace a with RAY_ADDRESS pointing at the head."""
        return self.pair.run(self.pair.a, cmd, timeout=timeout,
                             env=ray_env({"RAY_ADDRESS": self.address}))

    def wait_nodes(self, n: int, timeout: float = 60.0) -> None:
        """Block until ``n`` nodes are alive (a tiny driver in namespace a), or fail."""
        code = ("import time, ray\nray.init()\n"
                f"end = time.monotonic() + {timeout}\n"
                f"while sum(x['Alive'] for x in ray.nodes()) < {n}:\n"
                f"    if time.monotonic() > end: raise SystemExit('fewer than {n} nodes')\n"
                "    time.sleep(0.5)\n")
        self.driver([sys.executable, "-c", code], timeout=timeout + 60)

    def pids(self) -> list[int]:
        """Ray's daemons and workers: by temp dir on their command line, and by namespace."""
        found: set[int] = set()
        for path in self.temp_dirs:
            res = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True,
                                 timeout=CMD_TIMEOUT_S)
            found.update(int(p) for p in res.stdout.split())
        for ns in (self.pair.a, self.pair.b):
            found.update(namespace_pids(ns))
        found.discard(os.getpid())
        return sorted(found)

    def stop(self) -> list[int]:
        """Stop every Ray process of this cluster by PID; returns PIDs that survived."""
        left = kill_pids(self.pids())
        for path in self.temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        return left


@contextlib.contextmanager
def ray_cluster(pair: NetnsPair, nodes: int, cpus_per_node: int = 1) -> Iterator[NetnsRay]:
    """A Ray cluster of ``nodes`` (1 or 2) nodes in the pair's namespaces; stopped on exit."""
    if nodes not in (1, 2):
        raise ValueError(f"nodes must be 1 or 2, got {nodes}")
    cluster = NetnsRay(pair, cpus_per_node)
    try:
        cluster.start_head()
        if nodes == 2:
            cluster.add_worker()
        yield cluster
    finally:
        left = cluster.stop()
        if left:
            raise NetnsError(f"Ray processes {left} survived SIGKILL")


# ----------------------------------------------------------------------------- SLURM

SLURM_HOSTS = ("tw-a", "tw-b")  # hostnames (UTS namespaces) and SLURM node names
SLURM_READY_TIMEOUT_S = 60
SLURM_DRAIN_TIMEOUT_S = 45  # KillWait (30 s) plus margin


@dataclasses.dataclass
class NetnsSlurm:
    """slurmctld + slurmd ``tw-a`` in namespace a, slurmd ``tw-b`` in b, munged in the root.

    munged listens on a socket file (the mount namespace is shared, so every daemon reaches
    it); each SLURM daemon gets its machine's network and UTS namespace via ``nsenter``
    (unlike ``ip netns exec`` it leaves /sys, and so /sys/fs/cgroup, as it is).
    """

    pair: NetnsPair
    root: Path
    conf: Path
    uts: dict[str, Path]
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict)

    def enter(self, host: str) -> list[str]:
        ns = {SLURM_HOSTS[0]: self.pair.a, SLURM_HOSTS[1]: self.pair.b}[host]
        return ["nsenter", f"--net=/run/netns/{ns}", f"--uts={self.uts[host]}"]

    def run_a(self, cmd: Sequence[str], *, timeout: float = CMD_TIMEOUT_S,
              env: dict[str, str] | None = None, cwd: str | Path | None = None,
              ) -> subprocess.CompletedProcess[str]:
        """A SLURM client on machine a (never from the root namespace)."""
        return subprocess.run([*self.enter(SLURM_HOSTS[0]), *cmd], capture_output=True,
                              text=True, timeout=timeout, cwd=cwd,
                              env={**self.env, **(env or {})})

    def sbatch(self, args: Sequence[str], *, env: dict[str, str] | None = None,
               cwd: str | Path | None = None) -> int:
        res = self.run_a(["sbatch", "--parsable", *args], env=env, cwd=cwd)
        out = res.stdout.strip().split(";")[0]
        if res.returncode != 0 or not out.isdigit():
            raise NetnsError(f"sbatch exited {res.returncode}: {res.stdout}{res.stderr}")
        return int(out)

    def state(self, job: int) -> str:
        res = self.run_a(["scontrol", "-o", "show", "job", str(job)])
        found = [kv.split("=", 1)[1] for kv in res.stdout.split() if kv.startswith("JobState=")]
        return found[0] if found else "GONE"

    def wait(self, job: int, timeout: float) -> str:
        """Poll until the job leaves PENDING/RUNNING/CONFIGURING/COMPLETING; its state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(job)
            if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
                return state
            time.sleep(0.5)
        raise NetnsError(f"job {job} still {self.state(job)} after {timeout} s\n{self.logs()}")

    def idle_nodes(self) -> list[str]:
        res = self.run_a(["timeout", "5", "sinfo", "-h", "-N", "-o", "%N %T"], timeout=10)
        return sorted(line.split()[0] for line in res.stdout.splitlines()
                      if line.split()[1:] == ["idle"])

    def logs(self, tail: int = 20) -> str:
        parts = []
        for name in self.procs:
            path = self.root / "log" / f"{name}.out"
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def leftovers(self) -> list[str]:
        """Daemons still alive and UTS namespace files still present."""
        left = [f"{n} (pid {p.pid})" for n, p in self.procs.items() if p.poll() is None]
        return left + [str(f) for f in self.uts.values() if f.exists()]


def write_two_node_conf(root: Path, pair: NetnsPair, munge_socket: Path) -> Path:
    """The single-node conf of tests/slurm/conftest.py, turned into nodes tw-a and tw-b."""
    from tests.slurm.conftest import write_conf  # pytest-only module: imported when needed

    conf = write_conf(root, SLURM_HOSTS[0], munge_socket)
    lines = []
    for line in conf.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "SlurmctldHost":
            line = f"SlurmctldHost={SLURM_HOSTS[0]}({pair.ip_a})"
        elif key == "SlurmdSpoolDir":  # /tmp is shared: one spool, PID and log per node
            line = f"{line}/%n"
        elif key in ("SlurmdPidFile", "SlurmdLogFile"):
            line = line.replace("slurmd.", "slurmd-%n.")
        elif key == "NodeName":
            rest = value.split(" ", 1)[1]
            line = (f"NodeName={SLURM_HOSTS[0]} NodeAddr={pair.ip_a} {rest}\n"
                    f"NodeName={SLURM_HOSTS[1]} NodeAddr={pair.ip_b} {rest}")
        lines.append(line)
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _uts_namespace(host: str, suffix: str) -> Path:
    """A persistent UTS namespace (bind-mounted on a file in /run) with hostname ``host``."""
    path = Path(f"/run/tw-uts-{host}-{suffix}")
    path.touch()
    _run(["unshare", f"--uts={path}", "hostname", host])
    return path


def _popen(slurm: NetnsSlurm, name: str, cmd: list[str]) -> None:
    with open(slurm.root / "log" / f"{name}.out", "w") as log:  # the child keeps its copy
        slurm.procs[name] = subprocess.Popen(cmd, env=slurm.env, stdout=log,
                                             stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)


def _start_slurm(slurm: NetnsSlurm, key: Path, sock: Path) -> None:
    from tests.slurm.conftest import _sbin

    munge_dir = key.parent
    _popen(slurm, "munged", [
        _sbin("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={sock}",
        f"--pid-file={munge_dir / 'munged.pid'}", f"--log-file={slurm.root / 'log' / 'munged.log'}",
        f"--seed-file={munge_dir / 'seed'}"])
    _wait_for(slurm, "the munge socket", sock.exists)
    a, b = SLURM_HOSTS
    conf = str(slurm.conf)
    _popen(slurm, "slurmctld", [*slurm.enter(a), _sbin("slurmctld"), "-D", "-i", "-f", conf])
    for host in (a, b):
        _popen(slurm, f"slurmd-{host}",
               [*slurm.enter(host), _sbin("slurmd"), "-D", "-f", conf, "-N", host])
    _wait_for(slurm, "both nodes idle", lambda: slurm.idle_nodes() == sorted(SLURM_HOSTS))


def _wait_for(slurm: NetnsSlurm, what: str, check) -> None:
    deadline = time.monotonic() + SLURM_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        dead = {n: p.returncode for n, p in slurm.procs.items() if p.poll() is not None}
        if dead:
            raise NetnsError(f"{dead} exited while waiting for {what}\n{slurm.logs()}")
        if check():
            return
        time.sleep(0.3)
    raise NetnsError(f"no {what} after {SLURM_READY_TIMEOUT_S} s\n{slurm.logs()}")


def _stop_slurm(slurm: NetnsSlurm) -> None:
    """Cancel jobs and let their teardown run (bounded), then stop daemons by PID."""
    ctld = slurm.procs.get("slurmctld")
    if ctld is not None and ctld.poll() is None:
        slurm.run_a(["scancel", "--user", "root"])
        deadline = time.monotonic() + SLURM_DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and slurm.run_a(["squeue", "-h"]).stdout.strip():
            time.sleep(0.5)
    for name in (*(f"slurmd-{h}" for h in SLURM_HOSTS), "slurmctld", "munged"):
        proc = slurm.procs.get(name)
        if proc is not None and proc.poll() is None:
            kill_pids([proc.pid])
            proc.wait(STOP_TIMEOUT_S)  # reap it
    for path in slurm.uts.values():
        subprocess.run(["umount", str(path)], capture_output=True, timeout=CMD_TIMEOUT_S)
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def slurm_two_nodes(pair: NetnsPair, root: Path) -> Iterator[NetnsSlurm]:
    """Two SLURM nodes (tw-a, tw-b) on the pair's namespaces, state under ``root``."""
    (root / "log").mkdir(parents=True, exist_ok=True)
    munge_dir = root / "munge"
    munge_dir.mkdir(mode=0o700, exist_ok=True)
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = munge_dir / "munge.socket"
    conf = write_two_node_conf(root, pair, sock)
    slurm = NetnsSlurm(pair, root, conf, {}, {**os.environ, "SLURM_CONF": str(conf)})
    try:
        for host in SLURM_HOSTS:
            slurm.uts[host] = _uts_namespace(host, pair.suffix)
        _start_slurm(slurm, key, sock)
        yield slurm
    finally:
        _stop_slurm(slurm)
        left = slurm.leftovers()
        if left:
            raise NetnsError(f"SLURM teardown left {left}")
