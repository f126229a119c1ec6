"""`tripwire triage`: classify incidents through the LLM layer and show what it cost.

``--demo`` runs the default scenario through a detector shard (in process, no Ray needed),
takes the first incident of a few labelled event kinds — a news shock, a liquidation
cascade, a fat-finger print — and sends each to the triage analyst through the configured
routes (``[llm]`` settings; with no API keys, the offline rules analyst answers).
``--incident FILE`` triages one incident from a JSON file (``Incident`` fields).

Every call is recorded in the cost ledger (``<data dir>/llm_calls.jsonl``, read by
``tripwire llm costs``). Exit codes: 0 done, 1 no route answered, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from actors.shard import DetectorShard
from tripwire.config import Settings, load_settings
from tripwire.engine import Engine, LocalDetectors, MarketState
from tripwire.engine.step import run_inline, sub_batches
from tripwire.feeds.scenario import Scenario, default_scenario_config
from tripwire.incident import Incident
from tripwire.llm.base import AllRoutesFailed, BudgetExceeded, LLMError, LLMResponse
from tripwire.llm.factory import LLMStack, RouteUnavailable, build_llm
from tripwire.llm.ledger import JsonlLedger
from tripwire.llm.skills import SkillLoader
from tripwire.model import NS_PER_SECOND, EventKind, EventLabel

DEMO_KINDS = (EventKind.NEWS_SHOCK, EventKind.LIQUIDATION_CASCADE, EventKind.FAT_FINGER)
SKILLS_DIR = Path(__file__).resolve().parent.parent / "skills"


# ----------------------------------------------------------------------------- incidents


def demo_incidents(
    seed: int | None = None, kinds=DEMO_KINDS
) -> list[tuple[EventLabel, Incident]]:
    """The first incident of each of ``kinds`` in the scenario, with its news and context:
    the scenario replayed through the engine (an in-process detector shard, no venue), so
    the same trips make the same incidents as in a backtest or live."""
    sc = Scenario(default_scenario_config(seed))
    wanted = {k: next((lab for lab in sc.labels if lab.kind == k), None) for k in kinds}
    wanted = {k: lab for k, lab in wanted.items() if lab is not None}
    market = MarketState(sc.symbols)
    market.on_news(sc.news)  # an incident reads only the headlines at or before its trip
    engine = Engine(market, LocalDetectors(DetectorShard(0, 1, sc.symbols,
                                                         id_seed=sc.config.seed)))
    found: dict[EventKind, tuple[EventLabel, Incident]] = {}
    for chunk in sc.blocks():
        for batch in sub_batches(chunk.ticks):
            for inc in run_inline(engine.step(batch)):
                kind = _event_of(inc, wanted, found)
                if kind is not None:
                    found[kind] = (wanted[kind], inc)
            if len(found) == len(wanted):
                return [found[k] for k in kinds if k in found]
    return [found[k] for k in kinds if k in found]


def _event_of(anomaly, wanted, found) -> EventKind | None:
    for kind, lab in wanted.items():
        if kind not in found and lab.symbol == anomaly.symbol and (
            lab.start_ns <= anomaly.ts_ns <= lab.end_ns + 60 * NS_PER_SECOND
        ):
            return kind
    return None


# ----------------------------------------------------------------------------- triage


async def triage(incident: Incident, stack: LLMStack, skills: SkillLoader) -> LLMResponse:
    """The triage analyst's validated verdict on one incident (or a typed LLMError)."""
    return await stack.router.call(skills.request("triage-analyst", incident))


async def _triage_all(items, stack, skills) -> list[tuple[Any, Incident, Any]]:
    out = []
    try:
        for label, incident in items:
            try:
                out.append((label, incident, await triage(incident, stack, skills)))
            except (AllRoutesFailed, BudgetExceeded) as exc:  # the caller would HOLD
                out.append((label, incident, exc))
    finally:
        await stack.aclose()
    return out


def _load(args: argparse.Namespace) -> tuple[Settings, list, SkillLoader, LLMStack]:
    settings = load_settings(args.config)
    skills = SkillLoader(args.skills)
    for role in ("triage-analyst",):
        skills.get(role)  # a broken skill stops here, named
    if args.incident:
        try:
            items = [(None, Incident.model_validate_json(Path(args.incident).read_text()))]
        except OSError as exc:
            raise ValueError(f"cannot read {args.incident}: {exc.strerror}") from None
    else:
        items = demo_incidents(args.seed)
    ledger = JsonlLedger(Path(settings.data_dir) / "llm_calls.jsonl")
    return settings, items, skills, build_llm(settings.llm, ledger=ledger)


def cmd_triage(args: argparse.Namespace) -> int:
    err, out = Console(stderr=True), Console()
    try:
        with err.status("building incidents and routes", spinner="dots"):
            _, items, skills, stack = _load(args)
    except (ValueError, LLMError, RouteUnavailable) as exc:
        err.print(f"[red]tripwire triage: {exc}[/red]")
        return 2
    for name, why in stack.unavailable:
        err.print(f"[yellow]route {name} unavailable: {why}[/yellow]")
    with err.status(f"triaging {len(items)} incident(s)", spinner="dots"):
        results = asyncio.run(_triage_all(items, stack, skills))
    failed = sum(isinstance(r, Exception) for _, _, r in results)
    if args.json:
        print(json.dumps({"routes": stack.router.route_names,
                          "unavailable": [list(u) for u in stack.unavailable],
                          "results": [_as_json(lab, inc, r) for lab, inc, r in results]}))
    else:
        _print(out, results, stack)
    return 1 if failed else 0


def _as_json(label, incident: Incident, r) -> dict[str, Any]:
    base = {"event": label.kind.value if label else None, "symbol": incident.symbol,
            "ts": incident.ts_iso}
    if isinstance(r, Exception):
        return {**base, "error": str(r)}
    return {**base, "verdict": r.value.model_dump(mode="json"), "route": r.route,
            "model": r.model, "source": r.source, "cost_usd": r.cost_usd,
            "input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens,
            "latency_ms": round(r.latency_ms, 3), "cached": r.cached, "attempts": r.attempts}


def _print(out: Console, results, stack: LLMStack) -> None:
    table = Table(title="triage")
    for col in ("event (truth)", "symbol", "time (UTC)", "verdict", "conf.", "route / model",
                "tokens", "cost USD", "ms"):
        table.add_column(col)
    for label, inc, r in results:
        head = [label.kind.value if label else "-", inc.symbol, inc.ts_iso]
        if isinstance(r, Exception):
            table.add_row(*head, f"[red]no answer: {escape(str(r))}[/red]", "", "", "", "", "")
            continue
        v = r.value
        table.add_row(*head, v.classification.value, f"{v.confidence:.2f}",
                      f"{r.route} / {r.model}" + (" (cache)" if r.cached else ""),
                      f"{r.usage.input_tokens}+{r.usage.output_tokens}", f"{r.cost_usd:.5f}",
                      f"{r.latency_ms:.1f}")
    out.print(table)
    for label, inc, r in results:
        if not isinstance(r, Exception):
            out.print(f"[bold]{inc.symbol}[/bold] ({label.kind.value if label else 'file'}): "
                      f"{escape(r.value.reasoning)}")
    total = sum(r.cost_usd for _, _, r in results if not isinstance(r, Exception))
    out.print(f"[bold]summary[/bold]: {len(results)} incident(s) through routes "
              f"{', '.join(stack.router.route_names)}; {total:.5f} USD; "
              f"ledger: tripwire llm costs")
