"""The nightly review: every veto and HOLD of a day scored against what the market did next.

``tripwire review --day 2026-01-05 [--horizon-min 30] [--out review.md]`` reads the day's
incidents, verdicts, decisions and signatures from PostgreSQL and the ticks after each one
from the tick store, and writes a markdown report for the operator:

* **counterfactuals**: each decision that did not trade (HOLD, vetoed, rejected) is scored
  as if it had: a BUY/SELL proposal at the quantity the risk gate sized it to (or, before
  sizing, ``[risk] max_order_notional`` times the strategist's size), a HOLD as a trade in
  the trip's direction (momentum) at ``max_order_notional``; entry at the trip's price,
  exit at the last price at or before ``ts + horizon``. Positive counterfactual PnL = the
  filter cost money that time; negative = it saved money. Fees are not counted;
* **flags** with their thresholds stated in the report (:class:`Thresholds`): signers
  (risk gate, fact-checker, double-checker) and limits that veto too often, or whose vetoes
  mostly cost money; the strategist HOLDing nearly always or never; the triage analyst
  naming one class nearly always; detectors (symbol x metric) that trip too often, and
  metrics that never tripped on a day with trips.

It reads and never writes a setting: no configuration file, no database row of settings
(the ``app_state`` table, the halt flag) is touched. Only ``--record-outcomes`` writes, and
only data: each scored incident's realised move into ``incident_outcomes`` (the memory of
:mod:`tripwire.decisions.memory`), known at ``ts + horizon``.

Run it nightly on the cluster as a Ray job (the review itself needs no Ray; the job gives it
the cluster's environment, logs and retries)::

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python -m tripwire.review --day "$(date -u -d yesterday +%F)" --horizon-min 30 \\
        --out /data/reviews/review-$(date -u -d yesterday +%F).md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tripwire.decisions.memory import realised_outcome
from tripwire.incident import z_bucket
from tripwire.model import NS_PER_SECOND

DAY_NS = 86_400 * NS_PER_SECOND
PAGE = 1_000
MAX_ROWS = 200_000  # a day with more decisions than this is cut (counted in the report)
TOP = 20  # counterfactual rows listed in the report (all are in --json)

# prices(symbol, start_ns, end_ns) -> [(ts_ns, price)] sorted, end exclusive
PriceSource = Callable[[str, int, int], list[tuple[int, float]]]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When the review flags something (stated in every report)."""

    min_samples: int = 5  # fewer decisions/verdicts than this: no rate is judged
    veto_rate_high: float = 0.6  # a signer or limit vetoing more of what it saw
    costly_veto_share: float = 0.7  # a signer whose vetoes cost money at least this often
    hold_rate_high: float = 0.95  # the strategist HOLDs more than this share
    hold_rate_low: float = 0.05  # ... or less than this
    class_share_high: float = 0.9  # the analyst names one class more than this share
    trips_per_day_high: int = 24  # one detector (symbol x metric) trips more often


@dataclass
class Counterfactual:
    decision_id: str
    incident_id: str
    symbol: str
    ts_ns: int
    kind: str  # HOLD | VETO:<signer> | REJECTED
    side: str  # the direction scored: BUY or SELL
    qty: float
    entry: float
    exit: float | None = None
    move_pct: float | None = None
    pnl: float | None = None  # None: no price at the horizon (not scored)
    reason: str = ""


@dataclass
class Review:
    day: str
    horizon_min: float
    thresholds: Thresholds
    counts: dict[str, Any] = field(default_factory=dict)
    counterfactuals: list[Counterfactual] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    recorded_outcomes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day, "horizon_min": self.horizon_min,
                "thresholds": asdict(self.thresholds), "counts": self.counts,
                "counterfactuals": [asdict(c) for c in self.counterfactuals],
                "flags": self.flags, "recorded_outcomes": self.recorded_outcomes}


