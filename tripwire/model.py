"""The domain's data: columnar tick batches, trips and anomalies, ids and time.

Conventions (DESIGN.md section 3):
  * ticks move as columnar batches of NumPy arrays, never one Python object per tick;
  * every timestamp is int64 nanoseconds UTC, read from an injected :class:`Clock`;
  * incident and decision ids are UUIDv7 (time-ordered); a client order id is a hash of
    the decision id and the leg, so a retry can never double an order.

>>> batch = TickBatch.from_columns([0, 1], [1_000, 2_000], [100.0, 50.0], [1.0, 2.0])
>>> len(batch), batch.price.dtype.name
(2, 'float64')
>>> client_order_id("0190d6c5-0000-7000-8000-000000000000", 0)
'tw-ad9307bcf0d9b3c657a27fb8'
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
from dataclasses import dataclass, field, fields
from enum import IntEnum, StrEnum
from typing import Protocol

import numpy as np

NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000

# ----------------------------------------------------------------------------- time


class Clock(Protocol):
    """Source of the current time, injected so backtests and tests run on simulated time."""

    def now_ns(self) -> int: ...


class SystemClock:
    """Wall-clock time, int64 ns UTC."""

    def now_ns(self) -> int:
        return time.time_ns()


class SimClock:
    """Simulated time that only moves when told to.

    >>> clock = SimClock(start_ns=5)
    >>> clock.advance(10); clock.now_ns()
    15
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)

    def now_ns(self) -> int:
        return self._now

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError(f"SimClock cannot go back in time (advance by {ns} ns)")
        self._now += int(ns)

    def set(self, ns: int) -> None:
        if ns < self._now:
            raise ValueError(f"SimClock cannot go back in time ({ns} < {self._now})")
        self._now = int(ns)


# ----------------------------------------------------------------------------- ids


