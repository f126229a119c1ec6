"""Every command's Ray: the configured cluster, else a private local Ray under its data dir.

``ingest``, ``backtest``, ``sweep``, ``eval`` and ``calibrate`` called ``ensure_ray()``
bare: they ignored ``[ray] address`` and started a local Ray under the world-readable
``/tmp/ray`` without token auth, unlike ``demo`` and ``live``. They now share
:func:`actors.runtime.ensure_command_ray`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import actors.runtime as runtime


class Called(Exception):
    pass


@pytest.fixture
def recorded(monkeypatch):
    calls: list[tuple[tuple, dict]] = []

    def record(*args, **kw):
        calls.append((args, kw))
        raise Called

    monkeypatch.setattr(runtime, "ensure_ray", record)
    return calls


def test_a_command_ray_is_private_to_its_data_dir_with_token_auth(recorded, tmp_path):
    with pytest.raises(Called):
        runtime.ensure_command_ray(tmp_path)
    (args, kw), = recorded
    assert args == (None,)
    assert kw == {"data_dir": tmp_path,
                  "auth_token_file": tmp_path / "secrets" / "ray-auth-token"}
    with pytest.raises(Called):
        runtime.ensure_command_ray(tmp_path, "ray://head:10001", dashboard=True)
    assert recorded[1][0] == ("ray://head:10001",) and recorded[1][1]["dashboard"] is True


def test_backtest_and_sweep_start_the_configured_ray(recorded, tmp_path, monkeypatch):
    from serve_apps.jobs import backtest, sweep

    monkeypatch.setenv("TRIPWIRE_DATA__DIR", str(tmp_path))
    monkeypatch.setenv("TRIPWIRE_RAY__ADDRESS", '"ray://head:10001"')
    monkeypatch.delenv("TRIPWIRE_CONFIG", raising=False)
    args = argparse.Namespace(
        scenario_seed=None, scenario_config=None, store=None, start=None, end=None,
        warmup_s=0.0, symbols="BTCUSDT,ETHUSDT", groups=1, num_cpus=0.5, max_inflight=4, mode="DRY_RUN",
        cassette=None, cassette_mode="replay", config=None, out=str(tmp_path), json=True)
    plan = backtest.make_plan(args)
    with pytest.raises(Called):
        backtest.run_plan(plan, None)
    assert recorded[-1] == (("ray://head:10001",), {
        "data_dir": str(tmp_path), "auth_token_file": Path(tmp_path) / runtime.RAY_TOKEN_FILE})
    from tripwire.commands import build_parser

    sargs = build_parser().parse_args(["sweep", "--symbols", "BTCUSDT,ETHUSDT", "--param",
                                       "returns.threshold=10,12", "--out", str(tmp_path)])
    grid = sweep.make_plan(sargs)
    with pytest.raises(Called):
        sweep.run_plan(grid, None)
    assert recorded[-1][0] == ("ray://head:10001",)
    assert recorded[-1][1]["data_dir"] == str(tmp_path)
