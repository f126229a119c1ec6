"""Orders on any ccxt exchange: :class:`tripwire.execution.exchange.CcxtBroker`.

The feed and the broker share only the exchange id; the broker owns its own (sync) ccxt
session, credentials and idempotent client order ids.
"""

from __future__ import annotations

from tripwire.execution.exchange import CcxtBroker

__all__ = ["CcxtBroker"]
