"""The decision journal: one human-readable markdown file per decision.

:func:`render_journal` turns a :class:`~tripwire.store.decisions.DecisionChain` into markdown
that reads well with ``cat``: the trip, the verdict, the proposal, each of the three checks,
the signatures, the approval, the order and its fills, and how it ended. Only known fields
are rendered (never a raw payload wholesale), so nothing the chain does not mean to show can
leak into a file that is meant to be shared.

:func:`write_journal` files it as ``<root>/<YYYY-MM-DD>/<HH-MM-SS>-<SYMBOL>-<outcome>.md``
(UTC, from the proposal's time). Two decisions in the same second on the same symbol with the
same outcome get ``-2``, ``-3``... and never overwrite each other; writing the *same*
decision again replaces its own file (the decision id in the header says whose it is), so a
retry is idempotent. Every write goes to a temporary file first, so a reader never sees half
an entry.

>>> chain = DecisionChain("d-1", proposal={"symbol": "BTCUSDT", "outcome": "DRY_RUN",
...                                         "ts_ns": 1_714_564_800_000_000_000})
>>> entry_name(chain)
('2024-05-01', '12-00-00-BTCUSDT-dry_run')
>>> render_journal(chain).splitlines()[0]
'# BTCUSDT · DRY_RUN · 2024-05-01 12:00:00.000 UTC'
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tripwire.decisions.signatures import verify_signatures
from tripwire.store.decisions import DecisionChain

NS = 1_000_000_000
HASH_PREFIX = 12  # enough to tell revisions apart at a glance
MISSING = "—"
_DECISION_LINE = re.compile(r"^- \*\*Decision:\*\* `(?P<id>[^`]*)`\s*$", re.MULTILINE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # e.g. Polymarket ids with ':' or '/'
HEADER_LINES = 12  # the decision id sits in the first lines; no need to read a whole file


# ----------------------------------------------------------------------------- formatting


def fmt_ts(ns: Any) -> str:
    """``2024-05-01 12:00:00.000 UTC`` (ms), or a dash for a missing time."""
    if not isinstance(ns, int) or isinstance(ns, bool) or ns <= 0:
        return MISSING
    dt = datetime.fromtimestamp(ns // NS, UTC)
    return f"{dt:%Y-%m-%d %H:%M:%S}.{(ns % NS) // 1_000_000:03d} UTC"


def fmt_num(x: Any, digits: int = 10) -> str:
    """A number as short as it can be without losing what a reader needs."""
    if x is None:
        return MISSING
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}g}" if math.isfinite(x) else MISSING
    return str(x)


def fmt_pct(x: Any) -> str:
    return f"{x:+.2f}%" if isinstance(x, int | float) and math.isfinite(x) else MISSING


def fmt_usd(x: Any) -> str:
    return f"${x:.4f}" if isinstance(x, int | float) and math.isfinite(x) else MISSING


def pass_fail(passed: Any) -> str:
    return "PASS" if passed is True else "FAIL" if passed is False else MISSING


def hash_prefix(h: Any) -> str:
    return str(h)[:HASH_PREFIX] if h else MISSING


def outcome_of(chain: DecisionChain) -> str:
    """The outcome (``EXECUTED``...), or ``PENDING`` while the decision is in flight."""
    outcome = (chain.proposal or {}).get("outcome")
    return str(outcome) if outcome else "PENDING"


def symbol_of(chain: DecisionChain) -> str:
    for row in (chain.proposal, chain.incident, chain.verdict):
        if row and row.get("symbol"):
            return str(row["symbol"])
    return "UNKNOWN"


def ts_of(chain: DecisionChain) -> int:
    """The proposal's time (the journal files by it); the trip's when there is none."""
    for row in (chain.proposal, chain.incident, chain.verdict):
        ts = (row or {}).get("ts_ns")
        if isinstance(ts, int) and ts > 0:
            return ts
    return 0


def part(chain: DecisionChain, key: str) -> dict[str, Any]:
    """One part of the proposal's payload (``risk``, ``facts``...), {} when absent."""
    value = payload_of(chain.proposal).get(key)
    return value if isinstance(value, Mapping) else {}


