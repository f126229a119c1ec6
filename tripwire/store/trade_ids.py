"""Deterministic trade ids for ticks that came without an exchange trade id.

A tick's identity in the tick store is ``(symbol, trade_id)``: exchange ids are >= 0 and
unique per symbol (the validator refuses a repeat), so a second copy of a trade is
recognised and stored once. A tick without an exchange id (-1, or 0 from an HTTP body that
left the field out) gets an id derived from what it is, so the same tick gets the same id
in every run, on every replica, whatever the batch boundaries:

    id = -2 - (mix(source, symbol, ts, price bits, qty bits, side, ordinal) >> 2)

``ordinal`` counts the identical ticks (same symbol, time, price, qty and side) before it at
that time, so two genuine identical trades stay two while a re-sent copy collides with the
first. The count carries across batches (per symbol, only the last timestamp's rows are
remembered: ticks of a symbol never go back in time past the validator). The ids are
negative, so they never meet an exchange id, and the validator and the detectors take a
negative id as "no exchange id" (checked on time only, never for gaps). ``mix`` is a
SplitMix64 chain over 64-bit words: vectorised, and the same on every platform.

>>> from tripwire.model import SymbolTable, TickBatch
>>> syms = SymbolTable(["BTCUSDT"])
>>> b = TickBatch.from_columns([0, 0, 0], [5, 5, 6], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0],
...                            trade_id=[-1, -1, 7])
>>> ids = TradeIds("api").assign(b, syms).trade_id
>>> bool(ids[0] < -1 and ids[1] < -1 and ids[0] != ids[1]), int(ids[2])
(True, 7)
>>> bool((TradeIds("api").assign(b, syms).trade_id == ids).all())  # the same in a new run
True
"""

from __future__ import annotations

import hashlib

import numpy as np

from tripwire.model import SymbolTable, TickBatch

NO_ID = -1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic is intended)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _seed(source: str, symbol: str) -> np.uint64:
    digest = hashlib.blake2b(f"{source}\x00{symbol}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def synthetic_ids(source: str, names: np.ndarray, ts: np.ndarray, price: np.ndarray,
                  qty: np.ndarray, side: np.ndarray, ordinal: np.ndarray) -> np.ndarray:
    """The ids of the module docstring for these rows (int64, each in [-2**62 - 1, -2])."""
    uniq, inverse = np.unique(names.astype(str), return_inverse=True)
    h = np.array([_seed(source, str(n)) for n in uniq], dtype=np.uint64)[inverse.ravel()]
    words = (ts.astype(np.int64).view(np.uint64),
             np.ascontiguousarray(price, dtype=np.float64).view(np.uint64),
             np.ascontiguousarray(qty, dtype=np.float64).view(np.uint64),
             side.astype(np.int64).view(np.uint64),
             ordinal.astype(np.uint64))
    with np.errstate(over="ignore"):
        for w in words:
            h = _mix(h ^ _mix(w + _GOLDEN))
    return np.int64(-2) - (h >> np.uint64(2)).astype(np.int64)


class TradeIds:
    """Gives the rows of one source that have no exchange id their deterministic id.

    ``missing`` says which ids count as absent: ``-1`` always; the HTTP ingest also passes
    ``0`` (its body's default). The per-symbol ordinal state is bounded by the number of
    identical-key rows at one timestamp.
    """

    def __init__(self, source: str, *, missing: tuple[int, ...] = (NO_ID,)) -> None:
        self.source = source
        self.missing = missing
        # symbol name -> (last timestamp, {(price bits, qty bits, side): rows seen at it})
        self._last: dict[str, tuple[int, dict[tuple[int, int, int], int]]] = {}

    def assign(self, batch: TickBatch, symbols: SymbolTable) -> TickBatch:
        # A row whose symbol is not in the table keeps its id: the validator refuses it.
        known = (batch.symbol_id >= 0) & (batch.symbol_id < len(symbols))
        rows = np.flatnonzero(np.isin(batch.trade_id, self.missing) & known)
        if not len(rows):
            return batch
        sid = batch.symbol_id[rows]
        names = np.array(symbols.names, dtype=object)[sid]
        ts = batch.ts_ns[rows]
        pb = np.ascontiguousarray(batch.price[rows], dtype=np.float64).view(np.int64)
        qb = np.ascontiguousarray(batch.qty[rows], dtype=np.float64).view(np.int64)
        sd = batch.side[rows].astype(np.int64)
        ordinal = self._ordinals(sid, names, ts, pb, qb, sd)
        tid = batch.trade_id.copy()
        tid[rows] = synthetic_ids(self.source, names, ts, batch.price[rows], batch.qty[rows],
                                  sd, ordinal)
        return TickBatch(batch.symbol_id, batch.ts_ns, batch.price, batch.qty, batch.side,
                         tid, batch.recv_ns)

    def _ordinals(self, sid: np.ndarray, names: np.ndarray, ts: np.ndarray, pb: np.ndarray,
                  qb: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """Per row: identical rows (symbol, ts, price, qty, side) before it, this batch and
        the previous ones at the same timestamp."""
        n = len(sid)
        order = np.lexsort((np.arange(n), sd, qb, pb, ts, sid))
        keys = (sid, ts, pb, qb, sd)
        new_group = np.ones(n, dtype=bool)
        if n > 1:
            same = np.ones(n - 1, dtype=bool)
            for k in keys:
                ks = k[order]
                same &= ks[1:] == ks[:-1]
            new_group[1:] = ~same
        starts = np.flatnonzero(new_group)
        pos = np.arange(n)
        group_start = starts[np.cumsum(new_group) - 1]
        ordinal = np.empty(n, dtype=np.int64)
        ordinal[order] = pos - group_start
        # Carry: rows at the symbol's previous last timestamp continue its counts; then each
        # symbol remembers the counts of its newest timestamp.
        sorted_sid = sid[order]
        bounds = np.flatnonzero(np.r_[True, sorted_sid[1:] != sorted_sid[:-1], True])
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            mine = order[lo:hi]
            name = str(names[mine[0]])
            last_ts, counts = self._last.get(name, (None, {}))
            top = int(ts[mine].max())
            at_prev = mine[ts[mine] == last_ts] if last_ts is not None else mine[:0]
            for r in at_prev.tolist():
                ordinal[r] += counts.get((int(pb[r]), int(qb[r]), int(sd[r])), 0)
            fresh: dict[tuple[int, int, int], int] = dict(counts) if top == last_ts else {}
            for r in mine[ts[mine] == top].tolist():
                key = (int(pb[r]), int(qb[r]), int(sd[r]))
                fresh[key] = max(fresh.get(key, 0), int(ordinal[r]) + 1)
            if last_ts is None or top >= last_ts:
                self._last[name] = (top, fresh)
        return ordinal
