"""``[polymarket]``: which outcome tokens to follow and how to reach the market channel.

>>> cfg = PolymarketConfig.from_table({"markets": [
...     {"asset_id": "123", "symbol": "PM-ELECTION-YES", "market": "0xabc", "outcome": "Yes"}]})
>>> cfg.markets[0].symbol, cfg.ws_url
('PM-ELECTION-YES', 'wss://ws-subscriptions-clob.polymarket.com/ws/market')
>>> PolymarketConfig.from_table({"markets": [{"asset_id": "1", "symbol": "a b"}]})
Traceback (most recent call last):
...
ValueError: polymarket.markets.0.symbol: 'a b' must be 1-64 letters, digits, '-', '_' or '.'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
DEFAULT_DATA_API = "https://data-api.polymarket.com"
MAX_ASSETS = 500  # the market channel's documented limit of assets per connection
PING_INTERVAL_S = 10.0  # the channel expects a text "PING" about every 10 s

_SYMBOL = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ASSET = re.compile(r"[0-9]{1,100}")  # token ids are (large) decimal integers
_KEYS = {"ws_url", "markets", "custom_features", "ping_interval_s", "idle_timeout_s"}
_MARKET_KEYS = {"asset_id", "symbol", "market", "outcome", "tick_size"}


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One outcome token: its CLOB asset id and the symbol it trades under here."""

    asset_id: str
    symbol: str
    market: str = ""  # condition id (0x...): a market resolves all its tokens at once
    outcome: str = ""  # "Yes", "No", a candidate's name, ...
    tick_size: float = 0.01


@dataclass(frozen=True, slots=True)
class PolymarketConfig:
    markets: tuple[MarketSpec, ...]
    ws_url: str = DEFAULT_WS_URL
    custom_features: bool = True  # market_resolved / new_market / best_bid_ask events
    ping_interval_s: float = PING_INTERVAL_S
    idle_timeout_s: float | None = 60.0  # quiet markets exist: longer than Binance's

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> PolymarketConfig:
        """Validate ``[polymarket]``; a bad value raises ValueError naming its key."""
        for key in table:
            if key not in _KEYS:
                known = ", ".join(sorted(_KEYS))
                raise ValueError(f"polymarket.{key} is not a known key ({known})")
        raw = table.get("markets")
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"polymarket.markets must be a non-empty list of tables, got {raw!r}")
        if len(raw) > MAX_ASSETS:
            raise ValueError(f"polymarket.markets: {len(raw)} assets, the channel takes "
                             f"{MAX_ASSETS} per connection")
        markets = tuple(_market(m, f"polymarket.markets.{i}") for i, m in enumerate(raw))
        for what in ("asset_id", "symbol"):
            seen: set[str] = set()
            for i, m in enumerate(markets):
                value = getattr(m, what)
                if value in seen:
                    raise ValueError(f"polymarket.markets.{i}.{what}: {value!r} is listed twice")
                seen.add(value)
        url = table.get("ws_url", DEFAULT_WS_URL)
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ValueError(f"polymarket.ws_url must start with ws:// or wss://, got {url!r}")
        custom = table.get("custom_features", True)
        if not isinstance(custom, bool):
            raise ValueError(f"polymarket.custom_features must be true or false, got {custom!r}")
        ping = _positive(table.get("ping_interval_s", PING_INTERVAL_S), "ping_interval_s")
        idle = table.get("idle_timeout_s", 60.0)
        idle = None if idle == 0 else _positive(idle, "idle_timeout_s")
        return cls(markets, url, custom, ping, idle)

    @property
    def asset_ids(self) -> tuple[str, ...]:
        return tuple(m.asset_id for m in self.markets)


def _market(raw: object, key: str) -> MarketSpec:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{key} must be a table, got {raw!r}")
    for k in raw:
        if k not in _MARKET_KEYS:
            raise ValueError(f"{key}.{k} is not a known key ({', '.join(sorted(_MARKET_KEYS))})")
    asset = raw.get("asset_id")
    if not isinstance(asset, str) or not _ASSET.fullmatch(asset):
        raise ValueError(f"{key}.asset_id: {asset!r} must be the token id, a decimal string")
    symbol = raw.get("symbol")
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        raise ValueError(f"{key}.symbol: {symbol!r} must be 1-64 letters, digits, '-', '_' or '.'")
    market, outcome = raw.get("market", ""), raw.get("outcome", "")
    for name, value in (("market", market), ("outcome", outcome)):
        if not isinstance(value, str) or len(value) > 200:
            raise ValueError(f"{key}.{name} must be a string of at most 200 characters")
    tick = raw.get("tick_size", 0.01)
    if isinstance(tick, bool) or not isinstance(tick, int | float) or not 0 < tick < 1:
        raise ValueError(f"{key}.tick_size must be a number in (0, 1), got {tick!r}")
    return MarketSpec(asset, symbol, market, outcome, float(tick))


def _positive(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"polymarket.{key} must be a number > 0, got {value!r}")
    return float(value)
