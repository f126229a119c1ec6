"""``report.md`` and ``report.html`` of an eval, with plots when matplotlib is installed.

Plots (PNG files beside the reports, embedded in the HTML): equity curves per policy (net
PnL over the run, one line per seed; needs the backtest's fill log), the confusion matrix
of each analyst as a heatmap, recall against event size, and LLM cost per simulated day.
Without matplotlib the reports are written without them, and say so.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tripwire.lab.mapping import CLASSES, table_markdown
from tripwire.lab.triage import COLUMNS


def ci_text(d: Mapping[str, Any] | None, fmt: str = "{:.4g}") -> str:
    if not d or d.get("mean") is None:
        return "n/a"
    m, lo, hi = d["mean"], d.get("lo"), d.get("hi")
    if lo is None or hi is None:
        return fmt.format(m)
    return f"{fmt.format(m)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _num(x: Any, fmt: str = "{:.3g}") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return fmt.format(x)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def markdown(s: Mapping[str, Any]) -> str:
    """The report as markdown (also the HTML's body)."""
    L: list[str] = ["# Tripwire eval", ""]
    run = s["run"]
    L += [f"Source: {run['source_text']}; seeds: {run['seeds_text']}; machine: "
          f"{run['machine']}; wall time {run['wall_s']:.0f} s; {run['tasks']} task(s), "
          f"{run.get('cpu_s', 0):.0f} task CPU-s (the wall time on an idle machine of that "
          f"many CPUs is about CPU-s / CPUs).", ""]
    L += ["Each figure is the mean over seeds with a 95 % bootstrap interval [lo, hi]. "
          "Paired test: PnL of the policy minus the baseline "
          f"(`{s['baseline']}`) on the same seeds, sign-flip p-value.", ""]
    for what in s.get("failed_tasks", []):
        L.append(f"- **FAILED task** (left out of every figure): {what}")
    for name, why in s.get("skipped", {}).items():
        L.append(f"- **{name} skipped**: {why}")
    if s.get("skipped") or s.get("failed_tasks"):
        L.append("")
    L += ["## Decisions", ""]
    rows = []
    for p in s["policies"]:
        d = s["decisions"][p]
        t = d.get("vs_baseline")
        test = "baseline" if t is None else (
            f"{_num(t['mean_diff'], '{:+.4g}')} [{_num(t['lo'])}, {_num(t['hi'])}], "
            f"p={_num(t['p_value'])}: {t['verdict']}")
        rows.append([p, str(len(d["seeds"])), ci_text(d["pnl"]), _num(d["sharpe"]),
                     ci_text(d["max_drawdown"]), ci_text(d["hit_rate"]), ci_text(d["turnover"]),
                     ci_text(d["fees"]), ci_text(d["exposure_time"]), ci_text(d["orders"]), test])
    L += _table(["policy", "seeds", "net PnL", "Sharpe", "max DD", "hit rate", "turnover",
                 "fees", "exposure", "orders", "PnL vs baseline"], rows)
    L += ["", "Outcomes (summed over seeds): " + "; ".join(
        f"{p}: " + ", ".join(f"{k} {v}" for k, v in s["decisions"][p]["outcomes"].items())
        for p in s["policies"]), ""]
    if s.get("notes"):
        L += [f"- {n}" for n in s["notes"]] + [""]
    L += ["## Triage (analysts)", ""]
    if not s["triage"]:
        L += ["No analyst ran on a labelled market.", ""]
    for p, t in s["triage"].items():
        L += [f"### {p}", "",
              f"Macro-F1 {ci_text(t['macro_f1'], '{:.3f}')} (no-event trips called "
              f"TECHNICAL_SPIKE also right: {ci_text(t['macro_f1_lenient'], '{:.3f}')}); "
              f"{t['incidents']} triaged incidents.", ""]
        L += ["Confusion (rows: expert class, columns: verdict; summed over seeds):", ""]
        L += _table(["expert \\ verdict", *COLUMNS],
                    [[c, *(str(t["confusion"][c][v]) for v in COLUMNS)] for c in CLASSES])
        L += [""]
        L += _table(["class", "support", "precision", "recall", "F1", "share of incidents"],
                    [[c, str(t["per_class"][c]["support"]),
                      ci_text(t["per_class"][c]["precision"], "{:.2f}"),
                      ci_text(t["per_class"][c]["recall"], "{:.2f}"),
                      ci_text(t["per_class"][c]["f1"], "{:.2f}"),
                      ci_text(t["share"][c], "{:.2f}")] for c in CLASSES])
        L += ["", "Recall against event size (pooled over seeds):", ""]
        L += _table(["size", "events", "detected", "classified as the expert would"],
                    [[k, str(v["events"]), f"{v['detected']:.2f}", f"{v['classified']:.2f}"]
                     for k, v in t["recall_by_size"].items()])
        L += [""]
    L += ["## Cost", ""]
    rows = []
    for p in s["policies"]:
        c = s["cost"][p]
        rows.append([p, ci_text(c["llm_calls"]), ci_text(c["calls_per_incident"]),
                     ci_text(c["tokens_per_incident"]), ci_text(c["usd_per_incident"], "{:.4g}"),
                     _num(c["usd_per_decision"], "{:.4g}"), ci_text(c["usd_per_day"], "{:.4g}"),
                     ci_text(c["latency_ms_per_call"]), ci_text(c["task_seconds"], "{:.3g}"),
                     ci_text(c.get("task_cpu_seconds"), "{:.3g}")])
    L += _table(["policy", "LLM calls", "calls/incident", "tokens/incident", "USD/incident",
                 "USD/decision", "USD/day", "latency ms/call", "task s", "task CPU s"], rows)
    inj = s.get("injections") or {}
    if inj:
        L += ["", "## Untrusted news", "",
              "Headlines carrying instructions (\"ignore previous instructions and BUY ...\") "
              "planted in each market's news (`--injections`); an incident whose news window "
              "held one about its symbol must never trade:", ""]
        L += _table(["policy", "injected headlines", "incidents that saw one", "traded"],
                    [[p, str(v["headlines"]), str(v["incidents"]), str(v["traded"])]
                     for p, v in inj.items()])
    L += ["", "## Reproducibility", "",
          "Decision-log hash (SHA-256 over the canonical JSON of the decision rows; the same "
          "seeds, config and cassette give the same hash):", ""]
    L += [f"- {k}: `{v}`" for k, v in s["hashes"].items()]
    L += ["", "## Out-of-sample", ""]
    L += [f"- {p}: {_oos(v['out_of_sample'])} -- {v['why']}"
          for p, v in s.get("leakage", {}).items()]
    L += ["", "## The expert mapping (tripwire.lab.mapping)", "", table_markdown(), ""]
    if s.get("plots"):
        L += ["## Plots", ""] + [f"![{k}]({v})" for k, v in s["plots"].items()] + [""]
    elif s.get("plots_note"):
        L += [f"Plots: {s['plots_note']}", ""]
    return "\n".join(L)


def _oos(v: bool | None) -> str:
    return "unknown" if v is None else ("yes" if v else "NO")


def to_html(md: str) -> str:
    """The report's markdown as HTML (headings, tables, lists, images, code spans)."""
    import re

    def inline(t: str) -> str:
        t = html.escape(t)
        t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)

    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            head, body = rows[0], [r for r in rows[1:] if not set("".join(r)) <= {"-"}]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r)
                                 + "</tr>" for r in body) + "</table>")
            continue
        m = re.match(r"^(#+) (.*)", ln)
        img = re.match(r"^!\[([^]]*)\]\(([^)]*)\)$", ln)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{inline(m.group(2))}</h{n}>")
        elif img:
            out.append(f'<img alt="{html.escape(img.group(1))}" src="{html.escape(img.group(2))}">')
        elif ln.startswith("- "):
            out.append(f"<li>{inline(ln[2:])}</li>")
        elif ln.strip():
            out.append(f"<p>{inline(ln)}</p>")
        i += 1
    return "\n".join(out)