def new_id(clock: Clock | None = None, rng: random.Random | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix ms timestamp, version, 74 random bits.

    With a simulated clock and a seeded ``rng`` the ids are reproducible.

    >>> a = new_id(SimClock(1_700_000_000_000_000_000), random.Random(1))
    >>> a == new_id(SimClock(1_700_000_000_000_000_000), random.Random(1)), a[14]
    (True, '7')
    """
    now_ns = (clock or SystemClock()).now_ns()
    ms = (now_ns // NS_PER_MS) & ((1 << 48) - 1)
    rand = rng.getrandbits(74) if rng is not None else int.from_bytes(os.urandom(10), "big") >> 6
    rand_a = rand >> 62  # 12 bits
    rand_b = rand & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def id_time_ns(id_: str) -> int:
    """The millisecond timestamp embedded in a UUIDv7, as ns."""
    u = uuid.UUID(id_)
    if u.version != 7:
        raise ValueError(f"{id_!r} is not a UUIDv7")
    return (u.int >> 80) * NS_PER_MS


def client_order_id(decision_id: str, leg: int) -> str:
    """Deterministic exchange client order id for one leg of a decision (<= 36 chars)."""
    if leg < 0:
        raise ValueError(f"leg must be >= 0, got {leg}")
    digest = hashlib.sha256(f"{decision_id}:{leg}".encode()).hexdigest()
    return f"tw-{digest[:24]}"


# ----------------------------------------------------------------------------- symbols


class SymbolTable:
    """Dense int32 ids for symbol names (the detectors index by id).

    >>> t = SymbolTable(["BTCUSDT", "ETHUSDT"])
    >>> t.id("ETHUSDT"), t.name(0), len(t)
    (1, 'BTCUSDT', 2)
    """

    def __init__(self, names: list[str] | tuple[str, ...] = ()) -> None:
        self._names: list[str] = []
        self._ids: dict[str, int] = {}
        for n in names:
            self.add(n)

    def add(self, name: str) -> int:
        if not name or not isinstance(name, str):
            raise ValueError(f"symbol name must be a non-empty string, got {name!r}")
        if name in self._ids:
            return self._ids[name]
        self._ids[name] = len(self._names)
        self._names.append(name)
        return self._ids[name]

    def id(self, name: str) -> int:
        try:
            return self._ids[name]
        except KeyError:
            raise KeyError(f"unknown symbol {name!r}") from None

    def name(self, symbol_id: int) -> str:
        if not 0 <= symbol_id < len(self._names):
            raise KeyError(f"unknown symbol id {symbol_id}")
        return self._names[symbol_id]

    def __contains__(self, name: object) -> bool:
        return name in self._ids

    def __len__(self) -> int:
        return len(self._names)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._names)


# ----------------------------------------------------------------------------- ticks


class Side(IntEnum):
    """The one side type: a tick's taker side, an order's side, a position's direction.

    The value is the sign (BUY +1, SELL -1; UNKNOWN 0 only for ticks whose taker side the
    venue did not say); the name is the text in proposals, LLM answers and messages.

    >>> Side.of("SELL"), Side.of("buy").sign, Side.BUY.name
    (<Side.SELL: -1>, 1, 'BUY')
    >>> Side.of("HOLD")
    Traceback (most recent call last):
    ...
    ValueError: side must be BUY or SELL, got 'HOLD'
    """

    UNKNOWN = 0
    BUY = 1  # taker bought / an order that adds to the position
    SELL = -1  # taker sold / an order that subtracts from it

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL (0 for UNKNOWN)."""
        return int(self)

    @property
    def is_order_side(self) -> bool:
        """BUY or SELL: what an order, a proposal or a sizing may carry."""
        return self is not Side.UNKNOWN

    @classmethod
    def of(cls, value: object) -> Side:
        """An order side from a Side or its name (``"BUY"``/``"SELL"``, any case); anything
        else, UNKNOWN included, is a ValueError naming the value."""
        if isinstance(value, Side) and value.is_order_side:
            return value
        if isinstance(value, str) and value.upper() in ("BUY", "SELL"):
            return cls[value.upper()]
        raise ValueError(f"side must be BUY or SELL, got {value!r}")


TICK_COLUMNS: dict[str, np.dtype] = {
    "symbol_id": np.dtype(np.int32),
    "ts_ns": np.dtype(np.int64),
    "price": np.dtype(np.float64),
    "qty": np.dtype(np.float64),
    "side": np.dtype(np.int8),
    "trade_id": np.dtype(np.int64),
    "recv_ns": np.dtype(np.int64),
}


@dataclass(frozen=True, slots=True)
class TickBatch:
    """A columnar batch of trades. Arrays share one length; dtypes are fixed.

    ``ts_ns`` is the exchange's trade time; ``recv_ns`` is when the tick reached us (0 when
    unknown, e.g. synthetic data not paced in real time). The constructor checks shapes and
    dtypes (cheap, O(1)); it does not judge values: that is the feeds' validation's job.
    """

    symbol_id: np.ndarray
    ts_ns: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    side: np.ndarray = field(default=None)  # type: ignore[assignment]
    trade_id: np.ndarray = field(default=None)  # type: ignore[assignment]
    recv_ns: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.symbol_id) if self.symbol_id is not None else -1
        if self.side is None:
            object.__setattr__(self, "side", np.zeros(n, dtype=np.int8))
        if self.trade_id is None:
            object.__setattr__(self, "trade_id", np.full(n, -1, dtype=np.int64))
        if self.recv_ns is None:  # arrival time unknown: 0
            object.__setattr__(self, "recv_ns", np.zeros(n, dtype=np.int64))
        for name, dtype in TICK_COLUMNS.items():
            col = getattr(self, name)
            if not isinstance(col, np.ndarray):
                raise TypeError(f"TickBatch.{name} must be a numpy array, got {type(col).__name__}")
            if col.dtype != dtype:
                raise TypeError(f"TickBatch.{name} must have dtype {dtype}, got {col.dtype}")
            if col.ndim != 1:
                raise ValueError(f"TickBatch.{name} must be 1-D, got shape {col.shape}")
            if len(col) != n:
                raise ValueError(
                    f"TickBatch columns differ in length: symbol_id has {n}, {name} has {len(col)}"
                )

    @classmethod
    def from_columns(
        cls, symbol_id, ts_ns, price, qty, side=None, trade_id=None, recv_ns=None
    ) -> TickBatch:
        """Build a batch from sequences, converting to the canonical dtypes."""
        conv = {
            "symbol_id": np.asarray(symbol_id, dtype=np.int32),
            "ts_ns": np.asarray(ts_ns, dtype=np.int64),
            "price": np.asarray(price, dtype=np.float64),
            "qty": np.asarray(qty, dtype=np.float64),
        }
        if side is not None:
            conv["side"] = np.asarray(side, dtype=np.int8)
        if trade_id is not None:
            conv["trade_id"] = np.asarray(trade_id, dtype=np.int64)
        if recv_ns is not None:
            conv["recv_ns"] = np.asarray(recv_ns, dtype=np.int64)
        return cls(**conv)

    @classmethod
    def empty(cls) -> TickBatch:
        return cls(**{k: np.empty(0, dtype=d) for k, d in TICK_COLUMNS.items()})

    @classmethod
    def concat(cls, batches: list[TickBatch]) -> TickBatch:
        if not batches:
            return cls.empty()
        return cls(**{k: np.concatenate([getattr(b, k) for b in batches]) for k in TICK_COLUMNS})

    def __len__(self) -> int:
        return len(self.symbol_id)

    def take(self, rows: np.ndarray | slice) -> TickBatch:
        return TickBatch(**{k: getattr(self, k)[rows] for k in TICK_COLUMNS})

    def columns(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in TICK_COLUMNS}


