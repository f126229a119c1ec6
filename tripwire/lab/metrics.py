"""Per-run trading and cost figures from one backtest result (``run_shard``'s dict).

Net PnL = realised + unrealised - fees (the broker's realised PnL excludes fees). A run is
one seed: one simulated market, so Sharpe is over seeds (the mean of the per-run net
returns over their standard deviation, annualised by sqrt(365 / days): a seed is a day of
a market), computed by :func:`sharpe` on the pooled per-seed values.

Figures that need the fills in time order -- max drawdown, hit rate (closed round trips
that made money), turnover (traded notional / initial cash), exposure time (the share of
symbol-time with a position open) and the equity curve -- come from the result's
``fill_log`` (``[{ts_ns, symbol, side (+1/-1), qty, price, fee}]`` in fill order) when the
backtest returns one; without it they are None and the report says "needs the fill log".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def run_metrics(result: Mapping[str, Any], *, days: float) -> dict[str, Any]:
    """PnL, fees, orders, cost, and (with a fill log) the path figures of one run."""
    cash = float(result.get("initial_cash") or 0.0)
    fees = float(result.get("fees") or 0.0)
    net = float(result.get("realised_pnl") or 0.0) + float(
        result.get("unrealised_pnl") or 0.0) - fees
    decisions = result.get("decisions") or []
    incidents = int(result.get("incidents") or 0)
    triaged = sum(1 for r in decisions if r.get("verdict") or r.get("outcome") == "TRIAGE_FAILED")
    llm = result.get("llm") or {}
    calls = int(llm.get("calls") or 0)
    tokens = int(llm.get("input_tokens") or 0) + int(llm.get("output_tokens") or 0)
    usd = float(llm.get("cost_usd") or 0.0)
    out: dict[str, Any] = {
        "pnl": net,
        "return_pct": 100.0 * net / cash if cash else None,
        "fees": fees,
        "orders": int(result.get("orders") or 0),
        "fills": int(result.get("fills") or 0),
        "incidents": incidents,
        "triaged": triaged,
        "decisions": sum(1 for r in decisions if r.get("decision_id")),
        "outcomes": dict(result.get("outcomes") or {}),
        "llm_calls": calls,
        "llm_failed": int(llm.get("failed") or 0),
        "tokens": tokens,
        "usd": usd,
        "usd_per_incident": usd / triaged if triaged else 0.0,
        "calls_per_incident": calls / triaged if triaged else 0.0,
        "tokens_per_incident": tokens / triaged if triaged else 0.0,
        "usd_per_day": usd / days if days else None,
        "latency_ms_per_call": llm.get("latency_ms_mean"),
        "max_drawdown": None, "hit_rate": None, "turnover": None, "exposure_time": None,
        "equity": None,
    }
    log = result.get("fill_log")
    if log is not None:
        out.update(path_metrics(log, cash=cash, start_ns=int(result["start_ns"]),
                                end_ns=int(result["end_ns"]),
                                n_symbols=len(result.get("symbols") or []) or 1,
                                final_pnl=net))
    return out


def path_metrics(fills: Sequence[Mapping[str, Any]], *, cash: float, start_ns: int,
                 end_ns: int, n_symbols: int, final_pnl: float) -> dict[str, Any]:
    """Drawdown, hit rate, turnover, exposure and the (realised) equity curve of a fill log.

    The curve steps at each fill by the realised PnL minus the fee (marks between fills are
    not known from fills alone); its last point is the run's net PnL, unrealised included.
    """
    pos: dict[str, float] = defaultdict(float)
    avg: dict[str, float] = defaultdict(float)
    opened: dict[str, int] = {}
    exposure_ns = 0
    realised, notional, wins, trips = 0.0, 0.0, 0, 0
    curve = [(start_ns, 0.0)]
    for f in fills:
        s, side, qty, price = f["symbol"], int(f["side"]), float(f["qty"]), float(f["price"])
        ts, fee = int(f["ts_ns"]), float(f["fee"])
        notional += qty * price
        q0 = pos[s]
        signed = side * qty
        if q0 and (q0 > 0) != (signed > 0):  # reduces (or flips) the position
            closed = min(abs(q0), qty)
            pnl = closed * (price - avg[s]) * (1 if q0 > 0 else -1)
            realised += pnl
            trips += 1
            wins += pnl > 0
        q1 = q0 + signed
        if q0 == 0 or ((q0 > 0) != (q1 > 0) and q1):
            avg[s] = price
        elif (q0 > 0) == (signed > 0):
            avg[s] = (avg[s] * abs(q0) + price * qty) / abs(q1)
        if q0 == 0 and q1:
            opened[s] = ts
        elif q1 == 0 or abs(q1) < 1e-12:
            exposure_ns += ts - opened.pop(s, ts)
            q1 = 0.0
        pos[s] = q1
        realised -= fee
        curve.append((ts, realised))
    for t in opened.values():
        exposure_ns += end_ns - t
    curve.append((end_ns, final_pnl))
    eq = np.array([v for _, v in curve]) + cash
    peak = np.maximum.accumulate(eq)
    dd = float(((peak - eq) / peak).max()) if len(eq) else 0.0
    span = max(1, end_ns - start_ns) * n_symbols
    return {
        "max_drawdown": dd,
        "hit_rate": wins / trips if trips else None,
        "turnover": notional / cash if cash else None,
        "exposure_time": exposure_ns / span,
        "equity": [[int(t), float(v)] for t, v in curve],
    }


def sharpe(pnls: Sequence[float], *, cash: float, days: float) -> float | None:
    """Annualised Sharpe over seeds (each a ``days``-long market), None with < 2 or sd 0."""
    x = np.asarray([p for p in pnls if p is not None], dtype=float) / cash
    if len(x) < 2 or not x.std(ddof=1):
        return None
    return float(x.mean() / x.std(ddof=1) * math.sqrt(365.0 / days))
