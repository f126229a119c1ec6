"""Tick validation shared by every feed: bad ticks become dead letters, never detector input.

A :class:`TickValidator` is stateful per symbol (last accepted time and trade id), so it
catches a tick that goes back in time or repeats a trade id across batches and across a
reconnect. It works on whole columnar batches with NumPy; there is no Python loop per tick
on the clean path.

Rules, in the order they are applied (a row gets the first reason that fits):

* ``unknown_symbol``: the symbol id is outside the feed's symbol table (parsers map an
  unknown name to -1);
* ``bad_price``: NaN, inf or <= 0; ``bad_qty``: NaN, inf or < 0; ``bad_time``: ts <= 0;
* per symbol, against the ticks *accepted* before it: ``duplicate`` when the trade id is
  not above the highest accepted one (a replay after a reconnect), else ``out_of_order``
  when the time is before the last accepted tick's. Rows without a trade id (-1) are
  checked on time only and leave the highest trade id as it was.

Accepted rows keep their arrival order. With ``detect_gaps`` an accepted trade id more than
one above the symbol's highest accepted id is reported as a :class:`Gap` (Binance ids are
consecutive per symbol and stream).

>>> from tripwire.model import SimClock, TickBatch
>>> v = TickValidator(n_symbols=2, source="doc", clock=SimClock(7))
>>> b = TickBatch.from_columns([0, 0, 1, 0, 5], [10, 20, 10, 15, 30],
...                            [1.0, 1.0, -2.0, 1.0, 1.0], [1.0] * 5, trade_id=[1, 2, 1, 3, 9])
>>> res = v.validate(b)
>>> res.ticks.trade_id.tolist(), [d.reason.value for d in res.dead]
([1, 2], ['bad_price', 'out_of_order', 'unknown_symbol'])
>>> v.counters()["dead"]
{'bad_price': 1, 'unknown_symbol': 1, 'out_of_order': 1}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tripwire._native_loader import load
from tripwire.model import Clock, DeadLetter, DeadReason, SymbolTable, SystemClock, TickBatch

_feedcheck = load("_feedcheck")

RawFn = Callable[[int], str]


@dataclass(frozen=True, slots=True)
class Gap:
    """Trade ids missing between two accepted ticks of one symbol (lost while disconnected)."""

    source: str
    symbol_id: int
    after_trade_id: int
    before_trade_id: int
    detected_ns: int

    @property
    def missing(self) -> int:
        return self.before_trade_id - self.after_trade_id - 1


@dataclass(frozen=True, slots=True)
class Validated:
    """A batch after validation: the clean ticks, the dead letters and any trade-id gaps."""

    ticks: TickBatch
    dead: list[DeadLetter] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)


class TickValidator:
    """Per-feed validation state. Not thread-safe (one per feed, like the feed itself)."""

    def __init__(
        self,
        n_symbols: int = 0,
        *,
        source: str,
        clock: Clock | None = None,
        symbols: SymbolTable | None = None,
        detect_gaps: bool = False,
    ) -> None:
        self.source = source
        self.clock = clock or SystemClock()
        self.symbols = symbols
        self.detect_gaps = detect_gaps
        self._last_ts = np.zeros(0, dtype=np.int64)
        self._last_tid = np.zeros(0, dtype=np.int64)
        self._grow(max(n_symbols, len(symbols) if symbols is not None else 0))
        self._accepted = 0
        self._dead = {r.value: 0 for r in DeadReason}
        self._gaps = 0
        self._missing = 0

    # -- state ---------------------------------------------------------------------------

    @property
    def n_symbols(self) -> int:
        return len(self._last_ts)

    def _grow(self, n: int) -> None:
        if n > len(self._last_ts):
            extra = n - len(self._last_ts)
            self._last_ts = np.concatenate([self._last_ts, np.full(extra, -1, np.int64)])
            self._last_tid = np.concatenate([self._last_tid, np.full(extra, -1, np.int64)])

    def counters(self) -> dict:
        """Accepted ticks, dead letters by reason (only reasons seen), gaps and ids missing."""
        return {
            "accepted": self._accepted,
            "dead": {k: v for k, v in self._dead.items() if v},
            "gaps": self._gaps,
            "missing_trade_ids": self._missing,
        }

    def count_dead(self, reason: DeadReason | str, n: int = 1) -> None:
        """Count dead letters a parser made itself (e.g. malformed JSON before any batch)."""
        self._dead[DeadReason(reason).value] += n

    def last_trade_id(self, symbol_id: int) -> int:
        return int(self._last_tid[symbol_id]) if 0 <= symbol_id < self.n_symbols else -1

    # -- validation ----------------------------------------------------------------------

    def validate(self, batch: TickBatch, raw: Sequence[str] | RawFn | None = None) -> Validated:
        """Split ``batch`` into clean ticks and dead letters; update per-symbol state."""
        if self.symbols is not None:
            self._grow(len(self.symbols))
        n = len(batch)
        if n == 0:
            return Validated(batch)
        reason = self._value_reasons(batch)
        order_reason, gaps = self._order_and_gaps(batch, reason == 0)
        reason = np.where(reason == 0, order_reason, reason)
        ok = reason == 0
        bad_rows = np.flatnonzero(~ok)
        clean = batch if len(bad_rows) == 0 else batch.take(np.flatnonzero(ok))
        self._accepted += len(clean)
        return Validated(clean, self._dead_letters(batch, bad_rows, reason, raw), gaps)

    _REASONS = (
        None,
        DeadReason.UNKNOWN_SYMBOL,
        DeadReason.BAD_PRICE,
        DeadReason.BAD_QTY,
        DeadReason.BAD_TIME,
        DeadReason.DUPLICATE,
        DeadReason.OUT_OF_ORDER,
    )

    def _value_reasons(self, b: TickBatch) -> np.ndarray:
        """Per row: 0 if the values are fine, else an index into _REASONS (first that fits)."""
        reason = np.zeros(len(b), dtype=np.int8)
        checks = (
            (b.symbol_id < 0) | (b.symbol_id >= self.n_symbols),
            ~np.isfinite(b.price) | (b.price <= 0),
            ~np.isfinite(b.qty) | (b.qty < 0),
            b.ts_ns <= 0,
        )
        for code in range(len(checks), 0, -1):  # last assignment wins: first reason applies
            reason[checks[code - 1]] = code
        return reason

    def _order_and_gaps(self, b: TickBatch, eligible: np.ndarray) -> tuple[np.ndarray, list]:
        """Duplicate / out-of-order codes for rows that passed the value checks, and gaps.

        Each row is judged against the rows of its symbol accepted before it, so a refused
        row never becomes the reference ([10, 100, 50] by time: 100 is fine, 50 is late;
        with ids [5, 5, 6]: the second 5 is a duplicate and 6 is judged against the first).
        That is sequential by nature; it runs in C++ (tripwire._feedcheck.order_check), which
        also updates the per-symbol state in place.
        """
        codes, gap_prev = _feedcheck.order_check(
            b.symbol_id, b.ts_ns, b.trade_id, eligible, self._last_ts, self._last_tid
        )
        reason = np.where(codes == 5, 5, np.where(codes == 6, 6, 0)).astype(np.int8)
        gaps: list[Gap] = []
        if self.detect_gaps:
            rows = np.flatnonzero(gap_prev >= 0)
            now = self.clock.now_ns() if len(rows) else 0
            for r in rows.tolist():
                after, before = int(gap_prev[r]), int(b.trade_id[r])
                gaps.append(Gap(self.source, int(b.symbol_id[r]), after, before, now))
                self._missing += before - after - 1
            self._gaps += len(gaps)
        return reason, gaps

    def _dead_letters(self, b: TickBatch, rows: np.ndarray, reason: np.ndarray, raw) -> list:
        if len(rows) == 0:
            return []
        now = self.clock.now_ns()
        out = []
        for r in rows.tolist():
            why = self._REASONS[reason[r]]
            self._dead[why.value] += 1
            sid = int(b.symbol_id[r])
            name = None
            if self.symbols is not None and 0 <= sid < len(self.symbols):
                name = self.symbols.name(sid)
            payload = raw(r) if callable(raw) else raw[r] if raw is not None else _row_text(b, r)
            detail = self._detail(b, r, why)
            out.append(DeadLetter.make(self.source, why, payload, now, name, detail))
        return out

    def _detail(self, b: TickBatch, r: int, why: DeadReason) -> str:
        sid = int(b.symbol_id[r])
        match why:
            case DeadReason.BAD_PRICE:
                return f"price={float(b.price[r])!r}"
            case DeadReason.BAD_QTY:
                return f"qty={float(b.qty[r])!r}"
            case DeadReason.BAD_TIME:
                return f"ts_ns={int(b.ts_ns[r])}"
            case DeadReason.UNKNOWN_SYMBOL:
                return f"symbol_id={sid} not in a table of {self.n_symbols}"
            case DeadReason.DUPLICATE:
                return f"trade_id={int(b.trade_id[r])} is not above an accepted trade id"
            case _:
                return f"ts_ns={int(b.ts_ns[r])} is behind an accepted tick of the symbol"


def _row_text(b: TickBatch, r: int) -> str:
    return ",".join(f"{k}={v[r].item()!r}" for k, v in b.columns().items())