def rows_of(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in a list payload (checks, facts), skipping anything malformed."""
    if not isinstance(value, list | tuple):
        return []
    return [r for r in value if isinstance(r, Mapping)]


def payload_of(row: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A row's payload mapping, {} when absent or malformed."""
    payload = (row or {}).get("payload")
    return payload if isinstance(payload, Mapping) else {}


def inert(text: str) -> str:
    """Outside text (headlines, an LLM's reasoning) made inert in markdown: no raw HTML
    (angle brackets become entities) and no links or images (brackets escaped), so a
    journal viewer shows the text instead of running or fetching it.

    >>> inert('<img src=x onerror=alert(1)> [win](http://x)')
    '&lt;img src=x onerror=alert(1)&gt; \\\\[win\\\\](http://x)'
    """
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("[", "\\[").replace("]", "\\]"))


def _cell(x: Any) -> str:
    """A table cell: one line, pipes escaped (a reason may contain either), inert."""
    text = fmt_num(x) if not isinstance(x, str) else (x or MISSING)
    return inert(" ".join(text.split())).replace("|", "\\|")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """A bullet list of ``label: value``, leaving out what the chain does not know."""
    return "\n".join(f"- **{k}:** {v}" for k, v in pairs if v not in (None, "", MISSING))


def _quote(text: Any) -> str:
    """Free text (reasoning, rationale) as a blockquote, so it cannot break the layout."""
    lines = inert(str(text or "")).strip().splitlines()
    return "\n".join(f"> {line}".rstrip() for line in lines)


def _section(title: str, *blocks: str) -> str:
    body = "\n\n".join(b for b in blocks if b) or "_nothing recorded_"
    return f"## {title}\n\n{body}"


# ----------------------------------------------------------------------------- sections


def _title(chain: DecisionChain) -> str:
    p = chain.proposal or {}
    head = f"# {symbol_of(chain)} · {outcome_of(chain)} · {fmt_ts(ts_of(chain))}"
    fields = _fields([
        ("Decision", f"`{chain.decision_id}`"),
        ("Incident", f"`{p['incident_id']}`" if p.get("incident_id") else None),
        ("Verdict", f"`{p['verdict_id']}`" if p.get("verdict_id") else None),
        ("Mode", p.get("mode")),
        ("Action", p.get("action")),
        ("Revision", fmt_num(p.get("revision"))),
    ])
    return f"{head}\n\n{fields}"


def _trip(chain: DecisionChain) -> str:
    inc = payload_of(chain.incident)
    if not chain.incident:
        return _section("Trip")
    tripped = inc.get("tripped") if isinstance(inc.get("tripped"), Mapping) else {}
    facts = _fields([
        ("Time", fmt_ts(chain.incident.get("ts_ns"))),
        ("Metric", inc.get("metric")),
        ("z", fmt_num(inc.get("z"), 4)),
        ("Value", fmt_num(inc.get("value"))),
        ("Price", fmt_num(inc.get("price"))),
        ("Tripped", ", ".join(f"{k} (z {fmt_num(v, 4)})" for k, v in tripped.items())),
        ("Status", chain.incident.get("status")),
    ])
    return _section("Trip", facts, _recent(inc), _market(inc), _news(inc))


def _recent(inc: Mapping[str, Any]) -> str:
    r = inc.get("recent")
    if not isinstance(r, Mapping):
        return ""
    return "**Recent move:** " + ", ".join([
        f"1 tick {fmt_pct(r.get('ret_1_pct'))}", f"10 ticks {fmt_pct(r.get('ret_10_pct'))}",
        f"50 ticks {fmt_pct(r.get('ret_50_pct'))}",
        f"snapshot {fmt_pct(r.get('ret_all_pct'))} over {fmt_num(r.get('ticks'))} ticks / "
        f"{fmt_num(r.get('span_s'), 4)} s",
        f"runs down {fmt_num(r.get('down_run'))} / up {fmt_num(r.get('up_run'))}",
        *([f"volume {fmt_num(r['volume_vs_window'], 3)}x the window"]
          if r.get("volume_vs_window") is not None else [])])


def _market(inc: Mapping[str, Any]) -> str:
    m = inc.get("market")
    if not isinstance(m, Mapping):
        return ""
    return (f"**Market ({fmt_num(m.get('horizon_s'), 4)} s):** "
            f"{m.get('reference_symbol') or 'reference'} {fmt_pct(m.get('reference_move_pct'))}, "
            f"market {fmt_pct(m.get('market_move_pct'))}, "
            f"symbol {fmt_pct(m.get('symbol_move_pct'))}")


