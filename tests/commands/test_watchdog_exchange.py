"""``tripwire watchdog --exchange``: the invariants checked, and trading stopped, on the venue.

With ``--api`` the watchdog reaches the exchange only through the Serve app, so a service
that is down or wedged kept it from cancelling anything there. ``--exchange`` builds the
``[execution]`` ccxt broker itself (the loopback Binance: real ccxt signing, HMAC checked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.execution.fake_binance import FakeBinance
from tests.execution.venues import KEY_ENV, SECRET_ENV, SYMBOLS, settings_for
from tripwire.commands import main
from tripwire.execution.base import OrderRequest, OrderType
from tripwire.execution.factory import build_broker
from tripwire.model import Side, SystemClock

pytestmark = pytest.mark.timeout(120)


def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def config(tmp_path: Path, venue: FakeBinance, broker: str = "ccxt") -> str:
    urls = "\n".join(f'{k} = "{v}"' for k, v in venue.ccxt_urls().items())
    path = tmp_path / "tripwire.toml"
    path.write_text(f"""
[watchdog]
heartbeats = []
max_gross_exposure = 50000.0
require_stops = false
[risk]
allowed_symbols = ["BTCUSDT", "ETHUSDT"]
[execution]
broker = "{broker}"
exchange = "binance"
rate_limit = false
timeout_s = 2.0
[execution.urls]
{urls}
[execution.ccxt_options]
fetchCurrencies = false
fetchMargins = false
fetchMarkets = {{ types = ["spot"] }}
""")
    return str(path)


@pytest.fixture
def venue(monkeypatch):
    # 20 ETH at 3,000: 60,000 of exposure against a 50,000 cap
    v = FakeBinance(balances={"USDT": 100_000.0, "BTC": 0.0, "ETH": 20.0}).start()
    for name in ("TRIPWIRE_CONFIG", "TRIPWIRE_WATCHDOG_DSN", "TRIPWIRE_PG_DSN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(KEY_ENV, v.api_key)
    monkeypatch.setenv(SECRET_ENV, v.secret)
    yield v
    v.stop()


def test_a_breach_on_the_exchange_halts_and_cancels_there_without_the_serve_app(
        venue, migrated_db, tmp_path, capsys):
    built = build_broker(settings_for("ccxt", venue), SYMBOLS, SystemClock(),
                         env={KEY_ENV: venue.api_key, SECRET_ENV: venue.secret})
    built.broker.place(OrderRequest("tw-resting", "ETHUSDT", Side.BUY, 1.0, OrderType.LIMIT,
                                    2_900.0))
    built.close()  # the service that placed it is gone
    code, out, err = cli(capsys, "watchdog", "--once", "--exchange", "--json",
                         "--dsn", migrated_db, "--config", config(tmp_path, venue))
    summary = json.loads(out)
    assert code == 1, err
    assert summary["execution"] == "exchange"
    assert [b["code"] for b in summary["last_breaches"]] == ["exposure_cap"]
    assert summary["halted"] and summary["halt_reason"].startswith("exposure_cap")
    assert summary["cancelled"] == 1
    assert [o.status for o in venue.created("tw-resting")] == ["CANCELED"]


def test_exchange_mode_refuses_what_cannot_reach_an_exchange(venue, migrated_db, tmp_path,
                                                             capsys, monkeypatch):
    db = ["--dsn", migrated_db]
    paper = config(tmp_path, venue, broker="paper")
    code, _, err = cli(capsys, "watchdog", "--once", "--exchange", "--config", paper, *db)
    assert code == 2 and '--exchange needs [execution] broker = "ccxt"' in err
    ccxt = config(tmp_path, venue)
    code, _, err = cli(capsys, "watchdog", "--once", "--exchange", "--api",
                       "http://127.0.0.1:9", "--config", ccxt, *db)
    assert code == 2 and "give one" in err
    monkeypatch.delenv(SECRET_ENV)
    before = len(venue.requests)
    code, _, err = cli(capsys, "watchdog", "--once", "--exchange", "--config", ccxt, *db)
    assert code == 2 and SECRET_ENV in err and venue.secret not in err
    assert len(venue.requests) == before  # refused before any network call