def last_rows(symbol_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each symbol's last row in ``symbol_id``: (the symbols, ascending; their last rows).

    What ``np.unique`` on the reversed column gives, without its sort: one pass over the
    rows (``np.maximum.at``) and one over the symbol ids -- the venue and the prices ask it
    of every tick batch, and the sort was most of their cost.

    >>> last_rows(np.array([2, 0, 2, 1, 0], dtype=np.int32))
    (array([0, 1, 2], dtype=int32), array([4, 3, 2]))
    """
    if not len(symbol_id):
        return symbol_id[:0], np.zeros(0, dtype=np.int64)
    if int(symbol_id.min()) < 0:  # not a table's ids: the sort, which takes any value
        uniq, rev = np.unique(symbol_id[::-1], return_index=True)
        return uniq, len(symbol_id) - 1 - rev
    last = np.full(int(symbol_id.max()) + 1, -1, dtype=np.int64)
    np.maximum.at(last, symbol_id, np.arange(len(symbol_id), dtype=np.int64))
    uniq = np.flatnonzero(last >= 0)
    return uniq.astype(symbol_id.dtype), last[uniq]


# ----------------------------------------------------------------------------- trips


class Metric(IntEnum):
    """What a detector watches (values match the native module)."""

    RETURN = 0  # z of the log-return
    VOLUME = 1  # z of the trade quantity (or of the quantity per time bucket)
    PRICE = 2  # z of the price level


class RejectReason(IntEnum):
    """Why the detectors refused a tick (values match the native module)."""

    BAD_PRICE = 1  # NaN, inf or <= 0
    BAD_QTY = 2  # NaN, inf or < 0
    OUT_OF_ORDER = 3  # older than the symbol's last accepted tick


@dataclass(frozen=True, slots=True)
class Trips:
    """Trips of one batch, columnar: one row per (tick, metric) that crossed its threshold."""

    row: np.ndarray  # int64 index into the batch
    ts_ns: np.ndarray  # int64
    symbol_id: np.ndarray  # int32
    metric: np.ndarray  # int8, Metric
    z: np.ndarray  # float64
    mean: np.ndarray  # float64, window mean before the tick
    std: np.ndarray  # float64, window std before the tick
    value: np.ndarray  # float64, the value scored (log-return, quantity or bucket sum, price)

    def __len__(self) -> int:
        return len(self.row)

    @classmethod
    def concat(cls, parts: list[Trips]) -> Trips:
        """One Trips from several batches' (row stays the index within its own batch)."""
        names = [f.name for f in fields(cls)]
        if not parts:
            empty = {"row": np.int64, "ts_ns": np.int64, "symbol_id": np.int32, "metric": np.int8}
            return cls(**{n: np.empty(0, dtype=empty.get(n, np.float64)) for n in names})
        return cls(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})

    def anomalies(self, symbols: SymbolTable | None = None) -> list[Anomaly]:
        """One Anomaly per trip row (for the slow path only: trips are rare)."""
        out = []
        for i in range(len(self)):
            sid = int(self.symbol_id[i])
            out.append(
                Anomaly(
                    symbol_id=sid,
                    symbol=symbols.name(sid) if symbols is not None else None,
                    ts_ns=int(self.ts_ns[i]),
                    metric=Metric(int(self.metric[i])),
                    z=float(self.z[i]),
                    window_mean=float(self.mean[i]),
                    window_std=float(self.std[i]),
                    value=float(self.value[i]),
                    row=int(self.row[i]),
                )
            )
        return out


