"""BacktestBroker: the paper engine replaying stored ticks on simulated time.

It *is* a :class:`PaperBroker` whose clock is a :class:`SimClock` that follows the data: after
each chunk the clock stands at that chunk's last tick time, so an order placed between chunks
is stamped with the time the strategy saw and fills against the following ticks exactly as
live paper trading would. Backtest and paper differ only at the data boundary (a stored stream
instead of a live one). Nothing reads the wall clock or a random source, so the same chunks and
the same strategy give bit-identical fills (compare :func:`fills_digest`).

>>> from tripwire.model import SymbolTable, TickBatch
>>> ticks = TickBatch.from_columns([0, 0, 0], [10, 20, 30], [100.0, 101.0, 102.0], [1, 1, 1])
>>> def buy_once(broker, chunk):
...     broker.place(OrderRequest("tw-bt", "BTCUSDT", Side.BUY, 1.0))
>>> result = BacktestBroker(SymbolTable(["BTCUSDT"])).run(chunks_of(ticks, 1), buy_once)
>>> [(f.ts_ns, f.price) for f in result.fills], result.account.equity
([(20, 101.0)], 100001.0)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from tripwire.execution.base import Account, EquityPoint, Fill, Order, OrderRequest, Side
from tripwire.execution.paper import PaperBroker, PaperConfig
from tripwire.model import SimClock, SymbolTable, TickBatch

# OrderRequest, PaperConfig and Side are re-exported so a strategy needs only this import.
__all__ = [
    "BacktestBroker",
    "BacktestResult",
    "OrderRequest",
    "PaperConfig",
    "Side",
    "Strategy",
    "chunks_of",
    "fills_digest",
]

# Called after each chunk has been matched; it may place, cancel or replace orders.
Strategy = Callable[["BacktestBroker", TickBatch], None]


@dataclass(frozen=True, slots=True)
class BacktestResult:
    fills: tuple[Fill, ...]
    orders: tuple[Order, ...]
    equity_curve: tuple[EquityPoint, ...]
    account: Account
    digest: str  # fills_digest(fills): equal digests mean bit-identical fills


class BacktestBroker(PaperBroker):
    """A PaperBroker on a SimClock advanced by the replayed ticks themselves."""

    def __init__(
        self, symbols: SymbolTable, config: PaperConfig | None = None, *, start_ns: int = 0
    ) -> None:
        self.clock = SimClock(start_ns)
        super().__init__(symbols, self.clock, config)

    def on_ticks(self, batch: TickBatch) -> list[Fill]:
        fills = super().on_ticks(batch)
        if len(batch):
            self.clock.set(max(self.clock.now_ns(), int(batch.ts_ns[-1])))
        return fills

    def run(self, chunks: Iterable[TickBatch], strategy: Strategy | None = None) -> BacktestResult:
        """Feed every chunk in order, calling ``strategy`` after each; return the outcome."""
        for chunk in chunks:
            self.on_ticks(chunk)
            if strategy is not None:
                strategy(self, chunk)
        return self.result()

    def result(self) -> BacktestResult:
        fills = tuple(self.fills())
        return BacktestResult(
            fills=fills,
            orders=tuple(self.orders()),
            equity_curve=tuple(self.equity_curve()),
            account=self.account(),
            digest=fills_digest(fills),
        )


def chunks_of(batch: TickBatch, rows: int) -> Iterator[TickBatch]:
    """Split a stored batch into consecutive chunks of at most ``rows`` ticks.

    >>> b = TickBatch.from_columns([0] * 5, range(5), [1.0] * 5, [1.0] * 5)
    >>> [len(c) for c in chunks_of(b, 2)]
    [2, 2, 1]
    """
    if rows <= 0:
        raise ValueError(f"rows must be > 0, got {rows}")
    for start in range(0, len(batch), rows):
        yield batch.take(slice(start, start + rows))


def fills_digest(fills: Iterable[Fill]) -> str:
    """SHA-256 over every fill field, floats as exact hex, so any bit of difference shows."""
    h = hashlib.sha256()
    for f in fills:
        line = "|".join(
            [
                f.fill_id,
                f.order_id,
                f.symbol,
                str(int(f.side)),
                float(f.qty).hex(),
                float(f.price).hex(),
                float(f.fee).hex(),
                f.liquidity.value,
                f.kind.value,
                str(f.ts_ns),
            ]
        )
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()
