"""Binance orders: the ccxt broker, not a Binance-specific client.

Orders for Binance go through :class:`tripwire.execution.exchange.CcxtBroker` with exchange
id ``"binance"`` (built from ``[execution]`` by ``tripwire.execution.factory.build_broker``);
it owns idempotent client order ids, retries and re-adoption. A venue whose orders ccxt
cannot place would write its own execution client here, behind the same
:class:`~tripwire.execution.base.Broker` protocol and its conformance suite.
"""

from __future__ import annotations

from tripwire.execution.exchange import CcxtBroker

EXCHANGE_ID = "binance"  # the ccxt exchange id CcxtBroker is built with for this venue

__all__ = ["EXCHANGE_ID", "CcxtBroker"]