@dataclass(frozen=True, slots=True)
class Rejections:
    """Rows a detector refused, with the reason (for dead-lettering upstream)."""

    row: np.ndarray  # int64
    reason: np.ndarray  # int8, RejectReason

    def __len__(self) -> int:
        return len(self.row)


@dataclass(frozen=True, slots=True)
class RecentTicks:
    """A symbol's last ticks, oldest first: the frozen snapshot escalated with a trip."""

    ts_ns: np.ndarray
    price: np.ndarray
    qty: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ns)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A detector trip, as an event, with what was known when it fired.

    ``snapshot`` holds the symbol's last ticks (the tripping one last) and ``window`` the
    count/mean/std of every metric's window at that moment, so the event explains itself
    without going back to the stream. ``recv_ns`` is when the tripping tick arrived and
    ``detected_ns`` when the trip was emitted (their difference is the detection latency).
    """

    symbol_id: int
    ts_ns: int
    metric: Metric
    z: float
    window_mean: float
    window_std: float
    value: float
    row: int = -1
    symbol: str | None = None
    id: str = ""
    price: float = float("nan")
    qty: float = float("nan")
    trade_id: int = -1
    recv_ns: int = 0
    detected_ns: int = 0
    source: str = ""
    snapshot: RecentTicks | None = None
    window: dict | None = None


# ----------------------------------------------------------------------------- feeds


class DeadReason(StrEnum):
    """Why a feed refused a tick or a message (a dead letter's ``reason``)."""

    MALFORMED = "malformed"  # unparseable JSON/CSV, missing or mistyped fields
    BAD_PRICE = "bad_price"  # NaN, inf or <= 0
    BAD_QTY = "bad_qty"  # NaN, inf or < 0
    BAD_TIME = "bad_time"  # missing, negative or absurd timestamp
    UNKNOWN_SYMBOL = "unknown_symbol"  # not in the feed's symbol table
    OUT_OF_ORDER = "out_of_order"  # older than the symbol's last tick, or trade id went back
    DUPLICATE = "duplicate"  # trade id already seen (e.g. replayed after a reconnect)
    SHED = "shed"  # accepted, then dropped because a bound was hit (backpressure)
    MARKET_RESOLVED = "market_resolved"  # a trade in a prediction market already resolved


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused input, kept with its reason and raw payload so nothing vanishes silently."""

    source: str  # which feed, e.g. "binance-ws", "binance-csv:BTCUSDT-trades-2024-01-01.zip"
    reason: DeadReason
    raw: str  # the payload as received (truncated to MAX_RAW_CHARS)
    ts_ns: int  # when it was refused (the injected clock)
    symbol: str | None = None
    detail: str = ""  # the specifics, e.g. "price=-1.0"

    MAX_RAW_CHARS = 4096

    @classmethod
    def make(cls, source, reason, raw, ts_ns, symbol=None, detail="") -> DeadLetter:
        raw = raw if isinstance(raw, str) else repr(raw)
        return cls(source, DeadReason(reason), raw[: cls.MAX_RAW_CHARS], int(ts_ns), symbol, detail)


@dataclass(frozen=True, slots=True)
class NewsItem:
    """A timestamped headline. ``symbols`` it mentions; empty for market-wide news.

    ``ts_ns`` is when the system could know the headline -- the time every news window
    uses, never earlier than its arrival (no look-ahead); ``published_ns`` is the source's
    own time when it gave one (0: unknown or the same as ``ts_ns``).
    """

    id: str
    ts_ns: int
    headline: str
    symbols: tuple[str, ...] = ()
    source: str = ""
    body: str = ""
    published_ns: int = 0


class EventKind(StrEnum):
    """Labelled market events (the scenario generator's ground truth)."""

    FLASH_CRASH = "flash_crash"
    PUMP_AND_DUMP = "pump_and_dump"
    LIQUIDATION_CASCADE = "liquidation_cascade"
    NEWS_SHOCK = "news_shock"
    FAT_FINGER = "fat_finger"
    VOLUME_BURST = "volume_burst"
    SLOW_TREND = "slow_trend"
    OUTAGE = "outage"


@dataclass(frozen=True, slots=True)
class EventLabel:
    """Ground truth for one injected event: what, where, when (ns, inclusive)."""

    id: str
    kind: EventKind
    symbol: str
    start_ns: int
    end_ns: int
    magnitude: float = 0.0  # e.g. the fractional price move; 0 when not a price event
    news_id: str | None = None  # the headline tied to it, if any