def day_bounds(day: str) -> tuple[int, int]:
    """``YYYY-MM-DD`` -> [start, end) in ns UTC (ValueError naming the format)."""
    try:
        d = date.fromisoformat(day)
    except (TypeError, ValueError):
        raise ValueError(f"--day must be a date YYYY-MM-DD, got {day!r}") from None
    if len(day) != 10:
        raise ValueError(f"--day must be a date YYYY-MM-DD, got {day!r}")
    start = int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * NS_PER_SECOND
    return start, start + DAY_NS


async def _all(fetch: Callable[..., Awaitable[list[dict[str, Any]]]], **kw: Any
               ) -> tuple[list[dict[str, Any]], bool]:
    """Every row of a paged list (oldest first); True when MAX_ROWS cut it."""
    rows: list[dict[str, Any]] = []
    while True:
        page = await fetch(PAGE, offset=len(rows), **kw)
        rows.extend(page)
        if len(page) < PAGE:
            return rows[::-1], False
        if len(rows) >= MAX_ROWS:
            return rows[::-1], True


def _side_of_trip(incident: Mapping[str, Any]) -> str:
    """The trip's direction (momentum): the tripping trade's move, else the snapshot's."""
    recent = incident.get("recent") or {}
    for key in ("ret_1_pct", "ret_10_pct", "ret_all_pct"):
        x = recent.get(key)
        if isinstance(x, int | float) and x != 0:
            return "BUY" if x > 0 else "SELL"
    return "BUY"


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) and x > 0 else None


def _plan(row: Mapping[str, Any], incident: Mapping[str, Any], vetoes: list[str],
          notional: float) -> tuple[str, str, float, float] | None:
    """(kind, side, qty, entry) of a decision that did not trade; None for one that did or
    that cannot be scored (no price)."""
    outcome = row.get("outcome")
    if outcome in ("EXECUTED", None):
        return None
    payload = row.get("payload") or {}
    strategist = payload.get("strategist") or {}
    entry = _number(incident.get("price")) or _number(strategist.get("limit_price"))
    if entry is None:
        return None
    if row.get("action") == "HOLD" or strategist.get("action") == "HOLD":
        return "HOLD", _side_of_trip(incident), notional / entry, entry
    side = str(row.get("action"))
    qty = _number((payload.get("risk") or {}).get("quantity"))
    if qty is None:
        qty = notional * float(strategist.get("size") or 0.0) / entry
    kind = f"VETO:{vetoes[0]}" if vetoes else "REJECTED"
    return kind, side, qty, entry


def _score(cf: Counterfactual, prices: list[tuple[int, float]], horizon_s: float) -> None:
    out = realised_outcome(prices, cf.ts_ns, cf.entry, horizon_s)
    if out is None:
        return
    move, _ = out
    cf.move_pct = move
    cf.exit = cf.entry * (1 + move / 100)
    sign = 1.0 if cf.side == "BUY" else -1.0
    cf.pnl = round(sign * cf.qty * (cf.exit - cf.entry), 6)


def _limit_of(reason: str) -> str:
    """The limit a risk-gate veto names: the first word after ``risk_gate:`` ("?" if none).

    >>> _limit_of("risk_gate: max_order_notional 9000 > 5000"), _limit_of("vetoed")
    ('max_order_notional', '?')
    """
    _, sep, rest = reason.partition(":")
    words = rest.split() if sep else []
    return words[0].strip(",;") if words else "?"


def _rate(n: int, total: int) -> str:
    return f"{n}/{total} ({n / total:.0%})" if total else "0/0"


