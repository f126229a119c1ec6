"""Live sources by name: ``binance``, ``ccxt:<exchange>``, ... -> a feed factory.

A source on the command line or in a config list is a :class:`SourceSpec`:
``NAME[=SYMBOL,SYMBOL...]`` (``ccxt:okx=BTC/USDT,ETH/USDT``; ``binance=btcusdt@trade``),
with an optional URL override. :func:`build_feed` turns a spec into a feed through the
factory registered for its name (or for its prefix, ``ccxt:``). A venue adds one line to
:data:`FACTORIES` (or calls :func:`register`); nothing else in the wiring changes.

>>> spec = parse_spec("ccxt:okx=BTC/USDT,ETH/USDT")
>>> spec.name, spec.symbols
('ccxt:okx', ('BTC/USDT', 'ETH/USDT'))
>>> parse_spec("nasdaq=AAPL")
Traceback (most recent call last):
...
ValueError: unknown live source 'nasdaq'; known: binance, ccxt:<exchange>, polymarket, news
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


@dataclass(frozen=True)
class SourceSpec:
    """One live source: its name, its own symbol spelling, an optional URL and options."""

    name: str
    symbols: tuple[str, ...] = ()
    url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


Factory = Callable[[SourceSpec], Any]


def _binance(spec: SourceSpec) -> Any:
    from tripwire.adapters.binance.config import DEFAULT_BASE_URL
    from tripwire.adapters.binance.websocket import BinanceWebSocketFeed

    if not spec.symbols:
        raise ValueError("binance needs streams, e.g. binance=btcusdt@trade,ethusdt@aggTrade")
    return BinanceWebSocketFeed(list(spec.symbols), base_url=spec.url or DEFAULT_BASE_URL,
                                **spec.options)


def _ccxt(spec: SourceSpec) -> Any:
    from tripwire.adapters.ccxt.config import parse_source
    from tripwire.adapters.ccxt.instruments import spot_market
    from tripwire.adapters.ccxt.websocket import CcxtTradeFeed

    options = dict(spec.options)
    config = parse_source(spec.name, spec.symbols)
    markets = None
    if options.pop("spot_markets", False):  # no REST: BASE-QUOTE spot markets built locally
        markets = tuple(spot_market(s) for s in config.symbols)
    config = type(config)(config.exchange, config.symbols, ws_url=spec.url, markets=markets)
    return CcxtTradeFeed(config, **options)


def _news(spec: SourceSpec) -> Any:
    from tripwire.adapters.news.factory import feed_from_spec

    return feed_from_spec(spec)


def _polymarket(spec: SourceSpec) -> Any:
    from tripwire.adapters.polymarket.factory import feed_from_spec

    return feed_from_spec(spec)


# name -> factory; a name ending in ":" matches every source with that prefix.
FACTORIES: dict[str, Factory] = {
    "binance": _binance,
    "ccxt:": _ccxt,
    "polymarket": _polymarket,  # polymarket=SYMBOL:ASSET_ID,... (the CLOB market channel)
    "news": _news,  # news=NAME@URL,... (RSS/Atom headlines; chunks carry news, no ticks)
}


def register(name: str, factory: Factory) -> None:
    """Add a source (``"polymarket"``) or a prefix (``"ccxt:"``); a name is registered once."""
    if name in FACTORIES:
        raise ValueError(f"live source {name!r} is already registered")
    FACTORIES[name] = factory


def known() -> list[str]:
    """Source names for help texts (``ccxt:<exchange>`` for the prefix)."""
    return [n + "<exchange>" if n.endswith(":") else n for n in FACTORIES]


def factory_for(name: str) -> Factory:
    if name in FACTORIES:
        return FACTORIES[name]
    for key, factory in FACTORIES.items():
        if key.endswith(":") and name.startswith(key) and len(name) > len(key):
            return factory
    raise ValueError(f"unknown live source {name!r}; known: {', '.join(known())}")


def is_live_source(name: str) -> bool:
    try:
        factory_for(name)
    except ValueError:
        return False
    return True


def parse_spec(text: str, url: str | None = None) -> SourceSpec:
    """``NAME[=SYM,SYM]`` -> a spec (the name must be registered)."""
    name, _, syms = text.partition("=")
    name = name.strip()
    factory_for(name)
    symbols = tuple(s.strip() for s in syms.split(",") if s.strip())
    return SourceSpec(name, symbols, url)


class FeedsTable(BaseModel):
    """``[feeds]`` in the settings: the live sources a run reads when no --source is given.

    ::

        [feeds]
        sources = ["ccxt:okx=BTC/USDT,ETH/USDT", "binance=btcusdt@trade"]
        spot_markets = false            # ccxt: markets from REST (true: BASE-QUOTE locally)
        [feeds.urls]
        "ccxt:okx" = "wss://ws.okx.com:8443/ws/v5"
    """

    model_config = ConfigDict(extra="forbid")

    sources: list[str] = []
    urls: dict[str, str] = {}
    spot_markets: bool = False


def feeds_table(table: Mapping[str, Any]) -> FeedsTable:
    """The validated ``[feeds]`` table; ValueError naming the key that is wrong."""
    try:
        feeds = FeedsTable.model_validate(dict(table))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"feeds.{key}: {first['msg']}") from None
    for text in feeds.sources:
        parse_spec(text)  # names must be registered
    unknown = set(feeds.urls) - {s.partition("=")[0] for s in feeds.sources}
    if unknown:
        raise ValueError(f"feeds.urls names sources not in feeds.sources: {sorted(unknown)}")
    return feeds


def build_feed(spec: SourceSpec) -> Any:
    """The feed for one spec; ValueError naming the source when its settings are wrong."""
    try:
        return factory_for(spec.name)(spec)
    except ValueError as exc:
        raise ValueError(f"source {spec.name}: {exc}") from exc


def probability_symbols(feed: Any) -> tuple[str, ...]:
    """The symbols of ``feed`` (or of the feeds of a MultiFeed) whose prices are
    probabilities, as their instrument providers say (a prediction market's tokens)."""
    out: list[str] = []
    for f in getattr(feed, "feeds", None) or [feed]:
        out.extend(getattr(f, "probability_symbols", tuple)())
    return tuple(out)


def build_feeds(specs: Sequence[SourceSpec]) -> Any:
    """One feed for one spec, a :class:`~tripwire.adapters.multi.MultiFeed` for several."""
    if not specs:
        raise ValueError("no live source given")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"a source is listed twice: {names}")
    feeds = [build_feed(s) for s in specs]
    if len(feeds) == 1:
        return feeds[0]
    from tripwire.adapters.multi import MultiFeed

    return MultiFeed(feeds)
