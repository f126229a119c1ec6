"""build_broker: the one way every driver builds its broker from ``[execution]``."""

from __future__ import annotations

import logging

import pytest

from tests.execution.fake_binance import FakeBinance
from tests.execution.venues import KEY_ENV, SECRET_ENV, SYMBOLS, T0, settings_for
from tripwire.config import load_settings
from tripwire.execution import AuthenticationFailed, BacktestBroker, PaperBroker
from tripwire.execution.factory import build_broker
from tripwire.model import SimClock, SystemClock

pytestmark = pytest.mark.timeout(30)


def test_paper_and_backtest_are_simulated_and_called_on_the_loop():
    paper = build_broker(load_settings(env={}), SYMBOLS, SimClock(T0))
    assert isinstance(paper.broker, PaperBroker) and paper.paper is paper.broker
    assert (paper.backend, paper.blocking, paper.simulated) == ("paper", False, True)
    backtest = build_broker(settings_for("backtest"), SYMBOLS, SimClock(0), start_ns=T0)
    assert isinstance(backtest.broker, BacktestBroker)
    assert backtest.broker.clock.now_ns() == T0  # its own clock, from the replay's start
    assert (backtest.backend, backtest.blocking) == ("backtest", False)


def test_ccxt_is_a_blocking_venue_recorded_by_exchange():
    venue = FakeBinance().start()
    try:
        env = {KEY_ENV: venue.api_key, SECRET_ENV: venue.secret}
        built = build_broker(settings_for("ccxt", venue), SYMBOLS, SystemClock(), env=env)
        assert (built.backend, built.blocking, built.simulated) == ("ccxt:binance", True, False)
        assert built.paper is None and built.adopted == []
        built.close()
    finally:
        venue.stop()


def test_missing_credentials_are_refused_before_any_network_call():
    venue = FakeBinance().start()
    try:
        with pytest.raises(AuthenticationFailed) as err:
            build_broker(settings_for("ccxt", venue), SYMBOLS, SystemClock(),
                         env={KEY_ENV: "k"})
        assert str(err.value).startswith(f"execution.secret_env: environment variable "
                                         f"{SECRET_ENV} is not set")
        assert venue.requests == []
    finally:
        venue.stop()


def test_an_unknown_exchange_id_names_the_key():
    settings = settings_for("ccxt", exchange="nosuchexchange")
    with pytest.raises(ValueError, match=r"^execution.exchange: unknown ccxt exchange id"):
        build_broker(settings, SYMBOLS, SystemClock(), env={KEY_ENV: "k", SECRET_ENV: "s"})


def test_trading_on_the_live_venue_is_said_at_start(caplog):
    venue = FakeBinance().start()
    try:
        env = {KEY_ENV: venue.api_key, SECRET_ENV: venue.secret}
        with caplog.at_level(logging.WARNING, logger="tripwire.execution"):
            build_broker(settings_for("ccxt", venue, sandbox=False), SYMBOLS, SystemClock(),
                         env=env).close()
        assert "LIVE venue" in caplog.text and venue.secret not in caplog.text
    finally:
        venue.stop()
