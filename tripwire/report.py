"""The daily report: incidents, verdict mix, decisions, orders and fills, PnL, LLM cost.

:func:`build_report` reads one period ``[since_ns, until_ns)`` -- or one run (the rows that
arrived while it went on, with the market period it covered) -- from a :class:`DecisionStore`
and an LLM cost ledger and returns a plain, JSON-able dict; :func:`write_report` turns that
dict into ``report.md``, a self-contained ``report.html`` (plots embedded as base64),
``report.json`` and three PNG plots. Both are deterministic: the same data and the same
``generated_at`` give the same bytes (no clock is read here).

PnL is realised PnL by the *average-cost* method per symbol, from the period's fills alone:
quantity opened before the period is not in the cost basis, so closing it shows up as a new
position in the other direction. Fees are reported separately and subtracted for the net.

Every list read is bounded (``max_rows`` per kind, paged ``PAGE`` rows at a time); when a
bound is hit the report says so in ``truncated`` rather than silently showing less. The
headline counts come from ``DecisionStore.counts`` and are exact whatever the bound.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tripwire.decisions.proposal import SIDES
from tripwire.llm.ledger import LedgerSink
from tripwire.store.decisions import DecisionStore

PAGE = 10_000  # the store's largest page
MAX_ROWS = 100_000  # rows read per kind (incidents, verdicts, decisions, fills) by default
TABLE_ROWS = 500  # decision rows shown in the markdown/HTML table
TOP_SYMBOLS = 10
EPS = 1e-12  # a position smaller than this is flat (float dust from partial closes)
LLM_GROUP = ("route", "role")
PLOTS = {"verdicts": "verdict_mix.png", "outcomes": "decision_outcomes.png",
         "pnl": "pnl_curve.png"}


class ReportError(ValueError):
    """Bad input to the report (the message names it); nothing was written."""


# ----------------------------------------------------------------------------- reading


async def _paged(fetch: Callable[..., Awaitable[list[dict[str, Any]]]], max_rows: int,
                 **filters: Any) -> tuple[list[dict[str, Any]], bool]:
    """All rows ``fetch`` returns for ``filters``, up to ``max_rows``; True when cut off."""
    rows: list[dict[str, Any]] = []
    while len(rows) < max_rows:
        limit = min(PAGE, max_rows - len(rows))
        batch = await fetch(limit, offset=len(rows), **filters)
        rows.extend(batch)
        if len(batch) < limit:
            return rows, False
    # Exactly max_rows read: one more row tells whether anything was left out.
    return rows, bool(await fetch(1, offset=len(rows), **filters))


async def _orders_and_fills(store: DecisionStore, decisions: Sequence[dict[str, Any]]
                            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    orders: list[dict[str, Any]] = []
    fills: list[dict[str, Any]] = []
    for d in decisions:
        for o in await store.orders(d["id"]):
            orders.append(o)
            fills.extend(await store.fills(o["client_order_id"]))
    orders.sort(key=lambda o: (o["ts_ns"], o["client_order_id"]))
    fills.sort(key=lambda f: (f["ts_ns"], f["id"]))
    return orders, fills


async def _verdict_classes(store: DecisionStore, verdicts: Sequence[dict[str, Any]],
                           decisions: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Verdict id -> class for every decision; verdicts from before the period are looked up."""
    classes = {v["id"]: v["class"] for v in verdicts}
    for d in decisions:
        vid = d.get("verdict_id")
        if vid and vid not in classes:
            row = await store.verdict(vid)
            classes[vid] = row["class"] if row else "?"
    return classes


# ----------------------------------------------------------------------------- PnL


@dataclass
class _Book:
    """One symbol's average-cost position."""

    qty: float = 0.0  # signed, long > 0
    avg: float = 0.0
    realised: float = 0.0
    fees: float = 0.0
    bought: float = 0.0
    sold: float = 0.0

    def apply(self, side: str, qty: float, price: float, fee: float) -> None:
        signed = qty if side == "BUY" else -qty
        self.fees += fee
        if side == "BUY":
            self.bought += qty
        else:
            self.sold += qty
        if abs(self.qty) < EPS or (self.qty > 0) == (signed > 0):
            total = abs(self.qty) + qty
            self.avg = (self.avg * abs(self.qty) + price * qty) / total
            self.qty += signed
            return
        closed = min(abs(self.qty), qty)
        self.realised += closed * (price - self.avg) * (1.0 if self.qty > 0 else -1.0)
        self.qty += signed
        if abs(self.qty) < EPS:
            self.qty, self.avg = 0.0, 0.0
        elif qty > closed:  # flipped: the rest opens a new position at this price
            self.avg = price


