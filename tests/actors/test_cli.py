"""`tripwire ingest` end to end on real Ray, chdb and WebSockets (detect-eval: tests/detect)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from tests.adapters.binance.server import BinanceReplayServer, Session, Then, combined, trade_frames
from tests.adapters.ccxt.okx_server import OkxReplayServer
from tests.adapters.ccxt.okx_server import trade_frames as okx_trade_frames
from tripwire.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def run_json(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_scenario_ingest_then_replay_round_trips_through_the_store(ray_local, tmp_path, capsys):
    store = f"chdb://{tmp_path / 'ticks'}"
    first = run_json(capsys, "ingest", "--source", "scenario", "--symbols", "4", "--days",
                     "0.05", "--store", store, "--json")
    assert first["ticks_scored"] == first["ticks_in"] > 10_000
    assert first["store_rows"]["ticks"] == first["ticks_scored"]
    assert first["store_rows"]["news"] == first["news"] > 0
    assert first["dead_letters"] == 0 and first["shed_ticks"] == 0
    again = run_json(capsys, "ingest", "--source", "replay", "--store", store, "--json")
    assert again["ticks_scored"] == first["ticks_scored"]
    assert again["store_rows"]["ticks"] == first["ticks_scored"]  # replay writes no ticks
    assert again["trips"] == first["trips"]  # same ticks, same detectors, same trips
    assert main(["ingest", "--source", "replay", "--store", store, "--names", "NOPEUSDT"]) == 2
    assert "not in the tick store: NOPEUSDT" in capsys.readouterr().err


def test_binance_ingest_from_a_loopback_exchange(ray_local, capsys):
    frames = [*trade_frames("btcusdt", range(0, 300)), "{not json"]
    frames += [combined({"e": "trade", "s": "BTCUSDT", "t": 300, "p": "-1", "q": "1",
                         "T": 1_700_000_000_300, "E": 1, "m": False, "M": True})]
    ready = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        async with BinanceReplayServer(frames, [Session(then=Then.HOLD)]) as server:
            holder["url"] = server.url
            holder["stop"] = asyncio.Event()
            ready.set()
            await holder["stop"].wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        out = run_json(capsys, "ingest", "--source", "binance", "--streams", "btcusdt@trade",
                       "--url", holder["url"], "--run-for", "3", "--no-store", "--json")
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
    assert out["ticks_scored"] == 300
    assert out["dead_by_reason"] == {"malformed": 1, "bad_price": 1}


def test_ccxt_okx_and_binance_ingest_at_once_from_loopback_exchanges(ray_local, capsys):
    """Two live sources in one process: ccxt.pro's OKX client and Binance, each its own symbols."""
    okx = [*okx_trade_frames("ETH-USDT", range(1, 201)), "garbage"]
    binance = trade_frames("btcusdt", range(0, 100))
    ready = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        async with (OkxReplayServer(okx, [Session(then=Then.HOLD)]) as o,
                    BinanceReplayServer(binance, [Session(then=Then.HOLD)]) as b):
            holder["okx"], holder["binance"] = o.url, b.url
            holder["stop"] = asyncio.Event()
            ready.set()
            await holder["stop"].wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        out = run_json(capsys, "ingest", "--source", "ccxt:okx=ETH/USDT", "--source",
                       "binance=btcusdt@trade", "--url", f"ccxt:okx={holder['okx']}",
                       "--url", f"binance={holder['binance']}", "--spot-markets",
                       "--run-for", "4", "--no-store", "--json")
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
    assert out["source"] == "ccxt:okx+binance"
    assert out["ticks_scored"] == 300
    assert out["dead_by_reason"] == {"malformed": 1}
    assert out["sources"]["ccxt:okx"]["ticks"] == 200
    assert out["sources"]["binance-ws"]["ticks"] == 100


def test_live_sources_come_from_the_feeds_table_of_the_config(ray_local, tmp_path, capsys):
    okx = okx_trade_frames("BTC-USDT", range(1, 51))
    ready = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        async with OkxReplayServer(okx, [Session(then=Then.HOLD)]) as o:
            holder["okx"] = o.url
            holder["stop"] = asyncio.Event()
            ready.set()
            await holder["stop"].wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    config = tmp_path / "tripwire.toml"
    config.write_text(f'[feeds]\nsources = ["ccxt:okx=BTC/USDT"]\nspot_markets = true\n'
                      f'[feeds.urls]\n"ccxt:okx" = "{holder["okx"]}"\n')
    try:
        out = run_json(capsys, "ingest", "--config", str(config), "--run-for", "3",
                       "--no-store", "--json")
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
    assert out["source"] == "ccxt:okx" and out["ticks_scored"] == 50
    bad = tmp_path / "bad.toml"
    bad.write_text('[feeds]\nsources = ["nasdaq=AAPL"]\n')
    assert main(["ingest", "--config", str(bad)]) == 2
    assert "unknown live source 'nasdaq'" in capsys.readouterr().err


def test_binance_csv_ingest(ray_local, tmp_path, capsys):
    path = tmp_path / "ETHUSDT-trades-2024-01-01.csv"
    rows = [f"{i},{2000 + i / 100},{1 + i % 3},1.0,{1_704_067_200_000 + i},false,true"
            for i in range(1, 2_001)]
    rows.insert(500, "garbage,row")
    path.write_text("\n".join(rows) + "\n")
    out = run_json(capsys, "ingest", "--source", "binance-csv", str(path), "--no-store", "--json")
    assert out["ticks_scored"] == 2_000 and out["dead_by_reason"] == {"malformed": 1}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "--source", "binance"], "needs --streams"),
        (["ingest", "--source", "ccxt:okx"], "needs --streams"),
        (["ingest", "--source", "ccxt:nope", "--streams", "BTC/USDT"], "no WebSocket"),
        (["ingest", "--source", "nasdaq=AAPL"], "unknown live source 'nasdaq'"),
        (["ingest", "--source", "binance", "--source", "replay"], "cannot be combined"),
        (["ingest", "--source", "binance-csv", "/nope/x.csv"], "no such file: /nope/x.csv"),
        (["ingest", "--source", "scenario", "x.csv"], "files are only read by --source binance-csv"),
        (["ingest", "--source", "replay", "--no-store"], "--no-store makes no sense"),
        (["ingest", "--config", "/nope.toml"], "config file /nope.toml does not exist"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
