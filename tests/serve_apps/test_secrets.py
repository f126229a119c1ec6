"""Secrets stay in the process that needs them, and the demo's cluster is not reachable.

One demo run (``--keep-running``, Ray dashboard on, Ray token auth on) is probed while it
is up: the listening sockets of its whole process tree, every GET route of the app, the
Ray dashboard's REST API (serve, jobs, actors, tasks, workers, nodes, runtime envs, every
log file through ``/api/v0/logs``); then, after Ctrl-C, every file under the data dir and
Ray's session dir and the demo's stdout/stderr. The operator's API token (and Ray's own
token) must be in none of them. The fast tests below pin the parts: owner-only secret
files, the token verifier, Ray's private temp dir, and the session Ray on loopback.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.serve_apps import procnet
from tests.serve_apps.conftest import free_port
from tripwire.secretfile import SecretFileError, ensure_secret, read_secret, write_secret

DUMMY_ID = "00000000-0000-7000-8000-000000000000"
MAX_BODY = 2 * 1024 * 1024  # bytes read of any one HTTP answer (the SSE stream never ends)
STARTUP_TIMEOUT_S = 420
STOP_TIMEOUT_S = 240


# ------------------------------------------------------------------------- fast: the parts


def test_secret_files_are_owner_only_and_refused_when_others_can_read(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "secrets" / "tok", "abc")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_secret(path) == "abc"
    path.chmod(0o644)
    with pytest.raises(SecretFileError, match=r"mode 0644.*chmod 600"):
        read_secret(path)
    with pytest.raises(SecretFileError, match="does not exist"):
        read_secret(tmp_path / "nope")
    path.chmod(0o600)
    path.write_text("\n")
    with pytest.raises(SecretFileError, match="is empty"):
        read_secret(path)
    made = ensure_secret(tmp_path / "secrets" / "new")
    assert len(made) >= 32 and ensure_secret(tmp_path / "secrets" / "new") == made
    with pytest.raises(SecretFileError, match="one non-empty line"):
        write_secret(tmp_path / "x", "two\nlines")


def test_the_ingress_gets_a_verifier_that_does_not_contain_the_token() -> None:
    from ray import cloudpickle

    from serve_apps.bearer import TokenVerifier

    token = secrets.token_urlsafe(24)
    v = TokenVerifier.of(token)
    assert v.check(token.encode()) and not v.check(token.encode() + b"x")
    assert not v.check(b"") and not v.check(token[:-1].encode())
    assert token.encode() not in cloudpickle.dumps(v) and token not in repr(v)
    assert TokenVerifier.of(token).salt != v.salt  # salted: equal tokens, unequal verifiers
    with pytest.raises(ValueError, match="non-empty bearer token"):
        TokenVerifier.of("  ")


def test_ray_temp_dir_is_private_under_the_data_dir_or_a_short_private_one(
        tmp_path: Path, caplog) -> None:
    from actors.runtime import MAX_SOCKET_PATH, ray_temp_dir

    short = Path(tempfile.mkdtemp(prefix="tw-t-"))
    try:
        got = ray_temp_dir(short / "data")
        assert got == short.resolve() / "data" / "ray" / "t"
        assert stat.S_IMODE(got.parent.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(short)
    deep = tmp_path / ("d" * (MAX_SOCKET_PATH - 20))
    got = ray_temp_dir(deep)
    try:
        assert not str(got).startswith(str(deep))
        assert stat.S_IMODE(got.parent.stat().st_mode) == 0o700
        assert "too long for Ray's unix sockets" in caplog.text
    finally:
        shutil.rmtree(got.parent)


def test_the_demo_keeps_a_generated_token_in_an_owner_only_file(tmp_path: Path,
                                                                monkeypatch) -> None:
    from serve_apps.demo import _operator_token

    monkeypatch.delenv("TRIPWIRE_API_TOKEN", raising=False)
    token, where = _operator_token(tmp_path)
    path = tmp_path.resolve() / "secrets" / "api-token"
    assert where == f"in {path}" and token not in where
    assert read_secret(path) == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _operator_token(tmp_path)[0] == token  # kept for the next run
    monkeypatch.setenv("TRIPWIRE_API_TOKEN", "from-the-env")
    assert _operator_token(tmp_path) == ("from-the-env", "the value of $TRIPWIRE_API_TOKEN")


def test_the_session_ray_listens_on_loopback_only(ray_local) -> None:
    """Test sessions start Ray through ensure_ray too: GCS, raylet, agents and workers."""
    import ray

    @ray.remote(num_cpus=0)
    def pid() -> int:
        return os.getpid()

    worker = ray.get(pid.remote())
    found = procnet.listeners(procnet.descendants(os.getpid()))
    assert worker in {x.pid for x in found}  # a worker's own gRPC server was seen
    assert any("gcs_server" in x.cmd for x in found)
    assert [x for x in found if not x.loopback] == []


# -------------------------------------------------------------- slow: the demo, end to end


@dataclass
class DemoRun:
    data: Path
    token: str
    summary: dict
    listeners: list[procnet.Listener]
    session_dir: Path | None
    ray_token: str | None
    app_answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    dashboard_answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    dashboard_unauthenticated: int | None = None
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None


@pytest.fixture(scope="module")
def demo_run() -> Iterator[DemoRun]:
    # A short path (Ray's sockets live under <data>/ray), enterable by the postgres user.
    root = Path(tempfile.mkdtemp(prefix="tw-sec-"))
    root.chmod(0o711)
    data = root / "data"
    token = "tw-probe-" + secrets.token_hex(20)
    env = {**os.environ, "TRIPWIRE_DATA__DIR": str(data), "TRIPWIRE_API_TOKEN": token}
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)  # the demo chooses (this process may carry the session's)
    out_path, err_path = root / "stdout", root / "stderr"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tripwire.cli", "demo", "--hours", "1", "--symbols", "4",
             "--port", str(free_port()), "--json", "--keep-running"],
            env=env, stdout=out, stderr=err, start_new_session=True)
    try:
        summary = _wait_for_summary(proc, out_path, err_path)
        run = _probe_while_up(proc, data, token, summary)
        proc.send_signal(signal.SIGINT)
        run.returncode = proc.wait(STOP_TIMEOUT_S)
        run.stdout, run.stderr = out_path.read_text(), err_path.read_text()
        yield run
    finally:
        if proc.poll() is None:  # only the process group this fixture started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_summary(proc: subprocess.Popen, out: Path, err: Path) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in out.read_text().splitlines():
            if line.startswith("{"):
                return json.loads(line)
        if proc.poll() is not None:
            pytest.fail(f"the demo exited with {proc.returncode} before its summary:\n"
                        f"{err.read_text()[-3000:]}")
        time.sleep(1.0)
    pytest.fail(f"no summary within {STARTUP_TIMEOUT_S} s:\n{err.read_text()[-3000:]}")


def _probe_while_up(proc: subprocess.Popen, data: Path, token: str, summary: dict) -> DemoRun:
    pids = [proc.pid, *procnet.descendants(proc.pid)]
    session = None
    for pid in pids:  # the GCS is told its session dir on its command line
        for arg in procnet.cmdline(pid):
            if arg.startswith(("--session-dir=", "--session_dir=")):
                session = Path(arg.split("=", 1)[1])
    token_file = data / "secrets" / "ray-auth-token"
    ray_token = read_secret(token_file) if token_file.exists() else None
    run = DemoRun(data, token, summary, procnet.listeners(pids), session, ray_token)
    run.app_answers = _app_answers(summary["console"].rstrip("/"), token)
    dashboard = summary["ray_dashboard"]
    assert dashboard.startswith("http://"), dashboard
    run.dashboard_answers = _dashboard_answers(dashboard, ray_token)
    run.dashboard_unauthenticated = httpx.get(f"{dashboard}/api/v0/nodes", timeout=30).status_code
    return run


def _read(client: httpx.Client, method: str, path: str, **kw) -> tuple[int, str]:
    """Status and (up to MAX_BODY of) the body; an endless stream ends at the read timeout."""
    chunks: list[bytes] = []
    try:
        with client.stream(method, path, **kw) as r:
            status = r.status_code
            text = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
            for chunk in r.iter_bytes():
                chunks.append(chunk)
                if sum(map(len, chunks)) > MAX_BODY:
                    break
    except httpx.ReadTimeout:
        status, text = 200, ""
    return status, text + "\n" + b"".join(chunks).decode(errors="replace")


def _app_answers(url: str, token: str) -> dict[str, tuple[int, str]]:
    answers: dict[str, tuple[int, str]] = {}
    with httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=3)) as c:
        schema = c.get("/openapi.json").json()
        paths = ["/", "/docs", "/redoc", "/openapi.json", "/metrics"]
        paths += [_fill(p) for p, ops in schema["paths"].items() if "get" in ops]
        for path in dict.fromkeys(paths):
            answers[f"GET {path}"] = _read(c, "GET", path)
        # Error answers to authenticated writes must not echo the credentials either.
        auth = {"Authorization": f"Bearer {token}"}
        answers["POST /v1/ticks bad body"] = _read(c, "POST", "/v1/ticks", headers=auth,
                                                   content=b"{not json")
        answers["POST /v1/halt bad token"] = _read(
            c, "POST", "/v1/halt", headers={"Authorization": f"Bearer {token}x"},
            json={"reason": "probe"})
    assert answers["GET /openapi.json"][0] == 200 and answers["GET /metrics"][0] == 200
    assert answers["POST /v1/halt bad token"][0] == 401
    return answers


def _fill(path: str) -> str:
    while "{" in path:
        head, rest = path.split("{", 1)
        path = head + DUMMY_ID + rest.split("}", 1)[1]
    return path


DASHBOARD_ROUTES = (
    "/api/serve/applications/", "/api/jobs/", "/api/v0/actors?detail=1&limit=10000",
    "/api/v0/tasks?detail=1&limit=10000", "/api/v0/workers?detail=1&limit=10000",
    "/api/v0/nodes?detail=1", "/nodes?view=summary", "/logical/actors",
    "/api/v0/runtime_envs?detail=1", "/api/v0/placement_groups?detail=1",
    "/api/cluster_status", "/api/version", "/api/component_activities",
)


def _dashboard_answers(url: str, ray_token: str | None) -> dict[str, tuple[int, str]]:
    headers = {"Authorization": f"Bearer {ray_token}"} if ray_token else {}
    answers: dict[str, tuple[int, str]] = {}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        for route in DASHBOARD_ROUTES:
            answers[route] = _read(c, "GET", route)
        nodes = c.get("/api/v0/nodes").json()["data"]["result"]["result"]
        for node in nodes:
            for name in _log_files(c, node["node_id"]):
                answers[f"log {name}"] = _read(
                    c, "GET", "/api/v0/logs/file",
                    params={"node_id": node["node_id"], "filename": name, "lines": 100_000})
    return answers


def _log_files(c: httpx.Client, node_id: str, max_files: int = 1000) -> list[str]:
    """Every log file the dashboard lists for the node, subdirectories included (a listing
    names a directory ``serve/``; its files need a ``glob`` of their own)."""
    files: list[str] = []
    globs = ["*"]
    while globs and len(files) < max_files:
        glob = globs.pop()
        for _attempt in range(30):  # the agent may still be binding its port: bounded retry
            r = c.get("/api/v0/logs", params={"node_id": node_id, "glob": glob})
            if r.status_code == 200:
                break
            time.sleep(2.0)
        r.raise_for_status()
        for name in (n for group in r.json()["data"]["result"].values() for n in group):
            if name.endswith("/"):
                globs.append(f"{name}*")
            else:
                files.append(name)
    return sorted(set(files))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_socket_of_the_demo_is_on_loopback(demo_run: DemoRun) -> None:
    found = demo_run.listeners
    assert any("gcs_server" in x.cmd for x in found), found  # Ray's processes were seen
    assert 8265 in {x.port for x in found} or demo_run.dashboard_answers
    exposed = [x for x in found if not x.loopback]
    assert exposed == [], "listening beyond loopback:\n" + "\n".join(map(str, exposed))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ray_keeps_its_session_under_the_data_dir_owner_only_with_token_auth(
        demo_run: DemoRun) -> None:
    private = demo_run.data.resolve() / "ray"
    assert demo_run.session_dir is not None
    assert demo_run.session_dir.is_relative_to(private), demo_run.session_dir
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert demo_run.ray_token, "Ray's token auth is on, its token in <data>/secrets"
    assert demo_run.dashboard_unauthenticated == 401
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_token_is_in_no_http_answer_of_the_app_or_the_dashboard(demo_run: DemoRun) -> None:
    secrets_ = [demo_run.token] + ([demo_run.ray_token] if demo_run.ray_token else [])
    ok = [k for k, (status, _) in demo_run.dashboard_answers.items() if status == 200]
    assert "/api/serve/applications/" in ok and "/api/v0/actors?detail=1&limit=10000" in ok
    assert sum(k.startswith("log ") for k in ok) >= 10  # the log files were really read
    leaks = [f"{where} ({status})"
             for answers in (demo_run.app_answers, demo_run.dashboard_answers)
             for where, (status, text) in answers.items()
             if any(s in text for s in secrets_)]
    assert leaks == []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_token_is_nowhere_on_disk_nor_printed(demo_run: DemoRun) -> None:
    needle = demo_run.token.encode()
    roots = [demo_run.data] + ([demo_run.session_dir] if demo_run.session_dir else [])
    files = [p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(files) > 50  # postgres, chdb, Ray's logs, the report: something was written
    assert [str(p) for p in files if needle in p.read_bytes()] == []
    printed = demo_run.stdout + demo_run.stderr
    assert demo_run.token not in printed
    assert demo_run.ray_token is None or demo_run.ray_token not in printed
