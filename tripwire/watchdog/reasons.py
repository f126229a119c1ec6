"""Halt reasons and the acknowledgement an operator must write to resume.

A halt reason reads ``"<code>: <detail>"``. The code says which invariant broke; resuming
needs a written acknowledgement that names it, so nobody resumes without having read why
the system stopped.

>>> halt_code("drawdown_cap: drawdown 12.00% > cap 10.00%")
'drawdown_cap'
>>> halt_code("Heartbeat Stale: shard:0 is 31.0 s old")
'heartbeat_stale'
>>> acknowledgement_error("drawdown_cap: 12% > 10%", "checked the drawdown cap, sized down")
>>> acknowledgement_error("drawdown_cap: 12% > 10%", "DRAWDOWN_CAP reviewed") is None
True
>>> acknowledgement_error("drawdown_cap: 12% > 10%", "ok")
"the acknowledgement must name the halt's code 'drawdown_cap' (e.g. 'drawdown_cap checked: ...')"
>>> acknowledgement_error("operator: maintenance", "   ")
'the acknowledgement is empty: write what was checked before resuming'
"""

from __future__ import annotations

from dataclasses import dataclass

HEARTBEAT_STALE = "heartbeat_stale"
DRAWDOWN_CAP = "drawdown_cap"
EXPOSURE_CAP = "exposure_cap"
STOP_MISSING = "stop_missing"
# A position's mark is older than the bound, or its venue refused its ticks: its stop is
# not being checked against the market, so nothing limits its loss.
MARK_STALE = "mark_stale"
DATABASE_UNREACHABLE = "database_unreachable"
# Written when the database comes back after the watchdog saw it unreachable: whatever ran
# (or did not) while nobody could read the flag is reviewed before trading resumes.
DATABASE_OUTAGE = "database_outage"
ACCOUNT_UNREADABLE = "account_unreadable"
OPERATOR = "operator"
CODES = (HEARTBEAT_STALE, DRAWDOWN_CAP, EXPOSURE_CAP, STOP_MISSING, MARK_STALE,
         DATABASE_UNREACHABLE,
         DATABASE_OUTAGE, ACCOUNT_UNREADABLE, OPERATOR)


@dataclass(frozen=True, slots=True)
class Breach:
    """One broken invariant: its code and a sentence saying by how much."""

    code: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


def _normal(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())


def halt_code(reason: str) -> str:
    """The code of a halt reason: the text before the first ``:`` (lowercase, ``_`` joined).

    A reason without a ``:`` is its own code, so the acknowledgement still has to name it.
    """
    head = (reason or "").split(":", 1)[0]
    return _normal(head).replace(" ", "_")


def reason_for(breaches: list[Breach]) -> str:
    """One halt reason for several breaches: the first one's code leads."""
    if not breaches:
        raise ValueError("reason_for needs at least one breach")
    return "; ".join(b.reason for b in breaches)


def operator_reason(text: str) -> str:
    """An operator's free-text reason, prefixed ``operator:`` unless it already has a code."""
    text = (text or "").strip()
    if not text:
        raise ValueError("the halt reason is empty: say why trading stops")
    return text if halt_code(text) in CODES and ":" in text else f"{OPERATOR}: {text}"


def acknowledgement_error(reason: str, acknowledgement: str) -> str | None:
    """None when ``acknowledgement`` is non-blank and names ``reason``'s code, else why not.

    The code may be written with ``_`` or spaces, in any case.
    """
    if not (acknowledgement or "").strip():
        return "the acknowledgement is empty: write what was checked before resuming"
    code = halt_code(reason)
    if code and _normal(code) not in _normal(acknowledgement):
        return (f"the acknowledgement must name the halt's code {code!r} "
                f"(e.g. '{code} checked: ...')")
    return None
