"""The outcome tokens a Polymarket feed follows, and what the venue said about them.

Every symbol here is a **probability**: :meth:`PolymarketInstruments.probability_symbols`
is what a detector shard is told (``DetectorShard(probability_symbols=...)``), so these
symbols are scored on log-odds changes (:mod:`tripwire.detect.transform`).

Venue events change state here, never the detectors: a ``tick_size_change`` updates the
token's tick size; a ``market_resolved`` marks every token of the market resolved (their
later trades are refused ``market_resolved``) and is followed by one ``halt`` event per
token, so a watchdog or an operator sees that the symbol stopped on purpose.

>>> from tripwire.adapters.polymarket.config import MarketSpec
>>> ins = PolymarketInstruments([MarketSpec("1", "PM-A-YES", "0xa"),
...                              MarketSpec("2", "PM-A-NO", "0xa")])
>>> ev = VenueEvent("market_resolved", 5, "0xa", ("1", "2"), {"winning_asset_id": "1"})
>>> [e.kind for e in ins.on_event(ev)], ins.is_resolved("2")
(['market_resolved', 'halt', 'halt'], True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tripwire.adapters.polymarket.config import MarketSpec
from tripwire.adapters.polymarket.schemas import Quote, VenueEvent
from tripwire.model import SymbolTable


@dataclass(slots=True)
class TokenState:
    spec: MarketSpec
    tick_size: float
    best_bid: float | None = None
    best_ask: float | None = None
    quote_ns: int = 0
    resolved: bool = False
    won: bool | None = None  # after resolution: did this token win


class PolymarketInstruments:
    """asset id <-> symbol, tick sizes, best bid/ask and resolution, for a feed's tokens."""

    def __init__(self, markets: Iterable[MarketSpec]) -> None:
        self._by_asset = {m.asset_id: TokenState(m, m.tick_size) for m in markets}
        if not self._by_asset:
            raise ValueError("a Polymarket feed needs at least one market (asset id)")
        self.symbols = SymbolTable([t.spec.symbol for t in self._by_asset.values()])

    @property
    def asset_ids(self) -> tuple[str, ...]:
        return tuple(self._by_asset)

    def symbol(self, asset_id: str) -> str | None:
        token = self._by_asset.get(asset_id)
        return token.spec.symbol if token is not None else None

    def probability_symbols(self) -> tuple[str, ...]:
        """Every symbol of this venue: its prices are probabilities in [0, 1]."""
        return self.symbols.names

    def is_resolved(self, asset_id: str) -> bool:
        token = self._by_asset.get(asset_id)
        return token is not None and token.resolved

    def on_quote(self, quote: Quote) -> bool:
        """Keep the asset's best bid/ask; False when the asset is not followed."""
        token = self._by_asset.get(quote.asset_id)
        if token is None:
            return False
        token.best_bid, token.best_ask, token.quote_ns = quote.best_bid, quote.best_ask, quote.ts_ns
        return True

    def on_event(self, event: VenueEvent) -> list[VenueEvent]:
        """Apply a venue event; the events to report (a resolution adds one halt per token)."""
        mine = [a for a in event.asset_ids if a in self._by_asset]
        if event.kind == "tick_size_change":
            for a in mine:
                self._by_asset[a].tick_size = float(event.detail["new_tick_size"])
            return [event] if mine else []
        if event.kind == "market_resolved":
            winner = event.detail.get("winning_asset_id")
            out = [event] if mine else []
            for a in mine:
                token = self._by_asset[a]
                if token.resolved:
                    continue
                token.resolved = True
                token.won = (a == winner) if winner else None
                out.append(VenueEvent("halt", event.ts_ns, event.market, (a,),
                                      {"symbol": token.spec.symbol, "reason": "market_resolved",
                                       "won": token.won}))
            return out
        return [event]  # new_market: reported, nothing to change (not subscribed)

    def snapshot(self) -> dict[str, dict]:
        """Per symbol: tick size, best bid/ask, resolution (for stats and fact-checks)."""
        return {t.spec.symbol: {"asset_id": a, "tick_size": t.tick_size, "best_bid": t.best_bid,
                                "best_ask": t.best_ask, "quote_ns": t.quote_ns,
                                "resolved": t.resolved, "won": t.won}
                for a, t in self._by_asset.items()}
