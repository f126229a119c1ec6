"""Every driver builds its broker through ``tripwire.execution.factory.build_broker``.

Issue 14: ``[execution] broker`` chooses the venue, so a driver that constructs
``PaperBroker(...)``, ``BacktestBroker(...)`` or ``CcxtBroker(...)`` itself would ignore the
configuration (and the ccxt broker's re-adoption at build). This scans the drivers' source
(the runtime layers, the CLI commands and the benchmarks) for a direct construction.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = ("actors", "serve_apps", "graphs", "benchmarks", "tripwire/commands")
BROKERS = {"PaperBroker", "BacktestBroker", "CcxtBroker"}
# The one reviewed exception: when the Serve app's paper book cannot be rebuilt, the
# orchestrator makes an empty paper venue that refuses every order (fail closed) and hands
# it to build_broker as ``paper=``.
ALLOWED = {("serve_apps/orchestrator.py", "PaperBroker")}


def direct_constructions() -> list[str]:
    found = []
    for top in DRIVERS:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if not isinstance(node, ast.Call):
                    continue
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else (
                    fn.attr if isinstance(fn, ast.Attribute) else None)
                if name in BROKERS and (rel, name) not in ALLOWED:
                    found.append(f"{rel}:{node.lineno}: {name}(...)")
    return found


def test_no_driver_constructs_a_broker_itself():
    assert direct_constructions() == []


def test_the_scan_sees_a_direct_construction(tmp_path, monkeypatch):
    """The scan is not vacuous: a driver module with a direct construction is named."""
    pkg = tmp_path / "actors"
    pkg.mkdir()
    (pkg / "bad.py").write_text("from tripwire.execution.paper import PaperBroker\n"
                                "b = PaperBroker(symbols, clock, cfg)\n")
    monkeypatch.setattr(__name__ + ".ROOT", tmp_path)
    monkeypatch.setattr(__name__ + ".DRIVERS", ("actors",))
    assert direct_constructions() == ["actors/bad.py:2: PaperBroker(...)"]
