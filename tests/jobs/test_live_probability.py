"""The live job and the Serve app score a prediction market's tokens on log-odds.

``tripwire ingest`` fills the pipeline's probability symbols from the feeds' instrument
providers; the live job and the Serve app must do the same, or Polymarket prices in [0, 1]
are scored as log-returns there.
"""

from __future__ import annotations

import pytest
from rich.console import Console

from actors.ingest import feed_factory
from serve_apps.app import AppSpec, dataplane_config
from serve_apps.bearer import TokenVerifier
from serve_apps.config import ServeConfig
from serve_apps.jobs.live import _run, build_parser
from tripwire.config import load_settings


class _Started(Exception):
    pass


def test_the_live_job_hands_the_polymarket_tokens_to_the_app_as_probabilities(
        tmp_path, monkeypatch):
    settings = load_settings(env={"TRIPWIRE_DATA__DIR": str(tmp_path)})
    args = build_parser().parse_args([
        "--source", "polymarket=PM-YES:123,PM-NO:456", "--source", "ccxt:okx=BTC/USDT",
        "--url", "polymarket=ws://127.0.0.1:9/ws/market", "--spot-markets"])
    args.files = []
    make_feed, symbols = feed_factory(args, settings)
    seen: dict = {}

    def fake_start(settings, dsn, symbols, **kw):
        seen.update(kw, symbols=tuple(symbols.names))
        raise _Started

    async def no_migrate(dsn):
        return None

    monkeypatch.setattr("tripwire.store.migrate.migrate", no_migrate)
    monkeypatch.setattr("actors.runtime.ensure_ray", lambda *a, **k: None)
    monkeypatch.setattr("serve_apps.app.start", fake_start)
    monkeypatch.setenv("TRIPWIRE_API_TOKEN", "t")
    with pytest.raises(_Started):
        _run(settings, "postgresql://unused", make_feed, symbols, args, Console(quiet=True))
    assert seen["symbols"] == ("PM-YES", "PM-NO", "BTCUSDT")
    assert seen["probability_symbols"] == ("PM-YES", "PM-NO")  # not the exchange's BTC


def test_the_app_spec_reaches_the_data_plane_config():
    settings = load_settings(env={})
    spec = AppSpec(settings, "postgresql://unused", ("PM-YES", "BTCUSDT"),
                   ServeConfig.from_settings(settings), TokenVerifier.of("t"),
                   probability_symbols=("PM-YES",))
    assert dataplane_config(spec).probability_symbols == ("PM-YES",)


def test_serve_deploy_takes_probability_symbols_among_its_symbols(monkeypatch):
    from serve_apps.deploy import app

    monkeypatch.setenv("TRIPWIRE_PG_DSN", "postgresql://unused")
    monkeypatch.setenv("TRIPWIRE_API_TOKEN", "t")
    built = app({"symbols": ["PM-YES", "BTCUSDT"], "probability_symbols": ["PM-YES"]})
    assert built is not None
    with pytest.raises(ValueError, match="probability_symbols not among the symbols"):
        app({"symbols": ["BTCUSDT"], "probability_symbols": ["PM-YES"]})
