"""`tripwire demo` end to end, as a user runs it: its own Ray, PostgreSQL, chdb and Serve app.

A small scenario (8 symbols, 2 simulated hours) keeps it to about a minute; the default
(24 symbols, one day) is what `make demo` runs and the README reports.

The one full run uses ``--keep-running`` and plays the operator of issue 13: while the demo
waits, it halts trading and posts ticks of its own; after Ctrl-C the final summary must say
what the app said at the end (halted, the positions), count no negative "lost" ticks, and
describe the same run as the report.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve_apps.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Under /tmp, not pytest's 0700 tree: the postgres user must enter it."""
    root = Path(tempfile.mkdtemp(prefix="tripwire-demo-test-"))
    root.chmod(0o711)
    yield root / "data"
    shutil.rmtree(root, ignore_errors=True)


TOKEN = "demo-test-token"
EARLIER = '{"event": "watchdog_alert", "detail": "an earlier run halted for this reason"}\n'


def _lines(stream) -> queue.Queue:
    """The stream's lines on a queue, read by a thread (the demo goes on while we wait)."""
    out: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            out.put(line)
        out.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _next_json(lines: queue.Queue, timeout_s: float, err: Path) -> dict:
    while True:
        line = lines.get(timeout=timeout_s)
        assert line is not None, f"the demo ended early: {err.read_text()[-3000:]}"
        if line.startswith("{"):
            return json.loads(line)


def test_the_demo_runs_to_its_summary_and_loses_nothing(data_dir: Path) -> None:
    data = data_dir
    data.mkdir(parents=True)
    (data / "watchdog-demo.log").write_text(EARLIER)  # a previous run's reason to halt
    env = {**os.environ, "TRIPWIRE_DATA__DIR": str(data), "RAY_ADDRESS": "",
           "TRIPWIRE_API_TOKEN": TOKEN}
    env.pop("RAY_ADDRESS")
    err_path = data_dir.parent / "demo-stderr.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tripwire.cli", "demo", "--hours", "2", "--symbols", "8",
             "--port", str(free_port()), "--json", "--keep-running",
             # Ray's dashboard is not what this run checks (it costs a process and memory on
             # a 2-core CI); the secrets tests start it and search it for the token.
             "--no-dashboard"],
            env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        lines = _lines(proc.stdout)
        interim = _next_json(lines, 480, err_path)  # printed when the replay is done
        assert interim["halt"]["halted"] is False
        run = interim["run"]
        url = interim["console"].rstrip("/")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=auth, timeout=60) as c:
            # The console's lists: this run is the newest, and its filter answers.
            assert c.get("/v1/runs").json()["items"][0]["id"] == run["id"]
            listed = c.get("/v1/incidents", params={"run": run["id"], "limit": 500}).json()
            assert sum(interim["incidents"].values()) == len(listed["items"])
            # The operator's session: a halt, and ticks from another client.
            r = c.post("/v1/halt", json={"reason": "demo test halts before the end"})
            assert r.status_code == 200, r.text
            end_ns = run["period_end_ns"] - 10**9  # the scenario's end: after its last tick
            extra = [{"symbol": "BTCUSDT", "ts_ns": end_ns + i * 10**6, "price": 50_000.0,
                      "qty": 0.001, "side": 1} for i in range(3)]
            r = c.post("/v1/ticks", json={"ticks": extra})
            assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
            halt_at_end = c.get("/v1/halt").json()
            positions_at_end = c.get("/v1/positions").json()["positions"]
        proc.send_signal(signal.SIGINT)
        summary = _next_json(lines, 240, err_path)
        assert proc.wait(120) == 0, err_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    ticks = summary["ticks"]
    assert ticks["accepted"] == ticks["sent"] > 10_000
    shutdown = summary["shutdown"]
    # Every tick the app accepted (the demo's and the operator's) was stored: none lost.
    assert shutdown["ticks_accepted_by_app"] == ticks["accepted"] + 3
    assert shutdown["ticks_from_other_clients"] == 3
    assert shutdown["ticks_stored"] == shutdown["ticks_accepted_by_app"]
    assert shutdown["ticks_lost"] == 0
    assert shutdown["decisions_unfinished"] == 0
    # Read at the end, not when the replay finished.
    assert summary["halt"]["halted"] is True and halt_at_end["halted"] is True
    assert summary["halt"]["reason"] == halt_at_end["reason"]
    assert summary["open_positions"] == len(positions_at_end)
    assert sorted(p["symbol"] for p in summary["positions"]) == sorted(
        p["symbol"] for p in positions_at_end)
    assert summary["mode"] == "DIRECT"
    assert summary["console"].startswith("http://127.0.0.1:")
    # The summary and the report describe one run: its id, its period, its counts.
    assert summary["run"]["id"] == run["id"] and summary["run"]["ended_ns"] is not None
    report = json.loads(Path(summary["report"]["json"]).read_text())
    assert report["run"]["id"] == run["id"]
    assert report["period"]["since_ns"] == run["period_start_ns"]
    assert report["period"]["until_ns"] == run["period_end_ns"]
    assert summary["report"]["period"] == report["period"]
    assert report["incidents"]["by_status"] == summary["incidents"]
    assert report["decisions"]["by_outcome"] == summary["decisions"]
    assert report["execution"]["fills"] == summary["fills"]
    html = Path(summary["report"]["html"])
    assert html.is_file() and "<html" in html.read_text()[:500].lower()
    # The token is never printed (the console line says where to read it).
    assert TOKEN not in "".join(json.dumps(x) for x in (interim, summary))
    assert TOKEN not in err_path.read_text()
    # The watchdog's log was appended to: the earlier run's reason is still there.
    watchdog_log = Path(summary["watchdog"]["log"]).read_text()
    assert watchdog_log.startswith(EARLIER)
    assert '"demo_watchdog_start"' in watchdog_log and '"watchdog_start"' in watchdog_log
    assert '"watchdog_check"' in watchdog_log


def test_bad_arguments_exit_2_naming_them(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tripwire.cli", "demo", "--mode", "YOLO"],
        env={**os.environ, "TRIPWIRE_DATA__DIR": str(tmp_path)}, capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == 2
    assert "--mode" in proc.stderr