def _flags(review: Review, signers: Mapping[str, Counter], limits: Counter, decided: int,
           holds: int, classes: Counter, trips: Counter, metrics_seen: set[str]) -> list[str]:
    t, out = review.thresholds, []
    for signer, c in sorted(signers.items()):
        seen = c["APPROVE"] + c["VETO"] + c["SHRINK"]
        if seen >= t.min_samples and c["VETO"] / seen > t.veto_rate_high:
            out.append(f"signer {signer} vetoes too often: {_rate(c['VETO'], seen)} "
                       f"> {t.veto_rate_high:.0%}")
    by_signer: dict[str, list[float]] = defaultdict(list)
    for cf in review.counterfactuals:
        if cf.kind.startswith("VETO:") and cf.pnl is not None:
            by_signer[cf.kind[5:]].append(cf.pnl)
    for signer, pnls in sorted(by_signer.items()):
        costly = sum(p > 0 for p in pnls)
        if len(pnls) >= t.min_samples and costly / len(pnls) >= t.costly_veto_share:
            out.append(f"signer {signer}: its vetoes cost money {_rate(costly, len(pnls))} "
                       f">= {t.costly_veto_share:.0%} (counterfactual PnL "
                       f"{sum(pnls):+.2f})")
    for limit, n in sorted(limits.items()):
        if decided >= t.min_samples and n / decided > t.veto_rate_high:
            out.append(f"limit {limit} vetoes too often: {_rate(n, decided)} of decisions "
                       f"> {t.veto_rate_high:.0%}")
    if decided >= t.min_samples:
        if holds / decided > t.hold_rate_high:
            out.append(f"skill strategist HOLDs too often: {_rate(holds, decided)} "
                       f"> {t.hold_rate_high:.0%}")
        elif holds / decided < t.hold_rate_low:
            out.append(f"skill strategist HOLDs too rarely: {_rate(holds, decided)} "
                       f"< {t.hold_rate_low:.0%}")
    total = sum(classes.values())
    if total >= t.min_samples:
        cls, n = classes.most_common(1)[0]
        if n / total > t.class_share_high:
            out.append(f"skill triage-analyst names {cls} too often: {_rate(n, total)} "
                       f"> {t.class_share_high:.0%}")
    for (symbol, metric), n in sorted(trips.items()):
        if n > t.trips_per_day_high:
            out.append(f"detector {symbol} {metric} trips too often: {n} incidents "
                       f"> {t.trips_per_day_high} a day")
    if trips:
        for metric in sorted({"RETURN", "VOLUME", "PRICE"} - metrics_seen):
            out.append(f"detector {metric} never tripped on any symbol (too rarely, or off)")
    return out


async def review_day(store: Any, prices: PriceSource, day: str, *, horizon_min: float = 30.0,
                     notional: float = 5_000.0, thresholds: Thresholds | None = None,
                     record_outcomes: bool = False) -> Review:
    """The review of ``day`` (see the module docstring); ``store`` is a DecisionStore."""
    if not (isinstance(horizon_min, int | float) and 0 < horizon_min <= 24 * 60):
        raise ValueError(f"--horizon-min must be a number of minutes in (0, 1440], "
                         f"got {horizon_min!r}")
    start, end = day_bounds(day)
    review = Review(day, float(horizon_min), thresholds or Thresholds())
    horizon_s = horizon_min * 60.0
    incidents, cut_i = await _all(store.incidents, since_ns=start, until_ns=end)
    verdicts, cut_v = await _all(store.verdicts, since_ns=start, until_ns=end)
    decisions, cut_d = await _all(store.decisions, since_ns=start, until_ns=end)
    by_incident = {r["id"]: r for r in incidents}
    verdict_of = {v["incident_id"]: v for v in verdicts}
    signers: dict[str, Counter] = defaultdict(Counter)
    limits: Counter = Counter()
    outcomes: Counter = Counter()
    holds = 0
    for row in decisions:
        outcomes[row.get("outcome") or "undecided"] += 1
        sigs = await store.signatures(row["id"])
        vetoes = [s.signer for s in sigs if s.verdict == "VETO"]
        for s in sigs:
            signers[s.signer][s.verdict] += 1
        if "risk_gate" in vetoes or str(row.get("reason", "")).startswith("risk_gate:"):
            limits[_limit_of(str(row.get("reason", "")))] += 1
        if row.get("action") == "HOLD":
            holds += 1
        inc = by_incident.get(row.get("incident_id")) or {}
        plan = _plan(row, inc.get("payload") or {}, vetoes, notional)
        if plan is None:
            continue
        kind, side, qty, entry = plan
        cf = Counterfactual(row["id"], inc.get("id", ""), row["symbol"], int(inc.get("ts_ns")
                            or row["ts_ns"]), kind, side, qty, entry,
                            reason=str(row.get("reason", ""))[:200])
        span_end = cf.ts_ns + round(horizon_s * NS_PER_SECOND) + 1
        _score(cf, prices(cf.symbol, cf.ts_ns, span_end + 60 * NS_PER_SECOND), horizon_s)
        review.counterfactuals.append(cf)
        if record_outcomes and cf.move_pct is not None and inc:
            payload = inc.get("payload") or {}
            verdict = verdict_of.get(inc["id"]) or {}
            review.recorded_outcomes += await store.record_outcome(
                inc["id"], symbol=cf.symbol, metric=str(payload.get("metric", "RETURN")),
                z_bucket=z_bucket(float(payload.get("z") or 0.0)), ts_ns=cf.ts_ns,
                realised_ns=cf.ts_ns + round(horizon_s * NS_PER_SECOND),
                horizon_s=horizon_s, move_pct=cf.move_pct,
                classification=str(verdict.get("class", "")),
                action=str(row.get("action", "HOLD")), has_news=bool(payload.get("news")),
                payload={"source": "review", "decision_id": row["id"]})
    trips = Counter((r["symbol"], str((r.get("payload") or {}).get("metric", "?")))
                    for r in incidents)
    classes = Counter(v["class"] for v in verdicts)
    scored = [c.pnl for c in review.counterfactuals if c.pnl is not None]
    review.counts = {
        "incidents": len(incidents), "verdicts": len(verdicts), "decisions": len(decisions),
        "outcomes": dict(outcomes), "classes": dict(classes),
        "signers": {k: dict(v) for k, v in signers.items()}, "limit_vetoes": dict(limits),
        "not_traded": len(review.counterfactuals), "scored": len(scored),
        "unscored": len(review.counterfactuals) - len(scored),
        "counterfactual_pnl": round(sum(scored), 6),
        "cut_at_max_rows": cut_i or cut_v or cut_d,
    }
    review.flags = _flags(review, signers, limits, len(decisions), holds, classes, trips,
                          {m for _, m in trips})
    return review