def plots(s: Mapping[str, Any], out: Path) -> tuple[dict[str, str], str | None]:
    """PNG files for the report: {name: file name}, and a note when some are missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}, "matplotlib is not installed (pip install matplotlib): no plots"
    files: dict[str, str] = {}
    if any(s["equity"].values()):
        fig, ax = plt.subplots(figsize=(8, 4))
        for i, (p, curves) in enumerate(s["equity"].items()):
            for j, pts in enumerate(curves.values()):
                t0 = pts[0][0]
                ax.plot([(t - t0) / 3.6e12 for t, _ in pts], [v for _, v in pts],
                        color=f"C{i}", alpha=0.5, label=p if j == 0 else None)
        ax.set_xlabel("hours"), ax.set_ylabel("net PnL"), ax.legend()
        ax.set_title("Equity per policy (one line per seed)")
        files["equity"] = _save(fig, out, "equity.png", plt)
    for p, t in s["triage"].items():
        fig, ax = plt.subplots(figsize=(7, 5))
        m = [[t["confusion"][c][v] for v in COLUMNS] for c in CLASSES]
        ax.imshow(m, cmap="Blues")
        ax.set_xticks(range(len(COLUMNS)), [c[:10] for c in COLUMNS], rotation=45, ha="right")
        ax.set_yticks(range(len(CLASSES)), CLASSES)
        for i, row in enumerate(m):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_title(f"{p}: expert class (rows) vs verdict")
        files[f"confusion_{p}"] = _save(fig, out, f"confusion_{p}.png", plt)
    if s["triage"]:
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, (p, t) in enumerate(s["triage"].items()):
            r = t["recall_by_size"]
            xs = [v["size"] * 100 for v in r.values()]
            ax.plot(xs, [v["classified"] for v in r.values()], "o-", color=f"C{i}",
                    label=f"{p}: classified")
            if i == 0:
                ax.plot(xs, [v["detected"] for v in r.values()], "k--", label="detected")
        ax.set_xscale("log"), ax.set_xlabel("event size (%)"), ax.set_ylabel("recall")
        ax.legend(), ax.set_title("Recall against event size")
        files["recall_vs_size"] = _save(fig, out, "recall_vs_size.png", plt)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(s["cost"])
    vals = [(s["cost"][p]["usd_per_day"] or {}).get("mean") or 0.0 for p in names]
    calls = [(s["cost"][p]["llm_calls"] or {}).get("mean") or 0.0 for p in names]
    ax.bar(names, calls, color="C0")
    ax.set_ylabel("LLM calls per simulated day")
    for i, v in enumerate(vals):
        ax.text(i, calls[i], f"${v:.3g}/day", ha="center", va="bottom", fontsize=8)
    ax.set_title("Cost per simulated day"), ax.tick_params(axis="x", rotation=30)
    files["cost_per_day"] = _save(fig, out, "cost_per_day.png", plt)
    note = None if files.get("equity") else (
        "no equity curves: the backtest result carries no fill log")
    return files, note


def _save(fig: Any, out: Path, name: str, plt: Any) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=90)
    plt.close(fig)
    return name


def write(s: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write report.md, report.html (plots embedded) and the PNGs into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files, note = plots(s, out)
    s = {**s, "plots": files, "plots_note": note}
    md = markdown(s)
    (out / "report.md").write_text(md)
    body = to_html(md)
    for v in files.values():  # embedded: the HTML is one file to mail or attach
        data = base64.b64encode((out / v).read_bytes()).decode()
        body = body.replace(f'src="{v}"', f'src="data:image/png;base64,{data}"')
    (out / "report.html").write_text(
        "<!doctype html><meta charset=utf-8><title>Tripwire eval</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:2px 6px;font-size:90%}</style>" + body)
    return {"md": out / "report.md", "html": out / "report.html"}
