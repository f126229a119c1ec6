"""Markets that stopped trading: a venue's resolution/halt events, made to stop decisions.

A prediction market that resolves (Polymarket's ``market_resolved``; the feed adds a
``halt`` event per token, :meth:`PolymarketInstruments.on_event`) prices nothing any more:
its token settles at 0 or 1. A venue event travels in :attr:`FeedChunk.events`; this module
turns the ``halt`` ones into closures and says what each part does with them:

* **recorded** — the live job writes one row per closed symbol in the ``heartbeats`` table,
  component ``market:<symbol>``, detail ``closed: <why>`` (:func:`component`,
  :func:`detail`): the operator's heartbeat view shows it, and a restarted sign-off service
  reads the closures back (:func:`closed_from_heartbeats`). The watchdog's stale-heartbeat
  check looks at ``feed:*``/``shard:*`` only, so a closed market never reads as a silent one.
* **incidents refused by name** — :class:`MarketGate` answers an incident on a closed
  symbol with status ``market_closed`` (and why), before any triage or decision.
* **no new orders** — every broker keeps ``closed_markets`` (symbol -> why); the paper and
  ccxt venues refuse a new order on one (``OrderRejected`` on ``symbol``), fail closed.
  Cancels and the watchdog's flatten stay allowed.

Closures are one-way: a resolved market does not reopen (a new market is a new token).

>>> from tripwire.adapters.polymarket.schemas import VenueEvent
>>> halt = VenueEvent("halt", 5, "0xm", ("123",), {"symbol": "PM-YES",
...                                               "reason": "market_resolved", "won": True})
>>> closures([VenueEvent("tick_size_change", 4, "0xm", ("123",)), halt])
{'PM-YES': 'market_resolved (won: True)'}
>>> closed_from_heartbeats({"market:PM-YES": (5, "closed: market_resolved"),
...                         "feed:polymarket": (9, "last message")})
{'PM-YES': 'market_resolved'}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PREFIX = "market:"
CLOSED = "closed: "
CLOSING_KINDS = ("halt",)  # a resolution emits one halt per token it closes
MAX_CLOSED = 100_000  # closures kept in memory (a symbol table is at most 65,535 names)
MARKET_CLOSED = "market_closed"  # an incident's status when its market is closed


def closures(events: Iterable[Any]) -> dict[str, str]:
    """symbol -> why, for the events that close a symbol's market (others are ignored)."""
    out: dict[str, str] = {}
    for e in events:
        if getattr(e, "kind", None) not in CLOSING_KINDS:
            continue
        info = getattr(e, "detail", None) or {}
        symbol = info.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            continue
        why = str(info.get("reason") or e.kind)
        if info.get("won") is not None:
            why += f" (won: {info['won']})"
        out[symbol] = why
    return out


def component(symbol: str) -> str:
    return PREFIX + symbol


def detail(why: str) -> str:
    return CLOSED + why


def closed_from_heartbeats(beats: Mapping[str, Any]) -> dict[str, str]:
    """The closures recorded in the heartbeats table (``component -> (ts_ns, detail)``)."""
    out: dict[str, str] = {}
    for name, value in beats.items():
        text = value[1] if isinstance(value, tuple | list) and len(value) > 1 else ""
        if name.startswith(PREFIX) and isinstance(text, str) and text.startswith(CLOSED):
            out[name[len(PREFIX):]] = text[len(CLOSED):]
    return out


class MarketGate:
    """The closed markets one service knows, applied to its broker and its incidents."""

    def __init__(self) -> None:
        self.closed: dict[str, str] = {}
        self.refused = 0  # incidents refused because their market is closed

    def close(self, closed: Mapping[str, str], broker: Any = None) -> int:
        """Record closures and tell ``broker`` (its ``closed_markets``); the new ones.

        A broker without ``closed_markets`` cannot refuse orders on a closed market: that is
        a ValueError (fail closed), never ignored."""
        if broker is not None and not isinstance(getattr(broker, "closed_markets", None), dict):
            raise ValueError(f"{type(broker).__name__} cannot refuse orders on closed "
                             "markets (no closed_markets)")
        new = 0
        for symbol, why in closed.items():
            if symbol not in self.closed:
                if len(self.closed) >= MAX_CLOSED:
                    raise ValueError(f"more than {MAX_CLOSED} closed markets")
                new += 1
            self.closed[symbol] = why
            if broker is not None:
                broker.closed_markets[symbol] = why
        return new

    def refusal(self, symbol: str) -> str | None:
        why = self.closed.get(symbol)
        if why is None:
            return None
        return f"{symbol}'s market is closed ({why}): its incidents are not traded"

    def split(self, incidents: list[dict]) -> tuple[list[dict], list[dict[str, str]]]:
        """(incidents to queue, answers for the refused ones: id, status, reason)."""
        kept, refused = [], []
        for raw in incidents:
            why = self.refusal(str(raw.get("symbol", ""))) if isinstance(raw, dict) else None
            if why is None:
                kept.append(raw)
                continue
            self.refused += 1
            refused.append({"id": str(raw.get("id") or ""), "status": MARKET_CLOSED,
                            "reason": why})
        return kept, refused
