"""Tick batches off the wire: JSON rows or an Arrow IPC stream, into one columnar batch.

Both forms carry the columns ``symbol, ts_ns, price, qty`` and optionally ``side`` (1 buy,
-1 sell, 0 unknown) and ``trade_id``. A malformed body is refused whole with the field that
is wrong (the API turns it into a 422); ticks of a symbol outside the table become dead
letters (``unknown_symbol``) and the rest go on. Values (a negative price, a time going
back) are the data plane validator's to judge, so they become dead letters there. Integers
must fit int64 and symbols follow the API's text rule (:mod:`serve_apps.contract`): else the
body is refused naming the field (``ticks.0.ts_ns``, ``ts_ns`` for an Arrow column). A JSON
body may carry its ``batch_id`` (the API's Idempotency-Key).

>>> from tripwire.model import SymbolTable
>>> d = decode_rows(b'{"ticks": [{"symbol": "BTCUSDT", "ts_ns": 1, "price": 10, "qty": 1},'
...                 b' {"symbol": "NOPE", "ts_ns": 2, "price": 1, "qty": 1}]}',
...                 SymbolTable(["BTCUSDT"]))
>>> len(d.batch), [u.symbol for u in d.unknown]
(1, ['NOPE'])
>>> try:
...     decode_rows(b'{"ticks": [{"symbol": "BTCUSDT", "ts_ns": "x"}]}', SymbolTable(["BTCUSDT"]))
... except TickCodecError as exc:
...     print(exc.field)
ticks.0.ts_ns
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from serve_apps.contract import INT64_MAX, INT64_MIN, KEY_PATTERN, Int64, Text, text_error
from tripwire.model import DeadLetter, DeadReason, SymbolTable, TickBatch

ARROW_TYPE = "application/vnd.apache.arrow.stream"
MAX_TICKS = 100_000  # per request; the data plane has the same bound
REQUIRED = ("symbol", "ts_ns", "price", "qty")


class TickCodecError(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TickIn(BaseModel):
    symbol: Text = Field(min_length=1, max_length=64)
    ts_ns: Int64
    price: float
    qty: float
    side: Literal[-1, 0, 1] = 0
    trade_id: Int64 = 0


class TicksBody(BaseModel):
    ticks: list[TickIn] = Field(max_length=MAX_TICKS)
    batch_id: str | None = Field(default=None, pattern=KEY_PATTERN,
                                 description="the batch's id (or the Idempotency-Key header)")


@dataclass
class Decoded:
    batch: TickBatch
    unknown: list[DeadLetter] = field(default_factory=list)
    batch_id: str | None = None

    def digest(self) -> str:
        """SHA-256 of the ticks as decoded (JSON or Arrow alike, ``batch_id`` aside): a
        batch id reused for other ticks is told apart from a retry."""
        h = hashlib.sha256()
        b = self.batch
        for column in (b.symbol_id, b.ts_ns, b.price, b.qty, b.side, b.trade_id):
            h.update(np.ascontiguousarray(column).tobytes())
        for d in self.unknown:
            h.update(d.raw.encode("utf-8", "surrogatepass") + b"\n")
        return h.hexdigest()


def decode_rows(body: bytes, symbols: SymbolTable) -> Decoded:
    try:
        parsed = TicksBody.model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise TickCodecError(f"{where}: {err['msg']}", where) from None
    t = parsed.ticks
    decoded = _columns([x.symbol for x in t], np.array([x.ts_ns for x in t], np.int64),
                    np.array([x.price for x in t], np.float64),
                    np.array([x.qty for x in t], np.float64),
                    np.array([x.side for x in t], np.int8),
                    np.array([x.trade_id for x in t], np.int64), symbols)
    decoded.batch_id = parsed.batch_id
    return decoded


def decode_arrow(body: bytes, symbols: SymbolTable) -> Decoded:
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise TickCodecError(f"body: not an Arrow IPC stream ({exc})", "body") from None
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise TickCodecError(f"{missing[0]}: column missing from the Arrow table", missing[0])
    if table.num_rows > MAX_TICKS:
        raise TickCodecError(f"ticks: at most {MAX_TICKS} per request, got {table.num_rows}",
                             "ticks")

    def col(name: str, dtype: type, default: int = 0) -> np.ndarray:
        if name not in table.column_names:
            return np.full(table.num_rows, default, dtype)
        c = table.column(name)
        if c.null_count:
            raise TickCodecError(f"{name}: {c.null_count} null value(s)", name)
        if np.issubdtype(dtype, np.integer) and pa.types.is_integer(c.type) and len(c):
            import pyarrow.compute as pc

            lo, hi = pc.min_max(c).values()  # a uint64 past int64 would wrap silently
            bounds = np.iinfo(dtype)
            if lo.as_py() < max(bounds.min, INT64_MIN) or hi.as_py() > min(bounds.max,
                                                                            INT64_MAX):
                raise TickCodecError(f"{name}: values outside {np.dtype(dtype)}", name)
        try:
            return c.to_numpy().astype(dtype, casting="same_kind")
        except (TypeError, ValueError, pa.ArrowException) as exc:
            raise TickCodecError(f"{name}: cannot read as {np.dtype(dtype)} ({exc})",
                                 name) from None

    side = col("side", np.int8)
    if not np.isin(side, (-1, 0, 1)).all():
        raise TickCodecError("side: must be 1 (buy), -1 (sell) or 0", "side")
    names = table.column("symbol").to_pylist()
    if any(not isinstance(n, str) for n in names):
        raise TickCodecError("symbol: must be strings", "symbol")
    for n in set(names):
        problem = text_error(n)
        if problem is not None:
            raise TickCodecError(f"symbol: {problem}", "symbol")
    return _columns(names, col("ts_ns", np.int64), col("price", np.float64),
                    col("qty", np.float64), side, col("trade_id", np.int64), symbols)


def _columns(names: list[str], ts: np.ndarray, price: np.ndarray, qty: np.ndarray,
             side: np.ndarray, trade_id: np.ndarray, symbols: SymbolTable) -> Decoded:
    ids = np.fromiter((symbols.id(n) if n in symbols else -1 for n in names), np.int32,
                      len(names))
    known = ids >= 0
    unknown = [DeadLetter.make("http", DeadReason.UNKNOWN_SYMBOL,
                               f"{names[i]},{ts[i]},{price[i]},{qty[i]}", time.time_ns(),
                               names[i], f"symbol {names[i]!r} is not traded here")
               for i in np.flatnonzero(~known)]
    batch = TickBatch(ids[known], ts[known], price[known], qty[known], side[known],
                      trade_id[known])
    return Decoded(batch, unknown)