def pnl_from_fills(fills: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Realised PnL by average cost per symbol, fees, and the cumulative net curve.

    >>> f = [{"symbol": "X", "side": "BUY", "qty": 2, "price": 10, "fee": 0.1, "ts_ns": 1},
    ...      {"symbol": "X", "side": "SELL", "qty": 1, "price": 13, "fee": 0.1, "ts_ns": 2}]
    >>> p = pnl_from_fills(f)
    >>> p["realised"], round(p["net"], 6), p["by_symbol"][0]["open_qty"]
    (3.0, 2.8, 1.0)
    """
    books: dict[str, _Book] = defaultdict(_Book)
    curve: list[list[float]] = []
    for f in fills:
        if f["side"] not in SIDES:
            raise ReportError(f"fill {f.get('id')!r} has side {f['side']!r} (BUY or SELL)")
        books[f["symbol"]].apply(f["side"], float(f["qty"]), float(f["price"]),
                                 float(f["fee"]))
        net = sum(b.realised - b.fees for b in books.values())
        curve.append([int(f["ts_ns"]), round(net, 10)])
    by_symbol = [{"symbol": s, "bought": b.bought, "sold": b.sold, "open_qty": b.qty,
                  "avg_cost": b.avg, "realised": round(b.realised, 10),
                  "fees": round(b.fees, 10), "net": round(b.realised - b.fees, 10)}
                 for s, b in sorted(books.items())]
    realised = round(sum(b.realised for b in books.values()), 10)
    fees = round(sum(b.fees for b in books.values()), 10)
    return {"method": "average cost per symbol, from the period's fills only",
            "realised": realised, "fees": fees, "net": round(realised - fees, 10),
            "by_symbol": by_symbol, "curve": curve, "curve_kind": "cumulative net realised PnL"}


def _equity_curve(points: Iterable[Any]) -> list[list[float]]:
    """(ts_ns, equity) pairs or objects with ``ts_ns``/``equity`` (EquityPoint), time-sorted."""
    out = []
    for i, p in enumerate(points):
        ts, eq = (p.ts_ns, p.equity) if hasattr(p, "equity") else p
        if not isinstance(ts, int) or not math.isfinite(float(eq)):
            raise ReportError(f"equity point {i} must be (int ts_ns, finite equity), got {p!r}")
        out.append([ts, float(eq)])
    return sorted(out)


# ----------------------------------------------------------------------------- building


def iso(ts_ns: int) -> str:
    """Nanoseconds UTC as ISO-8601 to the second.

    >>> iso(1_700_000_000_000_000_000)
    '2023-11-14T22:13:20Z'
    """
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_quality(quality: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (quality or {}).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) \
                or not math.isfinite(value):
            raise ReportError(f"quality[{key!r}] must be a finite number, got {value!r}")
        if key in ("precision", "recall", "f1") and not 0.0 <= value <= 1.0:
            raise ReportError(f"quality[{key!r}] must be in [0, 1], got {value!r}")
        out[str(key)] = value
    return dict(sorted(out.items()))


def _incident_section(counts: Mapping[str, Any], incidents: Sequence[dict[str, Any]]
                      ) -> dict[str, Any]:
    by_status = dict(sorted(counts.get("incidents", {}).items()))
    top = Counter(i["symbol"] for i in incidents)
    return {"count": sum(by_status.values()), "by_status": by_status,
            "top_symbols": [[s, n] for s, n in sorted(top.items(),
                                                      key=lambda x: (-x[1], x[0]))[:TOP_SYMBOLS]]}


def _verdict_section(counts: Mapping[str, Any], verdicts: Sequence[dict[str, Any]]
                     ) -> dict[str, Any]:
    conf: dict[str, list[float]] = defaultdict(list)
    for v in verdicts:
        conf[v["class"]].append(float(v["confidence"]))
    by_class = dict(sorted(counts.get("verdicts", {}).items()))
    return {"count": sum(by_class.values()), "by_class": by_class,
            "mean_confidence": {c: round(sum(xs) / len(xs), 6) for c, xs in sorted(conf.items())}}


def _decision_rows(decisions: Sequence[dict[str, Any]], classes: Mapping[str, str]
                   ) -> list[dict[str, Any]]:
    rows = [{"id": d["id"], "time": iso(d["ts_ns"]), "ts_ns": d["ts_ns"], "symbol": d["symbol"],
             "verdict": classes.get(d.get("verdict_id") or "", "-"), "action": d["action"],
             "outcome": d["outcome"] or "undecided", "reason": d.get("reason") or ""}
            for d in decisions]
    return sorted(rows, key=lambda r: (r["ts_ns"], r["id"]))


def _order_section(counts: Mapping[str, Any], orders: Sequence[dict[str, Any]],
                   fills: Sequence[dict[str, Any]]) -> dict[str, Any]:
    by_status = dict(sorted(counts.get("orders", {}).items()))
    notional = sum(float(f["qty"]) * float(f["price"]) for f in fills)
    return {"orders": sum(by_status.values()), "orders_by_status": by_status,
            "fills": int(counts.get("fills", 0)), "fills_read": len(fills),
            "orders_read": len(orders), "notional": round(notional, 10),
            "fees": round(sum(float(f["fee"]) for f in fills), 10)}


async def _llm_section(ledger: LedgerSink | None, since_ns: int, until_ns: int
                       ) -> dict[str, Any]:
    if ledger is None:
        return {"available": False, "rows": [], "calls": 0, "input_tokens": 0,
                "output_tokens": 0, "cost_usd": 0.0, "corrupt_lines": 0}
    # The same grouping `tripwire llm costs --by route,role` prints, for the same period.
    rows = [r.as_dict() for r in await ledger.summarise(since_ns, until_ns, by=LLM_GROUP)]
    for r in rows:
        r["mean_latency_ms"] = round(r["mean_latency_ms"], 6)
    return {"available": True, "rows": rows, "calls": sum(r["calls"] for r in rows),
            "input_tokens": sum(r["input_tokens"] for r in rows),
            "output_tokens": sum(r["output_tokens"] for r in rows),
            "cost_usd": round(sum(r["cost_usd"] for r in rows), 10),
            "corrupt_lines": int(getattr(ledger, "corrupt", 0))}


async def _run_scope(store: DecisionStore, run: str, since_ns: int | None,
                     until_ns: int | None) -> tuple[dict[str, Any], int, int]:
    """The run's row and the period to show: as given, else the market period the run
    covered, else its arrival span (a run still going on, without a market period, needs
    ``until_ns``)."""
    row = await store.run(run)
    if row is None:
        raise ReportError(f"run: no run {run!r} in the store")
    if since_ns is None:
        since_ns = row["period_start_ns"] if row["period_start_ns"] is not None \
            else row["started_ns"]
    if until_ns is None:
        until_ns = row["period_end_ns"] if row["period_end_ns"] is not None \
            else row["ended_ns"]
    if until_ns is None:
        raise ReportError(f"run {run!r} has neither an end nor a market period: pass until_ns")
    return row, since_ns, until_ns


def _check_period(since_ns: int, until_ns: int, max_rows: int) -> None:
    for name, v in (("since_ns", since_ns), ("until_ns", until_ns), ("max_rows", max_rows)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise ReportError(f"{name} must be an integer, got {v!r}")
    if since_ns >= until_ns:
        raise ReportError(f"the period is empty: since_ns {since_ns} >= until_ns {until_ns}")
    if max_rows < 1:
        raise ReportError(f"max_rows must be >= 1, got {max_rows}")


async def build_report(
    store: DecisionStore,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    run: str | None = None,
    ledger: LedgerSink | None = None,
    equity: Iterable[Any] | None = None,
    quality: Mapping[str, Any] | None = None,
    generated_at: str | None = None,
    max_rows: int = MAX_ROWS,
) -> dict[str, Any]:
    """The report of ``[since_ns, until_ns)``, or of ``run``, as a plain JSON-able dict.

    run           a run id (DecisionStore.start_run): the report counts and lists exactly the
                  rows that arrived during the run, whatever their market time; the period
                  shown (and the LLM ledger's) defaults to the market period the run covered
    ledger        the LLM cost ledger (JsonlLedger, InMemoryLedger...); None: no LLM section
    equity        optional equity curve ((ts_ns, equity) pairs or EquityPoint); without it
                  the PnL plot is the cumulative net realised PnL of the period's fills
    quality       optional detection-quality figures (precision, recall, ... from labels)
    generated_at  shown as given; the report never reads the clock itself
    """
    run_row = None
    if run is not None:
        run_row, since_ns, until_ns = await _run_scope(store, run, since_ns, until_ns)
    if since_ns is None or until_ns is None:
        raise ReportError("the report needs since_ns and until_ns, or a run")
    _check_period(since_ns, until_ns, max_rows)
    quality_rows = _check_quality(quality)
    period = {"since_ns": since_ns, "until_ns": until_ns}
    # A run's rows are chosen by arrival alone: its replayed market may lie anywhere.
    scope: dict[str, Any] = {"run": run} if run is not None else dict(period)
    counts = await store.counts(**scope)
    incidents, cut_i = await _paged(store.incidents, max_rows, **scope)
    verdicts, cut_v = await _paged(store.verdicts, max_rows, **scope)
    decisions, cut_d = await _paged(store.decisions, max_rows, **scope)
    orders, fills = await _orders_and_fills(store, decisions)
    classes = await _verdict_classes(store, verdicts, decisions)
    pnl = pnl_from_fills(fills)
    if equity is not None:
        pnl["curve"], pnl["curve_kind"] = _equity_curve(equity), "equity"
    outcomes = dict(sorted(counts.get("decisions", {}).items()))
    return {
        "title": f"Tripwire daily report {iso(since_ns)[:10]}",
        "generated_at": generated_at,
        "period": {**period, "since": iso(since_ns), "until": iso(until_ns)},
        "run": None if run_row is None else {
            "id": run_row["id"], "label": run_row["label"],
            "started_ns": run_row["started_ns"], "ended_ns": run_row["ended_ns"]},
        "incidents": _incident_section(counts, incidents),
        "verdicts": _verdict_section(counts, verdicts),
        "decisions": {"count": sum(outcomes.values()), "by_outcome": outcomes,
                      "rows": _decision_rows(decisions, classes)},
        "execution": _order_section(counts, orders, fills),
        "pnl": pnl,
        "llm": await _llm_section(ledger, since_ns, until_ns),
        "quality": quality_rows or None,
        "truncated": {"incidents": cut_i, "verdicts": cut_v, "decisions": cut_d,
                      "max_rows": max_rows},
    }


# ----------------------------------------------------------------------------- plots


def _figure() -> Any:
    # Figure + the Agg canvas directly: no pyplot global state, no GUI backend, thread-safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # No "Software" metadata: the bytes then depend on the data only, not the version.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def bar_png(counts: Mapping[str, int], title: str, empty: str) -> bytes:
    from matplotlib.ticker import MaxNLocator

    fig = _figure()
    ax = fig.add_subplot()
    if counts:
        names = list(counts)
        ax.bar(names, [counts[n] for n in names], color="#4472c4")
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 ticks
        ax.set_ylabel("count")
    else:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title(title)
    fig.tight_layout()
    return _png(fig)


def curve_png(curve: Sequence[Sequence[float]], kind: str, t0: int) -> bytes:
    """A step curve over hours since ``t0`` (the period start, so days line up)."""
    fig = _figure()
    ax = fig.add_subplot()
    if curve:
        hours = [(t - t0) / 3.6e12 for t, _ in curve]
        ax.step(hours, [v for _, v in curve], where="post", color="#2e7d32")
        ax.axhline(0.0, color="#999999", linewidth=0.8)
        ax.set_xlabel(f"hours since {iso(int(t0))}")
        ax.set_ylabel("quote currency")
    else:
        ax.text(0.5, 0.5, "no fills in this period", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title(kind)
    fig.tight_layout()
    return _png(fig)


def plots(report: Mapping[str, Any]) -> dict[str, bytes]:
    """Plot name -> PNG bytes (verdict mix, decision outcomes, PnL/equity curve)."""
    return {
        "verdicts": bar_png(report["verdicts"]["by_class"], "verdict mix",
                            "no verdicts in this period"),
        "outcomes": bar_png(report["decisions"]["by_outcome"], "decisions by outcome",
                            "no decisions in this period"),
        "pnl": curve_png(report["pnl"]["curve"], report["pnl"]["curve_kind"],
                         report["period"]["since_ns"]),
    }


# ----------------------------------------------------------------------------- rendering


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "-" if v is None else str(v)


@dataclass(frozen=True, slots=True)
class _Section:
    """One section as both renderers lay it out."""

    heading: str
    cols: list[str]
    rows: list[list[Any]]
    note: str = ""
    plot: str = ""  # a key of PLOTS, or ""


def _sections(report: Mapping[str, Any]) -> list[_Section]:
    """The report's sections, in order: the one layout markdown and HTML share."""
    inc, ver, dec = report["incidents"], report["verdicts"], report["decisions"]
    ex, pnl, llm = report["execution"], report["pnl"], report["llm"]
    shown = dec["rows"][:TABLE_ROWS]
    out = [
        _Section("Incidents", ["status", "count"], [[k, v] for k, v in inc["by_status"].items()],
         f"{inc['count']:,} incidents."),
        _Section("Incidents by symbol (top 10)", ["symbol", "incidents"], inc["top_symbols"], ""),
        _Section("Verdict mix", ["class", "verdicts", "mean confidence"],
         [[c, n, ver["mean_confidence"].get(c)] for c, n in ver["by_class"].items()],
         f"{ver['count']:,} verdicts.", "verdicts"),
        _Section("Decisions by outcome", ["outcome", "decisions"],
         [[k, v] for k, v in dec["by_outcome"].items()],
         f"{dec['count']:,} decisions.", "outcomes"),
        _Section("Decisions", ["time", "symbol", "verdict", "action", "outcome", "reason"],
         [[r["time"], r["symbol"], r["verdict"], r["action"], r["outcome"], r["reason"]]
          for r in shown],
         f"{len(dec['rows']) - len(shown):,} more not shown." if len(dec["rows"]) > len(shown)
         else ""),
        _Section("Orders and fills", ["order status", "orders"],
         [[k, v] for k, v in ex["orders_by_status"].items()],
         f"{ex['orders']:,} orders, {ex['fills']:,} fills, notional {_num(ex['notional'])}, "
         f"fees {_num(ex['fees'])}."),
        _Section("PnL", ["symbol", "bought", "sold", "open qty", "avg cost", "realised",
                         "fees", "net"],
         [[s["symbol"], s["bought"], s["sold"], s["open_qty"], s["avg_cost"], s["realised"],
           s["fees"], s["net"]] for s in pnl["by_symbol"]],
         f"Realised {_num(pnl['realised'])}, fees {_num(pnl['fees'])}, net {_num(pnl['net'])} "
         f"({pnl['method']}). Curve: {pnl['curve_kind']}.", "pnl"),
        _Section("LLM calls", ["route", "role", "calls", "ok", "cache hits", "tokens in",
                               "tokens out", "cost USD", "mean ms"],
         [[r["route"], r["role"], r["calls"], r["ok"], r["cache_hits"], r["input_tokens"],
           r["output_tokens"], r["cost_usd"], r["mean_latency_ms"]] for r in llm["rows"]],
         (f"{llm['calls']:,} calls, {llm['input_tokens']:,} tokens in, "
          f"{llm['output_tokens']:,} out, {llm['cost_usd']:.4f} USD."
          + (f" {llm['corrupt_lines']} unreadable ledger lines skipped."
             if llm["corrupt_lines"] else ""))
         if llm["available"] else "No LLM ledger was given."),
    ]
    if report.get("quality"):
        out.append(_Section("Detection quality", ["measure", "value"],
                    [[k, v] for k, v in report["quality"].items()], "From labelled data."))
    cut = [k for k in ("incidents", "verdicts", "decisions") if report["truncated"][k]]
    if cut:
        out.append(_Section("Truncated", [], [],
                            f"Only the first {report['truncated']['max_rows']:,} rows of "
                            f"{', '.join(cut)} were read; counts above are exact."))
    return out


def _run_line(run: Mapping[str, Any]) -> str:
    label = f" ({run['label']})" if run.get("label") else ""
    return f"Run {run['id']}{label}: the rows that arrived during this run only."


def _md_text(text: str) -> str:
    # Markdown renders inline HTML: escape it, so a reason like "<b>" stays text.
    return html.escape(text, quote=False)


def _md_cell(v: Any) -> str:
    text = _md_text(_num(v)).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r", " ").replace("\n", " ")


def render_markdown(report: Mapping[str, Any], plot_files: Mapping[str, str]) -> str:
    """The report as markdown; plots are linked by the relative names in ``plot_files``."""
    p = report["period"]
    lines = [f"# {report['title']}", "",
             f"Period: {p['since']} to {p['until']} (UTC, end exclusive)."]
    if report.get("run"):
        lines.append(_md_text(_run_line(report["run"])))
    if report.get("generated_at"):
        lines.append(f"Generated at {report['generated_at']}.")
    for sec in _sections(report):
        lines += ["", f"## {sec.heading}"]
        if sec.note:
            lines += ["", _md_text(sec.note)]
        if sec.cols and sec.rows:
            lines += ["", "| " + " | ".join(sec.cols) + " |", "|" + "---|" * len(sec.cols)]
            lines += ["| " + " | ".join(_md_cell(v) for v in r) + " |" for r in sec.rows]
        elif sec.cols:
            lines += ["", "(none)"]
        if sec.plot:
            lines += ["", f"![{sec.heading}]({plot_files[sec.plot]})"]
    return "\n".join(lines) + "\n"


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:2px 8px;font-size:13px}td.n{text-align:right}th{background:#f0f0f0}"
        "img{max-width:100%}")


def render_html(report: Mapping[str, Any], pngs: Mapping[str, bytes]) -> str:
    """The report as one self-contained HTML page: every text escaped, plots inlined."""
    e = html.escape
    p = report["period"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(report['title'])}</title><style>{_CSS}</style></head><body>",
           f"<h1>{e(report['title'])}</h1>",
           f"<p>Period: {e(p['since'])} to {e(p['until'])} (UTC, end exclusive).</p>"]
    if report.get("run"):
        out.append(f"<p>{e(_run_line(report['run']))}</p>")
    if report.get("generated_at"):
        out.append(f"<p>Generated at {e(str(report['generated_at']))}.</p>")
    for sec in _sections(report):
        out.append(f"<h2>{e(sec.heading)}</h2>")
        if sec.note:
            out.append(f"<p>{e(sec.note)}</p>")
        if sec.cols and sec.rows:
            out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in sec.cols) + "</tr>")
            for r in sec.rows:
                out.append("<tr>" + "".join(
                    f'<td class="n">{e(_num(v))}</td>' if isinstance(v, (int, float))
                    else f"<td>{e(_num(v))}</td>" for v in r) + "</tr>")
            out.append("</table>")
        elif sec.cols:
            out.append("<p>(none)</p>")
        if sec.plot:
            data = base64.b64encode(pngs[sec.plot]).decode("ascii")
            out.append(f'<img alt="{e(sec.heading)}" src="data:image/png;base64,{data}">')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(report: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html, report.json and the PNG plots; name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs = plots(report)
    paths: dict[str, Path] = {}
    for name, data in pngs.items():
        paths[f"{name}_png"] = out / PLOTS[name]
        paths[f"{name}_png"].write_bytes(data)
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text(render_markdown(report, PLOTS), encoding="utf-8")
    paths["html"] = out / "report.html"
    paths["html"].write_text(render_html(report, pngs), encoding="utf-8")
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(report, indent=1, sort_keys=True, allow_nan=False)
                             + "\n", encoding="utf-8")
    return paths
