"""The invariants, as pure functions: each takes plain values and returns a Breach or None.

Boundaries are inclusive on the safe side: a value exactly at its cap is fine, anything over
it breaches. A value that cannot be compared (NaN, infinite) breaches: fail closed.

>>> check_drawdown(AccountSnapshot(90.0, 100.0, 0.0, 0, ()), 0.10) is None
True
>>> check_drawdown(AccountSnapshot(89.9, 100.0, 0.0, 0, ()), 0.10).code
'drawdown_cap'
>>> check_exposure(AccountSnapshot(1.0, 1.0, 5_000.01, 0, ()), 5_000.0).detail
'gross exposure 5000.01 > cap 5000.00'
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tripwire.model import NS_PER_SECOND
from tripwire.watchdog.reasons import (
    DRAWDOWN_CAP,
    EXPOSURE_CAP,
    HEARTBEAT_STALE,
    MARK_STALE,
    STOP_MISSING,
    Breach,
)

MAX_LISTED = 5  # names listed in one breach detail; the rest are counted


@dataclass(frozen=True, slots=True)
class PositionView:
    """An open position as the watchdog sees it (qty signed, long > 0)."""

    symbol: str
    qty: float
    price: float
    stop_attached: bool
    mark_ns: int | None = None  # time of the tick that marked it; None: not tracked
    refused_ticks: int = 0  # its ticks the venue refused (late) since that mark


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """What the execution side looks like now, in quote currency."""

    equity: float
    peak_equity: float
    gross_exposure: float
    open_orders: int
    positions: tuple[PositionView, ...]
    clock_ns: int | None = None  # the execution side's clock (market time on a replay)

    @property
    def drawdown(self) -> float:
        """(peak - equity) / peak; NaN when it cannot be computed."""
        if not (math.isfinite(self.equity) and math.isfinite(self.peak_equity)):
            return math.nan
        if self.peak_equity <= 0:
            return math.nan
        return max(0.0, (self.peak_equity - self.equity) / self.peak_equity)


def _listed(names: Sequence[str]) -> str:
    more = len(names) - MAX_LISTED
    return ", ".join(names[:MAX_LISTED]) + (f" (+{more} more)" if more > 0 else "")


def check_heartbeats(beats: Mapping[str, tuple[int, str]], patterns: Sequence[str],
                     max_age_ns: int, now_ns: int) -> Breach | None:
    """Every pattern matches at least one component, and each match is at most
    ``max_age_ns`` old. A pattern nothing matches is stale too: a missing feed is not fresh."""
    problems: list[str] = []
    for pattern in patterns:
        matched = sorted(c for c in beats if fnmatch.fnmatchcase(c, pattern))
        if not matched:
            problems.append(f"no heartbeat from {pattern}")
            continue
        for component in matched:
            age = now_ns - beats[component][0]
            if age > max_age_ns:
                problems.append(f"{component} is {age / NS_PER_SECOND:.1f} s old")
    if not problems:
        return None
    cap = max_age_ns / NS_PER_SECOND
    return Breach(HEARTBEAT_STALE, f"{_listed(problems)} (max age {cap:g} s)")


def check_drawdown(snap: AccountSnapshot, max_drawdown: float) -> Breach | None:
    dd = snap.drawdown
    if math.isfinite(dd) and dd <= max_drawdown:
        return None
    if not math.isfinite(dd):
        return Breach(DRAWDOWN_CAP, f"drawdown unknown (equity {snap.equity!r}, "
                                    f"peak {snap.peak_equity!r})")
    return Breach(DRAWDOWN_CAP, f"drawdown {dd:.2%} > cap {max_drawdown:.2%} "
                                f"(equity {snap.equity:.2f}, peak {snap.peak_equity:.2f})")


def check_exposure(snap: AccountSnapshot, max_gross: float) -> Breach | None:
    gross = snap.gross_exposure
    if math.isfinite(gross) and gross <= max_gross:
        return None
    return Breach(EXPOSURE_CAP, f"gross exposure {gross:.2f} > cap {max_gross:.2f}")


def check_stops(snap: AccountSnapshot) -> Breach | None:
    naked = [p.symbol for p in snap.positions if p.qty != 0 and not p.stop_attached]
    if not naked:
        return None
    return Breach(STOP_MISSING, f"no live stop guards the position in {_listed(naked)}")


def check_marks(snap: AccountSnapshot, max_age_ns: int) -> Breach | None:
    """Every open position's mark is at most ``max_age_ns`` old on the execution side's own
    clock (market time on a replay), not from that clock's future, and no tick of it was
    refused since: otherwise its stop is not being checked against the market.

    Positions whose backend tracks no mark time (``mark_ns`` None) are not judged; a
    tracked mark without a clock to judge it by is (fail closed).
    """
    problems: list[str] = []
    for p in snap.positions:
        if p.qty == 0:
            continue
        if p.refused_ticks > 0:
            problems.append(f"{p.symbol}: {p.refused_ticks} tick(s) refused by the venue")
            continue
        if p.mark_ns is None:
            continue
        if snap.clock_ns is None:
            problems.append(f"{p.symbol}: mark age unknown (no venue clock)")
            continue
        age = snap.clock_ns - p.mark_ns
        if age > max_age_ns:
            problems.append(f"{p.symbol}: mark {age / NS_PER_SECOND:.1f} s old")
        elif age < -max_age_ns:
            problems.append(f"{p.symbol}: mark {-age / NS_PER_SECOND:.1f} s in the future")
    if not problems:
        return None
    cap = max_age_ns / NS_PER_SECOND
    return Breach(MARK_STALE, f"{_listed(problems)} (max age {cap:g} s)")