def news_age(item: Mapping[str, Any], trip_ns: Any) -> str:
    """How long before the trip a headline came (``age_s``, or from its ``ts_ns``)."""
    age = item.get("age_s")
    if age is None and isinstance(item.get("ts_ns"), int) and isinstance(trip_ns, int):
        age = (trip_ns - item["ts_ns"]) / NS
    return f"{fmt_num(age, 4)} s before" if age is not None else MISSING


def _news(inc: Mapping[str, Any]) -> str:
    news = rows_of(inc.get("news"))
    if not news:
        return "**News:** none in the window"
    rows = [(n.get("headline"), news_age(n, inc.get("ts_ns")), n.get("source"),
             "symbol" if n.get("about_symbol") else "market") for n in news]
    return "**News:**\n\n" + _table(("headline", "when", "source", "about"), rows)


def _verdict(chain: DecisionChain) -> str:
    v = chain.verdict
    if not v:
        return _section("Verdict")
    pl = payload_of(v)
    factors = [str(f) for f in pl.get("key_factors") or () if f]
    facts = _fields([
        ("Class", v.get("class") or pl.get("classification")),
        ("Confidence", fmt_num(v.get("confidence", pl.get("confidence")), 3)),
        ("Time", fmt_ts(v.get("ts_ns"))),
        ("Route", pl.get("route")), ("Model", pl.get("model")), ("Source", pl.get("source")),
        ("Cost", fmt_usd(pl.get("cost_usd"))),
        ("Latency", f"{fmt_num(pl.get('latency_ms'), 6)} ms"
         if pl.get("latency_ms") is not None else None),
    ])
    key = "**Key factors:**\n\n" + "\n".join(f"- {f}" for f in factors) if factors else ""
    return _section("Verdict", facts, _quote(pl.get("reasoning")), key, _panel(pl.get("panel")))


def _panel(panel: Any) -> str:
    """The consensus panel's vote (tripwire.decisions.panel): every member's answer, the
    dissent and the failed members; "" when the verdict is one analyst's."""
    if not isinstance(panel, Mapping):
        return ""
    members = panel.get("members") if isinstance(panel.get("members"), Mapping) else {}
    dissent = {str(m) for m in panel.get("dissent") or ()}
    rows = []
    for name, answer in sorted(members.items()):
        a = answer if isinstance(answer, Mapping) else {}
        role = "failed" if not a else "dissent" if name in dissent else "majority"
        rows.append((str(name), role, str(a.get("classification") or MISSING),
                     fmt_num(a.get("confidence"), 3) if a else MISSING))
    state = "consensus" if panel.get("reached") else "no consensus (IGNORE, no decision)"
    head = f"**Panel:** {state}, threshold {fmt_num(panel.get('threshold'))}"
    return head + "\n\n" + _table(("member", "vote", "class", "confidence"), rows)


def _proposal(chain: DecisionChain) -> str:
    p = chain.proposal or {}
    return _section("Proposal", _strategist(part(chain, "strategist")),
                    _sized(part(chain, "proposal"), p.get("proposal_hash")))


def _strategist(s: Mapping[str, Any]) -> str:
    if not s:
        return ""
    facts = _fields([
        ("Action", s.get("action")), ("Size", f"{fmt_num(s.get('size'), 4)} of the maximum "
                                              "position" if s.get("size") is not None else None),
        ("Limit", fmt_num(s.get("limit_price")) if s.get("limit_price")
         else None if s.get("action") == "HOLD" else "market"),
        ("Stop loss", fmt_num(s.get("stop_loss"))), ("Take profit", fmt_num(s.get("take_profit"))),
        ("Confidence", fmt_num(s.get("confidence"), 3)), ("Source", s.get("source")),
    ])
    return f"**Strategist**\n\n{facts}\n\n{_quote(s.get('rationale'))}".rstrip()


SIZED_FIELDS = (("side", "Side"), ("quantity", "Quantity"), ("order_type", "Type"),
                ("limit_price", "Limit"), ("stop_loss", "Stop loss"),
                ("take_profit", "Take profit"), ("reference_price", "Reference price"),
                ("position_qty", "Position assumed"), ("confidence", "Confidence"),
                ("revision", "Revision"))


