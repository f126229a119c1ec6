"""Pool per-seed results into the eval's summary: CIs over seeds, paired tests, the hash.

Input: the task results of ``actors.eval.run_eval_task`` (one per policy and seed). Output:
one JSON-ready dict (what ``tripwire eval --json`` prints and the report renders):

* ``decisions[policy]``: each figure's bootstrap CI over seeds (pnl, return_pct, fees,
  orders, max_drawdown, hit_rate, turnover, exposure_time), the Sharpe over seeds, and the
  paired test of PnL against the baseline on the seeds both ran;
* ``triage[policy]`` (analysts only): the confusion matrix summed over seeds, macro-F1
  (strict and lenient) and per-class precision/recall with CIs over seeds, the share of
  incidents per verdict class, recall against event size;
* ``cost[policy]``: LLM calls, tokens and USD per incident, per decision, per simulated day;
* ``hashes``: the decision-log hash per policy and over everything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from tripwire.lab.decision_log import decision_log_hash
from tripwire.lab.mapping import CLASSES
from tripwire.lab.metrics import sharpe
from tripwire.lab.stats import bootstrap_ci, paired_test
from tripwire.lab.triage import COLUMNS, recall_by_size

CI_FIGURES = ("pnl", "return_pct", "fees", "orders", "fills", "incidents", "max_drawdown",
              "hit_rate", "turnover", "exposure_time")
COST_FIGURES = ("llm_calls", "llm_failed", "tokens", "usd", "calls_per_incident",
                "tokens_per_incident", "usd_per_incident", "usd_per_day")


def summarise(results: Sequence[Mapping[str, Any]], *, baseline: str,
              order: Sequence[str]) -> dict[str, Any]:
    by: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in results:
        by[r["policy"]].append(r)
    for rs in by.values():
        rs.sort(key=lambda r: r["seed"])
    base = {r["seed"]: r["metrics"]["pnl"] for r in by.get(baseline, [])}
    names = [n for n in order if n in by]
    out: dict[str, Any] = {"policies": names, "baseline": baseline, "decisions": {},
                           "triage": {}, "cost": {}, "equity": {}, "hashes": {},
                           "injections": {}}
    for name in names:
        rs = by[name]
        out["decisions"][name] = _decisions(rs, base, name == baseline)
        out["cost"][name] = _cost(rs)
        out["equity"][name] = {r["seed"]: r["metrics"].get("equity") for r in rs
                               if r["metrics"].get("equity")}
        out["hashes"][name] = decision_log_hash(row for r in rs for row in r["rows"])
        out["injections"][name] = {k: sum((r.get("injections") or {}).get(k, 0) for r in rs)
                                   for k in ("headlines", "incidents", "traded")}
        if any(r.get("triage") for r in rs):
            out["triage"][name] = _triage([r["triage"] for r in rs if r.get("triage")])
    out["hashes"]["all"] = decision_log_hash(row for r in results for row in r["rows"])
    return out


def _decisions(rs: Sequence[Mapping[str, Any]], base: Mapping[int, float],
               is_base: bool) -> dict[str, Any]:
    m = [r["metrics"] for r in rs]
    d: dict[str, Any] = {"seeds": [r["seed"] for r in rs]}
    for k in CI_FIGURES:
        vals = [x[k] for x in m if x.get(k) is not None]
        d[k] = bootstrap_ci(vals).to_dict() if vals else None
    cash = rs[0]["initial_cash"] or 1.0
    d["sharpe"] = sharpe([x["pnl"] for x in m], cash=cash, days=rs[0]["days"] or 1.0)
    if not is_base:
        seeds = [r["seed"] for r in rs if r["seed"] in base]
        mine = {r["seed"]: r["metrics"]["pnl"] for r in rs}
        d["vs_baseline"] = paired_test([mine[s] for s in seeds],
                                       [base[s] for s in seeds]).to_dict()
    outcomes: dict[str, int] = defaultdict(int)
    for x in m:
        for k, v in x["outcomes"].items():
            outcomes[k] += v
    d["outcomes"] = dict(sorted(outcomes.items()))
    return d


def _cost(rs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    m = [r["metrics"] for r in rs]
    out = {k: bootstrap_ci([x[k] for x in m if x.get(k) is not None]).to_dict()
           for k in COST_FIGURES}
    decisions = sum(x["decisions"] for x in m)
    usd = sum(x["usd"] for x in m)
    calls = sum(x["llm_calls"] for x in m)
    out["usd_per_decision"] = usd / decisions if decisions else 0.0
    out["calls_per_decision"] = calls / decisions if decisions else 0.0
    lat = [x["latency_ms_per_call"] for x in m if x.get("latency_ms_per_call") is not None]
    out["latency_ms_per_call"] = bootstrap_ci(lat).to_dict() if lat else None
    out["task_seconds"] = bootstrap_ci([r["elapsed_s"] for r in rs]).to_dict()
    cpu = [r["cpu_s"] for r in rs if r.get("cpu_s") is not None]
    out["task_cpu_seconds"] = bootstrap_ci(cpu).to_dict() if cpu else None
    return out


def _triage(seeds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    total = {t: dict.fromkeys(COLUMNS, 0) for t in CLASSES}
    for s in seeds:
        for t, row in s["confusion"].items():
            for c, v in row.items():
                total[t][c] += v
    per_class = {}
    for c in CLASSES:
        per_class[c] = {
            k: bootstrap_ci([s["per_class"][c][k] for s in seeds
                             if s["per_class"][c][k] is not None]).to_dict()
            for k in ("precision", "recall", "f1")}
        per_class[c]["support"] = sum(s["per_class"][c]["support"] for s in seeds)
    return {
        "confusion": total,
        "macro_f1": bootstrap_ci([s["macro_f1"] for s in seeds
                                  if s["macro_f1"] is not None]).to_dict(),
        "macro_f1_lenient": bootstrap_ci([s["macro_f1_lenient"] for s in seeds
                                          if s["macro_f1_lenient"] is not None]).to_dict(),
        "per_class": per_class,
        "share": {c: bootstrap_ci([s["share"][c] for s in seeds]).to_dict() for c in COLUMNS},
        "incidents": sum(s["incidents"] for s in seeds),
        "recall_by_size": recall_by_size(seeds),
    }
