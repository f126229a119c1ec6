"""argparse value types shared by the commands: a bad value is a usage error (exit 2)
whose message names what was expected.

>>> int_in(1)("3"), positive_float("0.5")
(3, 0.5)
>>> int_in(0, 65535)("70000")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected an integer in 0..65535, got 70000
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from tripwire.timeparse import parse_time_ns


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer >= lo (and <= hi when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def time_ns(text: str) -> int:
    """An ISO-8601 time (UTC unless it says otherwise) or integer nanoseconds."""
    try:
        return parse_time_ns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
