"""Explain one decision: the whole chain from the trip to the fills, on a terminal or as JSON.

:func:`render_explain` prints a header panel (symbol, outcome, ids, mode), then a tree in the
order things happened (trip → verdict → proposal → risk gate → fact check → double check →
signatures → approval → order → fills → outcome) and the bus messages between the agents as
a compact timeline. :func:`explain_json` is the same chain as one JSON-ready dict, for
scripts (``tripwire explain <id> --json``).

Like the journal, it renders known fields only; every text from the chain is printed as
plain text (never parsed as rich markup), so a headline with ``[brackets]`` shows as it is.

>>> import io
>>> from rich.console import Console
>>> console = Console(record=True, width=100, file=io.StringIO())
>>> render_explain(DecisionChain("d-1"), console)
>>> "PENDING" in console.export_text()
True
>>> explain_json(DecisionChain("d-1"))["outcome"]
'PENDING'
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tripwire.decisions.signatures import verify_signatures
from tripwire.store.decisions import DecisionChain
from tripwire.store.journal import (
    BLIND_NOTE,
    MISSING,
    fmt_num,
    fmt_pct,
    fmt_ts,
    fmt_usd,
    hash_prefix,
    news_age,
    outcome_of,
    part,
    pass_fail,
    payload_of,
    rows_of,
    signature_check,
    symbol_of,
    ts_of,
)

OUTCOME_STYLE = {"EXECUTED": "bold green", "DRY_RUN": "bold cyan", "HOLD": "bold yellow",
                 "REJECTED": "bold red", "DECLINED": "bold red", "EXPIRED": "bold red",
                 "PENDING": "bold magenta"}
RESULT_STYLE = {"PASS": "green", "FAIL": "red", "APPROVE": "green", "VETO": "red",
                "SHRINK": "yellow", "AGREE": "green", "DISAGREE": "red", "ABSTAIN": "yellow"}


# ----------------------------------------------------------------------------- pieces


def _text(x: Any, style: str = "") -> Text:
    """Any value as plain text (no markup parsing), numbers formatted short."""
    value = x if isinstance(x, str) and x else fmt_num(x) if not isinstance(x, str) else MISSING
    return Text(" ".join(value.split()), style=style or RESULT_STYLE.get(value, ""))


def _line(pairs: Iterable[tuple[str, Any]]) -> Text:
    """``label value · label value``, leaving out what the chain does not know."""
    out = Text()
    for label, value in pairs:
        if value in (None, "", MISSING):
            continue
        if out:
            out.append(" · ", style="dim")
        if label:
            out.append(f"{label} ", style="dim")
        out.append_text(_text(value))
    return out


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for h in headers:
        table.add_column(h, overflow="fold")
    for row in rows:
        table.add_row(*(_text(c) for c in row))
    return table


def _branch(tree: Tree, title: str, *items: Any) -> Tree:
    """A section of the tree; an empty one says so instead of vanishing."""
    node = tree.add(Text(title, style="bold"))
    shown = [i for i in items if i is not None and (not isinstance(i, Text) or i.plain)]
    for item in shown or [Text("nothing recorded", style="dim italic")]:
        node.add(item)
    return node


def _day(ns: Any) -> str:
    return fmt_ts(ns)[:10]


def _when(ns: Any, day: str) -> str:
    """The time of day when it is the decision's day (the header shows the date)."""
    full = fmt_ts(ns)
    return full[11:-4] if full[:10] == day and full != MISSING else full


def _quoted(text: Any) -> Text | None:
    return Text(str(text).strip(), style="italic") if text else None


# ----------------------------------------------------------------------------- header


def _header(chain: DecisionChain) -> Panel:
    p = chain.proposal or {}
    outcome = outcome_of(chain)
    title = Text.assemble((symbol_of(chain), "bold"), "  ",
                          (outcome, OUTCOME_STYLE.get(outcome, "bold")), "  ",
                          (fmt_ts(ts_of(chain)), "dim"))
    lines = [_line([("decision", chain.decision_id), ("incident", p.get("incident_id")),
                    ("verdict", p.get("verdict_id"))]),
             _line([("mode", p.get("mode")), ("action", p.get("action")),
                    ("revision", p.get("revision")), ("hash", hash_prefix(
                        p.get("proposal_hash")) if p.get("proposal_hash") else None)]),
             _line([("reason", p.get("reason"))])]
    return Panel(Group(*(line for line in lines if line.plain)), title=title,
                 title_align="left", box=box.ROUNDED)


# ----------------------------------------------------------------------------- sections


