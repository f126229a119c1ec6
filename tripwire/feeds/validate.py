"""Tick validation shared by every feed: bad ticks become dead letters, never detector input.

A :class:`TickValidator` is stateful per symbol (last accepted time and trade id), so it
catches a tick that goes back in time or repeats a trade id across batches and across a
reconnect. It works on whole columnar batches with NumPy; there is no Python loop per tick
on the clean path.

Rules, in the order they are applied (a row gets the first reason that fits):

* ``unknown_symbol``: the symbol id is outside the feed's symbol table (parsers map an
  unknown name to -1);
* ``bad_price``: NaN, inf or <= 0; ``bad_qty``: NaN, inf or < 0; ``bad_time``: ts <= 0,
  or ts outside the feed's :class:`TimeWindow` (below);
* per symbol, against the ticks *accepted* before it: ``duplicate`` when the trade id is
  not above the highest accepted one (a replay after a reconnect), else ``out_of_order``
  when the time is before the last accepted tick's. Rows without a trade id (-1) are
  checked on time only and leave the highest trade id as it was.

Time window (``[time]`` in the settings, :class:`tripwire.config.TimeSettings`). A row
outside it is dead-lettered ``bad_time`` before the order checks, so it never becomes a
symbol's last time: one absurd tick cannot make the later good ones ``out_of_order``.

* live (``TimeWindow.market`` false, the feed's clock is the wall clock): ts must be in
  ``[now - max_age, now + max_future_skew]``;
* market time (a replay, the demo, a backtest; the default): the feed's *market clock* is
  the highest time of any tick accepted so far (the watermark ``W``). Each batch is judged
  against an anchor ``A = max(W, lower median of {W} + the batch's otherwise valid times)``
  and must be at most ``A + market_max_skew``. There is no age bound on market time (the
  per-symbol order checks refuse what goes back, and a watermark pushed too far by a bad
  first batch must not make every later tick "too old"). The median keeps one outlier from
  moving the anchor: a lone tick of 2100 in its own batch has the median ``W`` (the lower
  of two), in a bigger batch the median is one of the good rows. Only accepted rows move
  ``W``, so ``W`` grows by at most ``market_max_skew`` past a batch's median. A genuine jump
  (a replay restarting later) is followed as soon as a batch of two or more rows agrees on
  it. Before the first accepted tick only the source's own period bounds apply (a driver
  that knows it passes ``start_ns``/``end_ns``); with neither, the first batch's median is
  the anchor.

Both bounds are inclusive; the refusals are counted by side (:meth:`TickValidator.time_stats`).

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
from tripwire.config import TimeSettings
from tripwire.model import (
    NS_PER_SECOND,
    Clock,
    DeadLetter,
    DeadReason,
    SymbolTable,
    SystemClock,
    TickBatch,
)

_feedcheck = load("_feedcheck")
INT64_MAX = int(np.iinfo(np.int64).max)
# Passes of the in-batch market clock (TickValidator._market_chain): each moves it at least
# one skew further, so 1,024 passes cover 256 days of a 6 h skew in one batch.
MAX_CHAIN_PASSES = 1_024

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


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Where a timestamp must lie to be believed (see the module docstring for the rule).

    >>> w = TimeWindow(market=False)
    >>> w.refusal(10 * NS_PER_SECOND, wall_ns=10 * NS_PER_SECOND + 1) is None
    True
    >>> w.refusal(16 * NS_PER_SECOND, wall_ns=10 * NS_PER_SECOND)
    'ts_ns=16000000000 is after 15000000000 (more than 5 s ahead of the wall clock)'
    """

    market: bool = True
    max_future_skew_ns: int = 5 * NS_PER_SECOND
    max_age_ns: int = 86_400 * NS_PER_SECOND
    market_max_skew_ns: int = 21_600 * NS_PER_SECOND
    start_ns: int | None = None  # the source's own period, when the driver knows it
    end_ns: int | None = None

    @classmethod
    def from_settings(cls, settings: TimeSettings, *, market: bool,
                      start_ns: int | None = None, end_ns: int | None = None) -> TimeWindow:
        def ns(s: float) -> int:
            return round(s * NS_PER_SECOND)

        return cls(market, ns(settings.max_future_skew_s), ns(settings.max_age_s),
                   ns(settings.market_max_skew_s), start_ns, end_ns)

    @property
    def skew_ns(self) -> int:
        return self.market_max_skew_ns if self.market else self.max_future_skew_ns

    def bounds(self, wall_ns: int, market_ns: int | None = None) -> tuple[int, int]:
        """Inclusive ``(lo, hi)``: around ``wall_ns`` live; on market time at most the skew
        after ``market_ns`` (no bound while it is unknown); within the source's period."""
        lo, hi = 1, INT64_MAX
        if not self.market:
            lo, hi = max(lo, wall_ns - self.max_age_ns), min(hi, wall_ns + self.skew_ns)
        elif market_ns is not None:  # no age bound: a bad watermark must not refuse all
            hi = min(hi, market_ns + self.skew_ns)
        if self.start_ns is not None:
            lo = max(lo, self.start_ns)
        if self.end_ns is not None:
            hi = min(hi, self.end_ns)
        return lo, hi

    def refusal(self, ts_ns: int, wall_ns: int, market_ns: int | None = None) -> str | None:
        """None when ``ts_ns`` is inside the window, else a sentence saying where it is."""
        lo, hi = self.bounds(wall_ns, market_ns)
        if lo <= ts_ns <= hi:
            return None
        return self.explain(ts_ns, lo, hi)

    def explain(self, ts_ns: int, lo: int, hi: int) -> str:
        clock = "market" if self.market else "wall"
        if ts_ns > hi:
            why = ("after the source's end" if self.end_ns is not None and hi == self.end_ns
                   else f"more than {self.skew_ns / NS_PER_SECOND:g} s ahead of the {clock} "
                        f"clock")
            return f"ts_ns={ts_ns} is after {hi} ({why})"
        why = ("before the source's start" if self.start_ns is not None and lo == self.start_ns
               else f"more than {self.max_age_ns / NS_PER_SECOND:g} s behind the {clock} clock")
        return f"ts_ns={ts_ns} is before {lo} ({why})"


