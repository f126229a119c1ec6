"""The portfolio facts the risk limits need, read from an execution backend.

:class:`EquityTracker` remembers what a broker cannot tell: the equity at the start of the
UTC day (for today's PnL) and the peak equity (for the drawdown).

>>> t = EquityTracker()
>>> t.observe(100.0, 0), t.observe(90.0, 10), t.observe(120.0, 86_400 * 10**9 + 1)
((0.0, 100.0), (-10.0, 100.0), (0.0, 120.0))
"""

from __future__ import annotations

import math

from tripwire.execution.base import Broker
from tripwire.risk.gates import utc_day
from tripwire.risk.limits import PortfolioState, Position


class EquityTracker:
    def __init__(self) -> None:
        self._day: int | None = None
        self._day_start = 0.0
        self.peak = 0.0

    def observe(self, equity: float, now_ns: int) -> tuple[float, float]:
        """(PnL since 00:00 UTC, peak equity) after seeing ``equity`` at ``now_ns``."""
        day = utc_day(now_ns)
        if day != self._day:
            self._day, self._day_start = day, equity
        self.peak = max(self.peak, equity)
        return equity - self._day_start, self.peak


def portfolio_state(broker: Broker, now_ns: int, tracker: EquityTracker) -> PortfolioState:
    """Equity, positions, gross exposure (marked at the last price, else the entry),
    orders placed today and today's PnL, as the broker sees them now."""
    account = broker.account()
    positions = {}
    gross = 0.0
    for symbol, pos in broker.positions().items():
        if pos.qty == 0:
            continue
        positions[symbol] = Position(pos.qty, pos.avg_price)
        mark = pos.mark_price if math.isfinite(pos.mark_price) else pos.avg_price
        gross += abs(pos.qty * mark) if math.isfinite(mark) else 0.0
    today = utc_day(now_ns)
    orders_today = sum(1 for o in broker.orders() if utc_day(o.placed_ns) == today)
    pnl_today, peak = tracker.observe(account.equity, now_ns)
    return PortfolioState(equity=account.equity, positions=positions, gross_exposure=gross,
                          orders_today=orders_today, pnl_today=pnl_today, peak_equity=peak)
