"""Polymarket's trades history (the data API's ``GET /trades`` answer) as a replay feed.

A recorded answer is a JSON array of trades ``{asset, conditionId, side, price, size,
timestamp (s), transactionHash, ...}``, newest first as the API returns it, or a file of
several such pages (``[[...], [...]]``). :class:`PolymarketTradesFile` reads one, keeps the
trades of the followed tokens, sorts them by time (ties keep the file's order reversed,
i.e. oldest first) and yields validated chunks, with the same deterministic ids and
de-duplication as the live channel (:class:`~.websocket.TradeIds`), so a replay of the
history and the live stream agree on what a duplicate is. Rows that are not trades, prices
outside [0, 1] and trades of tokens not followed become dead letters naming the problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from tripwire.adapters.polymarket.config import MarketSpec
from tripwire.adapters.polymarket.instruments import PolymarketInstruments
from tripwire.adapters.polymarket.schemas import (
    HISTORY_SOURCE,
    HistoryRowError,
    Trade,
    parse_history_trade,
)
from tripwire.adapters.polymarket.websocket import TradeIds
from tripwire.feeds.base import FeedChunk, IterableFeed
from tripwire.feeds.validate import TickValidator
from tripwire.model import Clock, DeadLetter, DeadReason, TickBatch

MAX_FILE_BYTES = 512 * 1024 * 1024


class PolymarketTradesFile(IterableFeed):
    """A recorded trades-history file, replayed in exchange-time order."""

    def __init__(self, path: str | Path, markets: list[MarketSpec] | tuple[MarketSpec, ...], *,
                 chunk_rows: int = 10_000, speed: float | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(speed=speed, clock=clock)
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"polymarket trades file {self.path} does not exist")
        if self.path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"polymarket trades file {self.path} is over "
                             f"{MAX_FILE_BYTES // 2**20} MiB: split it")
        if not (isinstance(chunk_rows, int) and chunk_rows > 0):
            raise ValueError(f"chunk_rows must be an integer > 0, got {chunk_rows!r}")
        self.source = f"{HISTORY_SOURCE}:{self.path.name}"
        self.instruments = PolymarketInstruments(markets)
        self.symbols = self.instruments.symbols
        self.chunk_rows = chunk_rows
        self.validator = TickValidator(source=self.source, clock=self.clock,
                                       symbols=self.symbols, detect_gaps=False)
        self._n = {"rows": 0, "ticks": 0, "chunks": 0}

    def probability_symbols(self) -> tuple[str, ...]:
        return self.instruments.probability_symbols()

    def iter_chunks(self) -> Iterator[FeedChunk]:
        trades, dead = self._read()
        ids = TradeIds(max_keys=max(1, len(trades)))
        cols: dict[str, list] = {k: [] for k in ("sid", "ts", "price", "qty", "side", "tid")}
        now = self.clock.now_ns()
        for t in trades:
            symbol = self.instruments.symbol(t.asset_id)
            assert symbol is not None  # filtered in _read
            tid = ids.assign(t.asset_id, t.ts_ns, t.key)
            if tid is None:
                dead.append(DeadLetter.make(self.source, DeadReason.DUPLICATE, repr(t), now,
                                            symbol, "trade listed twice in the history"))
                continue
            for k, v in zip(cols, (self.symbols.id(symbol), t.ts_ns, t.price, t.qty, t.side,
                                   tid), strict=True):
                cols[k].append(v)
        n = len(cols["sid"])
        for lo in range(0, max(n, 1), self.chunk_rows):
            hi = min(n, lo + self.chunk_rows)
            batch = TickBatch.from_columns(*(cols[k][lo:hi] for k in cols))
            v = self.validator.validate(batch)
            self._n["ticks"] += len(v.ticks)
            self._n["chunks"] += 1
            yield FeedChunk(v.ticks, (dead if lo == 0 else []) + v.dead, v.gaps)
            if self._stop:
                return

    def _read(self) -> tuple[list[Trade], list[DeadLetter]]:
        try:
            payload = json.loads(self.path.read_bytes())
        except ValueError as exc:
            raise ValueError(f"polymarket trades file {self.path} is not JSON: {exc}") from None
        if not isinstance(payload, list):
            raise ValueError(f"polymarket trades file {self.path} must hold a JSON array of "
                             f"trades (the data API's /trades answer)")
        pages = payload if payload and all(isinstance(p, list) for p in payload) else [payload]
        now = self.clock.now_ns()
        trades: list[tuple[int, int, Trade]] = []
        dead: list[DeadLetter] = []
        for p, page in enumerate(pages):
            for i, row in enumerate(page):
                self._n["rows"] += 1
                try:
                    t = parse_history_trade(row)
                except HistoryRowError as exc:
                    asset = row.get("asset") if isinstance(row, dict) else None
                    dead.append(DeadLetter.make(self.source, exc.reason, json.dumps(row), now,
                                                self.instruments.symbol(str(asset)) or asset,
                                                f"page {p} row {i}: {exc.detail}"))
                    continue
                if self.instruments.symbol(t.asset_id) is None:
                    dead.append(DeadLetter.make(self.source, DeadReason.UNKNOWN_SYMBOL,
                                                json.dumps(row), now, t.asset_id,
                                                f"asset {t.asset_id} is not a followed token"))
                    continue
                trades.append((t.ts_ns, -(p * 10**9 + i), t))  # the API lists newest first
        trades.sort(key=lambda r: (r[0], r[1]))
        return [t for _, _, t in trades], dead

    def stats(self) -> dict:
        return {"source": self.source, **self._n, **self.validator.counters()}