def lower_median(values: np.ndarray) -> int:
    """The lower median (an element of ``values``, O(n)); one outlier cannot choose it."""
    k = (len(values) - 1) // 2
    return int(np.partition(values, k)[k])


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
        window: TimeWindow | None = None,
    ) -> None:
        self.source = source
        self.clock = clock or SystemClock()  # stamps dead letters; the wall clock when live
        self.window = window or TimeWindow()
        self._market_ns: int | None = None  # the watermark: highest accepted time
        self._bounds = (1, INT64_MAX)  # the last batch's time bounds (for dead-letter details)
        self._time_refused = {"ahead": 0, "behind": 0, "chain_capped": 0}
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

    def time_stats(self) -> dict:
        """``bad_time`` refusals of the window by side, and the feed's market clock."""
        return {**self._time_refused, "market_clock_ns": self._market_ns}

    @property
    def market_clock_ns(self) -> int | None:
        """The feed's market clock: the highest accepted time (None before any)."""
        return self._market_ns

    def time_refusal(self, ts_ns: int) -> str | None:
        """Whether a single timestamp (a headline's) is in the feed's window now; None if so,
        else why not. Market time: judged against the watermark itself."""
        return self.window.refusal(ts_ns, self.clock.now_ns(), self._market_ns)

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
        self._time_reasons(batch, reason)
        order_reason, gaps = self._order_and_gaps(batch, reason == 0)
        reason = np.where(reason == 0, order_reason, reason)
        ok = reason == 0
        bad_rows = np.flatnonzero(~ok)
        clean = batch if len(bad_rows) == 0 else batch.take(np.flatnonzero(ok))
        self._accepted += len(clean)
        if len(clean):
            top = int(clean.ts_ns.max())
            self._market_ns = top if self._market_ns is None else max(self._market_ns, top)
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

    def _time_reasons(self, b: TickBatch, reason: np.ndarray) -> None:
        """Mark rows outside the time window ``bad_time`` (only rows that passed so far)."""
        ok = reason == 0
        if not ok.any():
            return
        ts = b.ts_ns
        anchor = self._market_ns
        if self.window.market:  # the robust anchor of the module docstring
            pool = ts[ok] if anchor is None else np.append(ts[ok], np.int64(anchor))
            median = lower_median(pool)
            anchor = median if anchor is None else max(anchor, median)
        lo, hi = self.window.bounds(self.clock.now_ns(), anchor)
        self._bounds = (lo, hi)
        ahead, behind = ok & (ts > hi), ok & (ts < lo)
        if self.window.market and anchor is not None and ahead.any():
            ahead = self._market_chain(ts, ok & ~behind, anchor, hi)
        reason[ahead | behind] = self._REASONS.index(DeadReason.BAD_TIME)
        self._time_refused["ahead"] += int(ahead.sum())
        self._time_refused["behind"] += int(behind.sum())

    def _market_chain(self, ts: np.ndarray, ok: np.ndarray, anchor: int,
                      hi: int) -> np.ndarray:
        """The rows still ahead of the market clock once it moves *within* the batch.

        A batch of a historical source can span more than twice the skew (a day of a symbol
        that trades once a minute is 1,440 rows): judged against one anchor its tail would be
        refused although every row follows the one before. So, as rows are accepted in
        order, the clock moves with them: row ``i`` may be up to the skew past the highest
        time accepted before it (a chain of plausible steps), never past the source's end.
        An outlier far ahead still has no accepted row within the skew before it, so it is
        refused, and it moves nothing. Computed as a fixed point (each pass can only accept
        more rows; at most :data:`MAX_CHAIN_PASSES`, then the rest stay refused, counted
        as ``chain_capped``).

        >>> v = TickValidator(n_symbols=1, source="doc", window=TimeWindow(
        ...     market_max_skew_ns=10))
        >>> first = TickBatch.from_columns([0] * 3, [1, 2, 3], [1.0] * 3, [1.0] * 3)
        >>> v.validate(first).ticks.ts_ns.tolist()
        [1, 2, 3]
        >>> day = TickBatch.from_columns([0] * 5, [5, 14, 23, 95, 32], [1.0] * 5, [1.0] * 5)
        >>> v.validate(day).ticks.ts_ns.tolist(), v.time_stats()["ahead"]
        ([5, 14, 23, 32], 1)
        """
        skew = self.window.skew_ns
        end = self.window.end_ns if self.window.end_ns is not None else INT64_MAX
        accepted = ok & (ts <= hi)
        for _ in range(MAX_CHAIN_PASSES):
            # highest accepted time strictly before each row (the anchor before the first)
            seen = np.where(accepted, ts, np.int64(anchor))
            before = np.maximum.accumulate(np.concatenate(([np.int64(anchor)], seen[:-1])))
            limit = np.minimum(np.minimum(before, np.int64(INT64_MAX - skew)) + np.int64(skew),
                               np.int64(end))
            grown = ok & (ts <= limit)
            if (grown == accepted).all():
                break
            accepted = grown
        else:
            self._time_refused["chain_capped"] += int((ok & ~accepted).sum())
        return ok & ~accepted

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
                ts = int(b.ts_ns[r])
                return f"ts_ns={ts}" if ts <= 0 else self.window.explain(ts, *self._bounds)
            case DeadReason.UNKNOWN_SYMBOL:
                return f"symbol_id={sid} not in a table of {self.n_symbols}"
            case DeadReason.DUPLICATE:
                return f"trade_id={int(b.trade_id[r])} is not above an accepted trade id"
            case _:
                return f"ts_ns={int(b.ts_ns[r])} is behind an accepted tick of the symbol"


def _row_text(b: TickBatch, r: int) -> str:
    return ",".join(f"{k}={v[r].item()!r}" for k, v in b.columns().items())
