"""Safety modes: how far a signed decision may travel towards an exchange.

* ``DRY_RUN``: everything runs and is journaled, but no order is ever sent;
* ``TWO_PHASE``: an order is sent only after a person approves it (approvals expire);
* ``DIRECT``: three valid signatures are enough to send the order.

DRY_RUN is the default because failing closed means "no order unless asked for one".

>>> parse_safety_mode("two_phase")
<SafetyMode.TWO_PHASE: 'TWO_PHASE'>
>>> SafetyMode.DRY_RUN.sends_orders, SafetyMode.TWO_PHASE.needs_human_approval
(False, True)
>>> parse_safety_mode("yolo")
Traceback (most recent call last):
...
ValueError: risk.mode must be one of DRY_RUN, TWO_PHASE, DIRECT, got 'yolo'
"""

from __future__ import annotations

from enum import StrEnum


class SafetyMode(StrEnum):
    """How a signed decision becomes (or does not become) an order."""

    DRY_RUN = "DRY_RUN"
    TWO_PHASE = "TWO_PHASE"
    DIRECT = "DIRECT"

    @property
    def sends_orders(self) -> bool:
        """Whether an approved decision in this mode may reach an execution backend."""
        return self is not SafetyMode.DRY_RUN

    @property
    def needs_human_approval(self) -> bool:
        """Whether a person must approve before the order is sent."""
        return self is SafetyMode.TWO_PHASE


DEFAULT_SAFETY_MODE = SafetyMode.DRY_RUN


def parse_safety_mode(value: str | SafetyMode, key: str = "risk.mode") -> SafetyMode:
    """Read a mode case-insensitively; a bad value raises ValueError naming ``key``."""
    if isinstance(value, SafetyMode):
        return value
    text = str(value).strip().upper().replace("-", "_")
    try:
        return SafetyMode(text)
    except ValueError:
        names = ", ".join(m.value for m in SafetyMode)
        raise ValueError(f"{key} must be one of {names}, got {value!r}") from None