def _sized(terms: Mapping[str, Any], proposal_hash: Any) -> str:
    rows = [(label, terms.get(key)) for key, label in SIZED_FIELDS if key in terms]
    table = _table(("term", "value"), rows) if rows else ""
    hash_line = f"**Proposal hash:** `{proposal_hash}`" if proposal_hash else ""
    head = "**Sized order (what the signers signed)**" if rows else ""
    return "\n\n".join(b for b in (head, table, hash_line) if b)


def _risk(chain: DecisionChain) -> str:
    risk = part(chain, "risk")
    if not risk:
        return _section("Risk gate")
    facts = _fields([("Approved", pass_fail(risk.get("approved"))),
                     ("Quantity", f"{fmt_num(risk.get('quantity'))} of "
                                  f"{fmt_num(risk.get('requested_quantity'))} requested"),
                     ("Sizing", risk.get("sizing"))])
    checks = [(c.get("name"), pass_fail(c.get("passed")), c.get("value"), c.get("limit"),
               c.get("allowed_quantity"), c.get("reason")) for c in rows_of(risk.get("checks"))]
    gates = [(g.get("name"), pass_fail(g.get("passed")), g.get("reason"))
             for g in rows_of(risk.get("gates"))]
    return _section(
        "Risk gate", facts,
        _table(("limit", "result", "value", "limit value", "allowed qty", "reason"), checks)
        if checks else "",
        _table(("gate", "result", "reason"), gates) if gates else "")


def _facts(chain: DecisionChain) -> str:
    facts = rows_of(payload_of(chain.proposal).get("facts"))
    rows = [(f.get("name"), pass_fail(f.get("passed")), f.get("reason")) for f in facts]
    return _section("Fact check", _table(("fact", "result", "reason"), rows) if rows else "")


BLIND_NOTE = "saw the raw facts and the proposal's numbers, not the strategist's reasoning"


def _double_check(chain: DecisionChain) -> str:
    d = part(chain, "double_check")
    if not d:
        return _section("Double check")
    concerns = [str(c) for c in d.get("concerns") or () if c]
    facts = _fields([
        ("Verdict", d.get("verdict")), ("Confidence", fmt_num(d.get("confidence"), 3)),
        ("Max size", fmt_num(d.get("max_size"), 4) if d.get("max_size") is not None else None),
        ("Source", d.get("source")),
        ("Blind", "no" if d.get("blind") is False else f"yes ({BLIND_NOTE})"),
    ])
    listed = "**Concerns:**\n\n" + "\n".join(f"- {c}" for c in concerns) if concerns else ""
    return _section("Double check", facts, listed or "**Concerns:** none")


def signature_check(chain: DecisionChain) -> str:
    """What execution would say about these signatures over the current proposal hash."""
    proposal_hash = (chain.proposal or {}).get("proposal_hash")
    if not proposal_hash:
        return "no proposal hash: nothing could be signed"
    return verify_signatures(proposal_hash, chain.signatures).reason


def _signatures(chain: DecisionChain) -> str:
    current = (chain.proposal or {}).get("proposal_hash")
    rows = [(s.signer, s.verdict, hash_prefix(s.proposal_hash)
             + ("" if s.proposal_hash == current else " (other revision)"),
             s.reason, fmt_ts(s.ts_ns)) for s in chain.signatures]
    if not rows:
        return _section("Signatures", "_no signatures_")
    table = _table(("signer", "verdict", "hash", "reason", "time"), rows)
    return _section("Signatures", table, f"**Check:** {signature_check(chain)}")


def _approval(chain: DecisionChain) -> str:
    a = chain.approval
    note = payload_of(chain.proposal).get("approval")
    if a is None:
        return _section("Approval", "_no approval was requested_"
                        + (f": {_cell(note)}" if note else ""))
    return _section("Approval", _fields([
        ("Status", a.status), ("Decided by", a.decided_by),
        ("Decided", fmt_ts(a.decided_ns)), ("Requested", fmt_ts(a.requested_ns)),
        ("Expires", fmt_ts(a.expires_ns)), ("Hash", f"`{hash_prefix(a.proposal_hash)}`"),
        ("Summary", a.summary), ("Note", a.note),
        ("Graph note", note if isinstance(note, str) else None)]))