def render_markdown(review: Review) -> str:
    """The operator's report."""
    c, t = review.counts, review.thresholds
    lines = [
        f"# Tripwire nightly review, {review.day}",
        "",
        "This report changes no setting; every flag is for an operator to judge.",
        "",
        f"- incidents {c['incidents']}, verdicts {c['verdicts']}, decisions {c['decisions']} "
        f"(outcomes: {', '.join(f'{k} {v}' for k, v in sorted(c['outcomes'].items())) or 'none'})",
        f"- not traded (HOLD, vetoed, rejected): {c['not_traded']}, scored over "
        f"{review.horizon_min:g} min: {c['scored']} ({c['unscored']} without a price at the "
        "horizon)",
        f"- counterfactual PnL of everything not traded: {c['counterfactual_pnl']:+.2f} "
        "(positive: the filter cost money; negative: it saved money; no fees)",
        "",
        "## Flags",
        "",
        *([f"- {f}" for f in review.flags] or ["- none"]),
        "",
        "## Counterfactuals (largest first)",
        "",
        "| decision | symbol | kind | side | qty | entry | move % | PnL | reason |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ranked = sorted(review.counterfactuals, key=lambda x: -abs(x.pnl or 0.0))[:TOP]
    for x in ranked:
        move = "n/a" if x.move_pct is None else f"{x.move_pct:+.3f}"
        pnl = "n/a" if x.pnl is None else f"{x.pnl:+.2f}"
        reason = x.reason.replace("|", "/")[:80]
        lines.append(f"| {x.decision_id[:13]} | {x.symbol} | {x.kind} | {x.side} | "
                     f"{x.qty:.6g} | {x.entry:.8g} | {move} | {pnl} | {reason} |")
    lines += [
        "",
        "## Thresholds",
        "",
        f"- rates are judged from {t.min_samples} samples; a signer or limit vetoing more than "
        f"{t.veto_rate_high:.0%} is flagged, and a signer whose vetoes cost money at least "
        f"{t.costly_veto_share:.0%} of the time;",
        f"- the strategist HOLDing more than {t.hold_rate_high:.0%} or less than "
        f"{t.hold_rate_low:.0%}; the analyst naming one class more than "
        f"{t.class_share_high:.0%};",
        f"- a detector (symbol x metric) with more than {t.trips_per_day_high} incidents a "
        "day; a metric that never tripped on a day with trips.",
        "",
        "A HOLD is scored as a trade in the trip's direction at the maximum order notional; "
        "a vetoed proposal at the quantity the risk gate sized it to.",
    ]
    if review.recorded_outcomes:
        lines += ["", f"{review.recorded_outcomes} realised outcomes recorded for memory."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the command


def tick_prices(store_url: str) -> tuple[PriceSource, Callable[[], None]]:
    """A :data:`PriceSource` over the tick store at ``store_url`` and its closer."""
    from tripwire.model import SymbolTable
    from tripwire.store.ticks import TickStore

    ticks = TickStore(store_url)

    def prices(symbol: str, start_ns: int, end_ns: int) -> list[tuple[int, float]]:
        symbols = SymbolTable([symbol])
        out: list[tuple[int, float]] = []
        for batch in ticks.replay(symbols, names=[symbol], start_ns=start_ns, end_ns=end_ns):
            out.extend(zip(batch.ts_ns.tolist(), batch.price.tolist(), strict=True))
        return out

    return prices, ticks.close


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--day", required=True, help="the UTC day to review, YYYY-MM-DD")
    p.add_argument("--horizon-min", type=float, default=30.0,
                   help="minutes after each trip the counterfactual is held (30)")
    p.add_argument("--out", default=None, help="write the markdown report here (default: "
                   "print it)")
    p.add_argument("--dsn", default=None, help="PostgreSQL (default TRIPWIRE_PG_DSN, else the "
                   "private cluster under the data directory)")
    p.add_argument("--store-url", default=None, help="tick store URL (default: the settings')")
    p.add_argument("--record-outcomes", action="store_true",
                   help="write each scored incident's realised move for [memory] (data, "
                        "never a setting)")


def run(args: argparse.Namespace) -> int:
    """``tripwire review``: exit 0 written, 1 the store failed, 2 bad usage."""
    from tripwire.commands.common import UsageError
    from tripwire.config import load_settings
    from tripwire.store.pg import database, resolve_dsn
    from tripwire.store.pg_decisions import PgDecisionStore

    try:
        day_bounds(args.day)
    except ValueError as exc:
        raise UsageError(str(exc).removeprefix("--day "), argument="--day") from None
    if not 0 < args.horizon_min <= 1440:
        raise UsageError(f"must be minutes in (0, 1440], got {args.horizon_min}",
                         argument="--horizon-min")
    settings = load_settings(getattr(args, "config", None))
    notional = settings.decisions.limits.max_order_notional
    prices, close = tick_prices(args.store_url or settings.store_url)

    async def main(dsn: str) -> Review:
        store = await PgDecisionStore.connect(dsn, max_size=2)
        try:
            return await review_day(store, prices, args.day, horizon_min=args.horizon_min,
                                    notional=notional, record_outcomes=args.record_outcomes)
        finally:
            await store.close()

    try:
        dsn = args.dsn or resolve_dsn()
        if dsn:
            review = asyncio.run(main(dsn))
        else:
            with database(settings.data_dir) as private:
                review = asyncio.run(main(private))
    finally:
        close()
    text = render_markdown(review)
    if args.out:
        Path(args.out).write_text(text)
        print(f"review of {args.day}: {review.counts['not_traded']} not traded, "
              f"{len(review.flags)} flag(s); report written to {args.out}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(review.to_dict()))
    elif not args.out:
        print(text, end="")
    return 0


if __name__ == "__main__":  # python -m tripwire.review (the Ray job line above)
    parser = argparse.ArgumentParser(prog="python -m tripwire.review")
    add_arguments(parser)
    parser.add_argument("--config", default=None)
    parser.add_argument("--json", action="store_true")
    sys.exit(run(parser.parse_args()))
