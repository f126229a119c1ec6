"""Tick validation shared by every feed: bad ticks become dead letters, never detector input.

A :class:`TickValidator` is stateful per symbol (last accepted time and trade id), so it
catches a tick that goes back in time or repeats a trade id across batches and across a
reconnect. It works on whole columnar batches with NumPy; there is no Python loop per tick
on the clean path.

Rules, in the order they are applied (a row gets the first reason that fits):

* ``unknown_symbol``: the symbol id is outside the feed's symbol table (parsers map an
  unknown name to -1);
* ``bad_price``: NaN, inf or <= 0; ``bad_qty``: NaN, inf or < 0; ``bad_time``: ts <= 0;
* per symbol, against the previous *accepted* tick: ``duplicate`` when the trade id is not
  above the highest accepted one (a replay after a reconnect), else ``out_of_order`` when
  the time goes back. Rows without a trade id (-1) are checked on time only.

Accepted rows keep their arrival order. With ``detect_gaps`` a jump in a symbol's trade
ids (Binance ids are consecutive per symbol and stream) is reported as a :class:`Gap`.

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

from tripwire.model import Clock, DeadLetter, DeadReason, SymbolTable, SystemClock, TickBatch

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
        order_reason = self._order_reasons(batch, reason == 0)
        reason = np.where(reason == 0, order_reason, reason)
        ok = reason == 0
        bad_rows = np.flatnonzero(~ok)
        clean = batch if len(bad_rows) == 0 else batch.take(np.flatnonzero(ok))
        gaps = self._gaps_and_commit(clean)
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

    def _order_reasons(self, b: TickBatch, ok: np.ndarray) -> np.ndarray:
        """Duplicate / out-of-order codes for rows that passed the value checks.

        Rows are grouped by symbol (stable, so arrival order holds within a symbol) and each
        is compared with the previous *remaining* row of its group, the first with the
        symbol's state. Removing offenders can expose new ones ([10, 5, 6]: 5 goes, then 6
        is behind 10), so the pass repeats until nothing changes; the result is exactly
        "at or after the running maximum". Clean batches take one pass.
        """
        reason = np.zeros(len(b), dtype=np.int8)
        rows = np.flatnonzero(ok)
        if len(rows) == 0:
            return reason
        sid = b.symbol_id[rows]
        if len(rows) > 1 and not (sid[0] == sid).all():
            grouped = np.argsort(sid, kind="stable")
            rows, sid = rows[grouped], sid[grouped]
        ts, tid = b.ts_ns[rows], b.trade_id[rows]
        while len(rows):
            first = np.ones(len(rows), dtype=bool)
            first[1:] = sid[1:] != sid[:-1]
            prev_ts = np.where(first, self._last_ts[sid], np.roll(ts, 1))
            prev_tid = np.where(first, self._last_tid[sid], np.roll(tid, 1))
            dup = (tid >= 0) & (prev_tid >= 0) & (tid <= prev_tid)
            late = ~dup & (ts < prev_ts)
            if not (dup.any() or late.any()):
                break
            reason[rows[dup]] = 5
            reason[rows[late]] = 6
            keep = ~(dup | late)
            rows, sid, ts, tid = rows[keep], sid[keep], ts[keep], tid[keep]
        return reason

    def _gaps_and_commit(self, clean: TickBatch) -> list[Gap]:
        """Record each symbol's last accepted tick; report trade-id jumps if asked."""
        if len(clean) == 0:
            return []
        sid = clean.symbol_id
        grouped = np.argsort(sid, kind="stable")
        sid_g = sid[grouped]
        ts_g, tid_g = clean.ts_ns[grouped], clean.trade_id[grouped]
        last = np.ones(len(sid_g), dtype=bool)
        last[:-1] = sid_g[1:] != sid_g[:-1]
        gaps: list[Gap] = []
        if self.detect_gaps:
            first = np.ones(len(sid_g), dtype=bool)
            first[1:] = sid_g[1:] != sid_g[:-1]
            prev = np.where(first, self._last_tid[sid_g], np.roll(tid_g, 1))
            jump = (prev >= 0) & (tid_g >= 0) & (tid_g > prev + 1)
            now = self.clock.now_ns()
            for i in np.flatnonzero(jump):
                gaps.append(Gap(self.source, int(sid_g[i]), int(prev[i]), int(tid_g[i]), now))
                self._missing += int(tid_g[i] - prev[i] - 1)
            self._gaps += len(gaps)
        self._last_ts[sid_g[last]] = ts_g[last]
        has_tid = last & (tid_g >= 0)
        self._last_tid[sid_g[has_tid]] = tid_g[has_tid]
        return gaps

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
