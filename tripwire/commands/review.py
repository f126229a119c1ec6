"""``tripwire review --day YYYY-MM-DD``: the nightly review (:mod:`tripwire.review`).

Scores the day's vetoes and HOLDs against what the market did next and flags signers,
limits, skills and detectors; writes a markdown report (``--out``) and never changes a
setting. Exit codes: 0 written, 1 a store failed, 2 bad usage (the message names the
argument).
"""

from __future__ import annotations

import argparse

from tripwire.commands.common import add_config, add_json, lazy


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="score a day's vetoes and HOLDs against the market; "
                       "flag what vetoes or trips too often (changes no setting)",
                       description=__doc__)
    from tripwire.review import add_arguments

    add_arguments(p)
    add_config(p)
    add_json(p)
    p.set_defaults(func=lazy("tripwire.review", "run"))