def _orders(chain: DecisionChain) -> str:
    orders = [(o.get("client_order_id"), o.get("backend"), o.get("side"), o.get("order_type"),
               o.get("qty"), o.get("price"), o.get("status"), payload_of(o).get("filled_qty"),
               payload_of(o).get("avg_fill_price"), payload_of(o).get("stop_loss"),
               payload_of(o).get("take_profit"), fmt_ts(o.get("ts_ns")))
              for o in chain.orders]
    fills = [(fmt_ts(f.get("ts_ns")), f.get("client_order_id"), f.get("kind"), f.get("side"),
              f.get("qty"), f.get("price"), f.get("fee")) for f in chain.fills]
    return _section(
        "Order and fills",
        _table(("client order id", "backend", "side", "type", "qty", "limit", "status",
                "filled", "avg price", "stop", "target", "placed"), orders)
        if orders else "_no order was sent_",
        _table(("time", "order", "kind", "side", "qty", "price", "fee"), fills)
        if fills else ("_no fills_" if orders else ""))


def _outcome(chain: DecisionChain) -> str:
    p = chain.proposal or {}
    decided = fmt_ts(p.get("updated_ns")) if p.get("outcome") else None
    return _section("Outcome", _fields([
        ("Outcome", outcome_of(chain) if p.get("outcome") else "PENDING (still in flight)"),
        ("Reason", p.get("reason")), ("Decided", decided)]))


SECTIONS = (_trip, _verdict, _proposal, _risk, _facts, _double_check, _signatures, _approval,
            _orders, _outcome)


def render_journal(chain: DecisionChain) -> str:
    """The decision as markdown, title first, sections from the trip to the outcome."""
    return "\n\n".join([_title(chain), *(section(chain) for section in SECTIONS)]) + "\n"


# ----------------------------------------------------------------------------- files


def journal_root(data_dir: Path | str) -> Path:
    """Where the journal lives under a data directory: ``<data_dir>/context/journal``."""
    return Path(data_dir) / "context" / "journal"


def entry_name(chain: DecisionChain) -> tuple[str, str]:
    """(day directory, file stem without suffix) for a decision, from its time in UTC."""
    dt = datetime.fromtimestamp(ts_of(chain) // NS, UTC)
    return f"{dt:%Y-%m-%d}", f"{dt:%H-%M-%S}-{_file_symbol(chain)}-{outcome_of(chain).lower()}"


def _file_symbol(chain: DecisionChain) -> str:
    return _UNSAFE.sub("_", symbol_of(chain)).strip("._") or "UNKNOWN"


def decision_in(path: Path) -> str | None:
    """The decision id in an existing entry's header, or None (not an entry, unreadable)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            head = "".join(line for _, line in zip(range(HEADER_LINES), f, strict=False))
    except OSError:
        return None
    m = _DECISION_LINE.search(head)
    return m.group("id") if m else None


def _candidates(day: Path, stem: str) -> Iterable[Path]:
    yield day / f"{stem}.md"
    n = 2
    while True:
        yield day / f"{stem}-{n}.md"
        n += 1


def write_journal(chain: DecisionChain, root: Path | str) -> Path:
    """Write (or rewrite) the decision's entry under ``root``; the path written."""
    day_name, stem = entry_name(chain)
    day = Path(root) / day_name
    day.mkdir(parents=True, exist_ok=True)
    tmp = _temp_with(day, render_journal(chain))
    try:
        for path in _candidates(day, stem):
            if _claim(tmp, path, chain.decision_id):
                _drop_pending(day, path, chain)
                return path
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    raise AssertionError("unreachable: the candidate names never end")


def _drop_pending(day: Path, written: Path, chain: DecisionChain) -> None:
    """Remove this decision's in-flight entry once its final one is written: an outcome is
    final, so the ``-pending`` file would only contradict it."""
    if outcome_of(chain) == "PENDING":
        return
    for path in day.glob(f"*-{_file_symbol(chain)}-pending*.md"):
        if path != written and decision_in(path) == chain.decision_id:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _temp_with(day: Path, text: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=".journal-", suffix=".tmp", dir=day)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return Path(name)


def _claim(tmp: Path, path: Path, decision_id: str) -> bool:
    """Put the entry at ``path`` unless another decision owns it; True when written."""
    if decision_in(path) == decision_id:
        os.replace(tmp, path)  # the same decision again: replace its own entry
        return True
    try:
        # A hard link never replaces an existing file, so two writers racing for one name
        # cannot clobber each other; the loser moves on to the next suffix.
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: check, then replace
        if path.exists():
            return False
        os.replace(tmp, path)
    return True
