"""Recorded ccxt trades (JSON lines) read as a feed, for replay and backtests.

One unified ccxt trade per line, as ``fetch_trades``/``watch_trades`` return them
(``{"id", "timestamp", "symbol", "side", "price", "amount", ...}``): a recording made with
``json.dumps(trade)`` per trade, or an exchange's history fetched through ccxt. Each line
goes through :func:`tripwire.adapters.ccxt.schemas.parse_trade` (the live feed's rules) and
every chunk through a :class:`~tripwire.feeds.validate.TickValidator`, so a replay refuses
exactly what the live feed refuses. Blank lines are skipped; a line that is not JSON is a
``malformed`` dead letter naming its line. Rows keep the file's order (the validator refuses
what goes back in time). ``recv_ns`` is stamped on release (see ``IterableFeed``).

>>> import json, pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "okx.jsonl"
>>> t = {"id": "1", "timestamp": 1700000000000, "symbol": "BTC/USDT", "side": "buy",
...      "price": 100.0, "amount": 1.0}
>>> _ = path.write_text(json.dumps(t) + "\\n" + json.dumps(t) + "\\n{oops\\n")
>>> from tripwire.model import SimClock
>>> feed = CcxtTradesFile(path, ["BTC/USDT"], exchange="okx", clock=SimClock(0))
>>> chunk, = feed.iter_chunks()
>>> chunk.ticks.trade_id.tolist(), sorted(d.reason.value for d in chunk.dead)
([1], ['duplicate', 'malformed'])
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from tripwire.adapters.ccxt.instruments import symbol_name
from tripwire.adapters.ccxt.schemas import Refusal, parse_trade
from tripwire.feeds.base import FeedChunk, IterableFeed
from tripwire.feeds.validate import TickValidator
from tripwire.model import Clock, DeadLetter, DeadReason, SymbolTable, TickBatch


class CcxtTradesFile(IterableFeed):
    """Unified trades of ``symbols`` from a JSON-lines file, ``chunk_rows`` per chunk."""

    def __init__(
        self,
        path: str | Path,
        symbols: Sequence[str],
        *,
        exchange: str,
        chunk_rows: int = 65_536,
        speed: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(speed=speed, clock=clock)
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"no such file: {self.path}")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.source = f"ccxt-file:{exchange}:{self.path.name}"
        self.symbols = SymbolTable([symbol_name(s) for s in symbols])
        self.chunk_rows = chunk_rows
        self._ids = {n: i for i, n in enumerate(self.symbols.names)}
        self.validator = TickValidator(
            source=self.source, clock=self.clock, symbols=self.symbols, detect_gaps=True
        )
        self._lines = 0

    def iter_chunks(self) -> Iterator[FeedChunk]:
        cols: list[list] = [[] for _ in range(6)]
        raws: list[str] = []
        dead: list[DeadLetter] = []
        with self.path.open("r", encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                self._lines = n
                if self._stop:
                    break
                text = line.strip()
                if not text:
                    continue
                self._row(n, text, cols, raws, dead)
                if len(raws) >= self.chunk_rows:
                    yield self._chunk(cols, raws, dead)
                    cols, raws, dead = [[] for _ in range(6)], [], []
        if raws or dead:
            yield self._chunk(cols, raws, dead)

    def _row(self, n: int, text: str, cols: list[list], raws: list[str],
             dead: list[DeadLetter]) -> None:
        now = self.clock.now_ns()
        try:
            trade = json.loads(text)
        except ValueError as exc:
            dead.append(DeadLetter.make(self.source, DeadReason.MALFORMED, text, now, None,
                                        f"line {n}: not JSON: {exc}"))
            return
        row = parse_trade(trade, "trades")
        if isinstance(row, Refusal):
            dead.append(DeadLetter.make(self.source, row.reason, text, now, None,
                                        f"line {n}: {row.detail}"))
            return
        sid = self._ids.get(row.symbol, -1)  # -1: the validator's unknown_symbol
        for col, value in zip(cols, (sid, row.ts_ns, row.price, row.qty, row.side,
                                     row.trade_id), strict=True):
            col.append(value)
        raws.append(text)

    def _chunk(self, cols: list[list], raws: list[str], dead: list[DeadLetter]) -> FeedChunk:
        batch = TickBatch.from_columns(*cols) if raws else TickBatch.empty()
        checked = self.validator.validate(batch, raw=lambda r: raws[r]) if raws else None
        if checked is None:
            return FeedChunk(TickBatch.empty(), dead)
        return FeedChunk(checked.ticks, [*dead, *checked.dead], checked.gaps)

    def stats(self) -> dict:
        return {"source": self.source, "lines": self._lines, **self.validator.counters()}