def _trip(tree: Tree, chain: DecisionChain) -> None:
    inc, row = payload_of(chain.incident), chain.incident or {}
    tripped = inc.get("tripped") if isinstance(inc.get("tripped"), Mapping) else {}
    recent = inc.get("recent") if isinstance(inc.get("recent"), Mapping) else {}
    market = inc.get("market") if isinstance(inc.get("market"), Mapping) else {}
    news = [(n.get("headline"), news_age(n, inc.get("ts_ns")), n.get("source"))
            for n in rows_of(inc.get("news"))]
    _branch(tree, f"Trip  {fmt_ts(row.get('ts_ns'))}" if row else "Trip",
            _line([("metric", inc.get("metric")), ("z", fmt_num(inc.get("z"), 4)),
                   ("value", inc.get("value")), ("price", inc.get("price")),
                   ("status", row.get("status"))]) if row else None,
            _line([("tripped", ", ".join(f"{k} z {fmt_num(v, 4)}" for k, v in tripped.items()))]),
            _line([("1 tick", fmt_pct(recent.get("ret_1_pct"))),
                   ("10 ticks", fmt_pct(recent.get("ret_10_pct"))),
                   ("snapshot", fmt_pct(recent.get("ret_all_pct"))),
                   ("down run", recent.get("down_run"))]) if recent else None,
            _line([(market.get("reference_symbol") or "reference",
                    fmt_pct(market.get("reference_move_pct"))),
                   ("market", fmt_pct(market.get("market_move_pct"))),
                   ("symbol", fmt_pct(market.get("symbol_move_pct")))]) if market else None,
            _table(("headline", "when", "source"), news) if news else
            (Text("no news in the window", style="dim") if row else None))


def _verdict(tree: Tree, chain: DecisionChain) -> None:
    v, pl = chain.verdict or {}, payload_of(chain.verdict)
    factors = [str(f) for f in pl.get("key_factors") or () if f]
    _branch(tree, f"Verdict  {fmt_ts(v.get('ts_ns'))}" if v else "Verdict",
            _line([("class", v.get("class")), ("confidence", fmt_num(v.get("confidence"), 3)),
                   ("route", pl.get("route")), ("model", pl.get("model")),
                   ("cost", fmt_usd(pl.get("cost_usd"))),
                   ("latency ms", fmt_num(pl.get("latency_ms"), 6))]) if v else None,
            _quoted(pl.get("reasoning")),
            _line([("key factors", "; ".join(factors))]))


def _proposal(tree: Tree, chain: DecisionChain) -> None:
    s, terms = part(chain, "strategist"), part(chain, "proposal")
    _branch(tree, "Proposal",
            _line([("strategist", s.get("action")), ("size", fmt_num(s.get("size"), 4)),
                   ("limit", s.get("limit_price")), ("stop", s.get("stop_loss")),
                   ("target", s.get("take_profit")),
                   ("confidence", fmt_num(s.get("confidence"), 3))]) if s else None,
            _quoted(s.get("rationale")),
            _line([("sized", terms.get("side")), ("qty", terms.get("quantity")),
                   ("type", terms.get("order_type")), ("limit", terms.get("limit_price")),
                   ("stop", terms.get("stop_loss")), ("target", terms.get("take_profit")),
                   ("ref", terms.get("reference_price"))]) if terms else None,
            _line([("hash", (chain.proposal or {}).get("proposal_hash"))]))


def _risk(tree: Tree, chain: DecisionChain) -> None:
    risk = part(chain, "risk")
    checks = [(c.get("name"), pass_fail(c.get("passed")), c.get("value"), c.get("limit"),
               c.get("allowed_quantity"), c.get("reason")) for c in rows_of(risk.get("checks"))]
    gates = [(g.get("name"), pass_fail(g.get("passed")), g.get("reason"))
             for g in rows_of(risk.get("gates"))]
    _branch(tree, "Risk gate",
            _line([("approved", pass_fail(risk.get("approved"))),
                   ("quantity", risk.get("quantity")),
                   ("requested", risk.get("requested_quantity")),
                   ("sizing", risk.get("sizing"))]) if risk else None,
            _table(("limit", "result", "value", "limit value", "allowed qty", "reason"), checks)
            if checks else None,
            _table(("gate", "result", "reason"), gates) if gates else None)


def _facts(tree: Tree, chain: DecisionChain) -> None:
    facts = [(f.get("name"), pass_fail(f.get("passed")), f.get("reason"))
             for f in rows_of(payload_of(chain.proposal).get("facts"))]
    _branch(tree, "Fact check", _table(("fact", "result", "reason"), facts) if facts else None)


def _double_check(tree: Tree, chain: DecisionChain) -> None:
    d = part(chain, "double_check")
    concerns = [str(c) for c in d.get("concerns") or () if c]
    _branch(tree, "Double check",
            _line([("verdict", d.get("verdict")), ("confidence", fmt_num(d.get("confidence"), 3)),
                   ("max size", d.get("max_size")), ("source", d.get("source")),
                   ("blind", "no" if d.get("blind") is False else "yes")]) if d else None,
            Text(BLIND_NOTE, style="dim") if d and d.get("blind") is not False else None,
            _line([("concerns", "; ".join(concerns))]))


