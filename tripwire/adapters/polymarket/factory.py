"""``--source polymarket=SYMBOL:ASSET_ID,...``: the market-channel feed from a source spec.

For :mod:`tripwire.adapters.registry` (``FACTORIES["polymarket"] = feed_from_spec``). Each
item is ``SYMBOL:ASSET_ID`` (the symbol the token trades under here, and its CLOB token id)
or a bare ``ASSET_ID`` (symbol ``PM-`` + its last 12 digits). ``spec.url`` overrides the
channel's URL (a loopback server in tests); ``spec.options`` go to the feed.

>>> cfg = config_from_items(["PM-ELECTION-YES:123", "456"], None)
>>> [(m.symbol, m.asset_id) for m in cfg.markets]
[('PM-ELECTION-YES', '123'), ('PM-456', '456')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tripwire.adapters.polymarket.config import DEFAULT_WS_URL, PolymarketConfig


def config_from_items(items: Sequence[str], url: str | None,
                      **table: Any) -> PolymarketConfig:
    if not items:
        raise ValueError("polymarket needs tokens, e.g. polymarket=PM-X-YES:<asset id>,...")
    markets = []
    for item in items:
        symbol, _, asset = item.rpartition(":")
        markets.append({"asset_id": asset, "symbol": symbol or f"PM-{asset[-12:]}"})
    return PolymarketConfig.from_table({"markets": markets, "ws_url": url or DEFAULT_WS_URL,
                                        **table})


def feed_from_spec(spec: Any) -> Any:
    """A :class:`~.websocket.PolymarketWebSocketFeed` for a registry ``SourceSpec``."""
    from tripwire.adapters.polymarket.websocket import PolymarketWebSocketFeed

    options = dict(getattr(spec, "options", {}) or {})
    table = {k: options.pop(k) for k in ("custom_features", "ping_interval_s", "idle_timeout_s")
             if k in options}
    return PolymarketWebSocketFeed(config_from_items(spec.symbols, spec.url, **table), **options)
