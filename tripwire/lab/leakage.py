"""The leakage guard: a window before a model's training cutoff is not out-of-sample.

A model trained on text up to its cutoff may have read about the days in question (a
crash, a hack, a listing), so its verdicts on market data from before the cutoff can look
better than they would live. ``tripwire eval`` on stored real data marks each policy's
window: ``out_of_sample`` True only when the window starts on or after every cutoff of
the routes that answered; None when a route's cutoff is unknown (not configured); the
rules analyst and the fixed rules have no training data (always out-of-sample). Synthetic
markets are out-of-sample by construction (no model has seen them).

>>> from datetime import date
>>> status(1_700_000_000 * 10**9, ["2024-06-01"])["out_of_sample"]
False
>>> status(1_800_000_000 * 10**9, ["2024-06-01"])["out_of_sample"]
True
>>> status(1_800_000_000 * 10**9, [None])["out_of_sample"] is None
True
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

UNTRAINED_PROVIDERS = frozenset({"rules", "fixed"})


def cutoff_ns(cutoff: str) -> int:
    d = datetime.strptime(cutoff, "%Y-%m-%d").replace(tzinfo=UTC)
    return int(d.timestamp()) * 10**9


def status(window_start_ns: int, cutoffs: Iterable[str | None]) -> dict[str, Any]:
    """Whether a window starting at ``window_start_ns`` is out-of-sample for these cutoffs
    (one per trained route that answered; None: that route's cutoff is unknown)."""
    cuts = list(cutoffs)
    if not cuts:
        return {"out_of_sample": True, "why": "no trained model answered"}
    if any(c is None for c in cuts):
        return {"out_of_sample": None,
                "why": "a route has no training_cutoff configured: out-of-sample unknown"}
    latest = max(cuts)
    if window_start_ns < cutoff_ns(latest):
        return {"out_of_sample": False,
                "why": f"the window starts before the training cutoff {latest}: NOT "
                       "out-of-sample (the model may have seen these days)"}
    return {"out_of_sample": True, "why": f"after the training cutoff {latest}"}


def trained_cutoffs(llm_config: Any) -> list[str | None]:
    """The cutoffs of an [llm] config's trained routes (rules/fixed carry none)."""
    if llm_config is None:
        return []
    return [r.training_cutoff for r in llm_config.routes
            if r.provider not in UNTRAINED_PROVIDERS]