def _signatures(tree: Tree, chain: DecisionChain) -> None:
    current = (chain.proposal or {}).get("proposal_hash")
    day = _day(ts_of(chain))
    rows = [(_when(s.ts_ns, day), s.signer, s.verdict, hash_prefix(s.proposal_hash)
             + ("" if s.proposal_hash == current else " (other revision)"), s.reason)
            for s in chain.signatures]
    valid = bool(current) and verify_signatures(current, chain.signatures).valid
    _branch(tree, "Signatures",
            _table(("time", "signer", "verdict", "hash", "reason"), rows) if rows else None,
            Text(signature_check(chain), style="green" if valid else "red"))


def _approval(tree: Tree, chain: DecisionChain) -> None:
    a = chain.approval
    _branch(tree, "Approval",
            _line([("status", a.status), ("by", a.decided_by), ("at", fmt_ts(a.decided_ns)),
                   ("expires", fmt_ts(a.expires_ns)), ("note", a.note)]) if a else
            Text("no approval was requested", style="dim"))


def _order_line(o: Mapping[str, Any], day: str) -> Text:
    # One line per order (a decision has one or two): a 12-column table would wrap.
    pl = payload_of(o)
    return _line([("", o.get("client_order_id")), ("", o.get("backend")),
                   ("", f"{o.get('side') or '?'} {fmt_num(o.get('qty'))} "
                        f"{o.get('order_type') or '?'}"), ("limit", o.get("price")),
                   ("", o.get("status")),
                   ("filled", f"{fmt_num(pl.get('filled_qty'))} @ "
                              f"{fmt_num(pl.get('avg_fill_price'))}"
                    if pl.get("filled_qty") else None),
                   ("stop", pl.get("stop_loss")), ("target", pl.get("take_profit")),
                   ("placed", _when(o.get("ts_ns"), day))])


def _orders(tree: Tree, chain: DecisionChain) -> None:
    day = _day(ts_of(chain))
    _branch(tree, "Order", *[_order_line(o, day) for o in chain.orders] or
            [Text("no order was sent", style="dim")])


def _fills(tree: Tree, chain: DecisionChain) -> None:
    day = _day(ts_of(chain))
    rows = [(_when(f.get("ts_ns"), day), f.get("client_order_id"), f.get("kind"), f.get("side"),
             f.get("qty"), f.get("price"), f.get("fee")) for f in chain.fills]
    _branch(tree, "Fills",
            _table(("time", "order", "kind", "side", "qty", "price", "fee"), rows) if rows else
            Text("no fills", style="dim"))


def _outcome(tree: Tree, chain: DecisionChain) -> None:
    p, outcome = chain.proposal or {}, outcome_of(chain)
    _branch(tree, "Outcome",
            Text.assemble((outcome, OUTCOME_STYLE.get(outcome, "bold")),
                          ("  " + fmt_ts(p.get("updated_ns")), "dim") if p.get("outcome")
                          else ("  still in flight", "dim")),
            _quoted(p.get("reason")))


SECTIONS = (_trip, _verdict, _proposal, _risk, _facts, _double_check, _signatures, _approval,
            _orders, _fills, _outcome)


def _timeline(chain: DecisionChain) -> Table:
    table = Table(title="Bus messages", title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False)
    for col in ("time", "from → to", "kind"):
        table.add_column(col)
    day = _day(ts_of(chain))
    for m in sorted(chain.messages, key=lambda m: (m.get("ts_ns") or 0, m.get("id") or 0)):
        table.add_row(_text(_when(m.get("ts_ns"), day)),
                      Text(f"{m.get('sender') or '?'} → {m.get('recipient') or '?'}"),
                      _text(m.get("kind")))
    return table


def render_explain(chain: DecisionChain, console: Console) -> None:
    """Print the chain: header panel, the tree in time order, the bus timeline."""
    console.print(_header(chain))
    tree = Tree(Text(f"decision {chain.decision_id}", style="bold"), guide_style="dim")
    for section in SECTIONS:
        section(tree, chain)
    console.print(tree)
    if chain.messages:
        console.print(_timeline(chain))


# ----------------------------------------------------------------------------- JSON


def jsonable(x: Any) -> Any:
    """``x`` with only JSON types: dataclasses and mappings as dicts, tuples as lists,
    enums as their values, NaN/inf as None (strict JSON has no NaN)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | set | frozenset):
        return [jsonable(v) for v in x]
    if isinstance(x, enum.Enum):
        return jsonable(x.value)
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, str | int | bool):
        return x
    return str(x)  # e.g. a Decimal or datetime from a driver: readable, never a crash


def explain_json(chain: DecisionChain) -> dict[str, Any]:
    """The full chain as JSON-ready data, with the outcome and the signature check."""
    proposal_hash = (chain.proposal or {}).get("proposal_hash")
    check = verify_signatures(proposal_hash, chain.signatures) if proposal_hash else None
    return {
        "decision_id": chain.decision_id,
        "symbol": symbol_of(chain),
        "outcome": outcome_of(chain),
        "signature_check": {"valid": bool(check and check.valid),
                            "reason": signature_check(chain)},
        **{key: jsonable(getattr(chain, key)) for key in (
            "incident", "verdict", "proposal", "signatures", "approval", "orders", "fills",
            "messages")},
    }
