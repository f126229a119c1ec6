"""The latest trade price per symbol, as the fact-checker reads it.

>>> from tripwire.model import SymbolTable, TickBatch, last_rows
>>> prices = LatestPrices(SymbolTable(["BTCUSDT", "ETHUSDT"]))
>>> prices.update(TickBatch.from_columns([0, 1, 0], [5, 6, 7], [100.0, 10.0, 101.0], [1, 1, 1]))
>>> prices.get("BTCUSDT"), prices.get("SOLUSDT")
((101.0, 7), None)
"""

from __future__ import annotations

import numpy as np

from tripwire.model import SymbolTable, TickBatch, last_rows


class LatestPrices:
    """Last price and its tick time per symbol, updated from tick batches (vectorised)."""

    def __init__(self, symbols: SymbolTable) -> None:
        self.symbols = symbols
        self._price = np.full(max(len(symbols), 1), np.nan)
        self._ts = np.zeros(max(len(symbols), 1), dtype=np.int64)

    def update(self, batch: TickBatch) -> None:
        if not len(batch):
            return
        ok = np.isfinite(batch.price) & (batch.price > 0)
        sid = batch.symbol_id[ok]
        uniq, last = last_rows(sid)  # the last row of each symbol in the batch
        self._price[uniq] = batch.price[ok][last]
        self._ts[uniq] = batch.ts_ns[ok][last]

    def get(self, symbol: str) -> tuple[float, int] | None:
        if symbol not in self.symbols:
            return None
        i = self.symbols.id(symbol)
        price = float(self._price[i])
        return None if np.isnan(price) else (price, int(self._ts[i]))

    def set(self, symbol: str, price: float, ts_ns: int) -> None:
        i = self.symbols.id(symbol)
        self._price[i], self._ts[i] = price, ts_ns
