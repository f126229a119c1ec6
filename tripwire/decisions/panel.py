"""The consensus panel: several analysts with different skills vote on one incident.

With ``[panel] enabled = true`` the triage graph asks every role of ``members`` (each a
``skills/<role>/SKILL.md`` answering a :class:`~tripwire.llm.schemas.TriageVerdict`) at
once, and :func:`vote` turns their answers into one verdict:

* the class named by the most members wins if at least ``threshold`` members named it and
  no other class has as many votes;
* its confidence is the mean confidence of the members who named it times the share of
  the whole panel they are (a dissent, or a member that failed, lowers it);
* otherwise the panel has no consensus and the verdict is IGNORE with confidence 0: the
  graph then ends the incident in a HOLD without asking the strategist (fail closed), and
  the miss is counted.

Every member's answer, the dissenters and the failed members are recorded with the verdict
and on the bus (the journal shows them). A member that errs or times out counts as a
failed member, never as a vote.

>>> from tripwire.llm.schemas import TriageVerdict
>>> def v(c, conf=0.8):
...     return TriageVerdict(classification=c, confidence=conf, reasoning="r",
...                          key_factors=[c.lower()], source="rules")
>>> r = vote({"a": v("NEWS_DRIVEN"), "b": v("NEWS_DRIVEN", 0.6), "c": v("IGNORE")}, 2)
>>> r.reached, r.verdict.classification.value, round(r.verdict.confidence, 3), r.dissent
(True, 'NEWS_DRIVEN', 0.467, ['c'])
>>> r = vote({"a": v("NEWS_DRIVEN"), "b": None, "c": v("IGNORE")}, 2)
>>> r.reached, r.verdict.classification.value, r.verdict.confidence, r.failed
(False, 'IGNORE', 0.0, ['b'])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tripwire.llm.schemas import TriageVerdict

PANEL_ROLES = ("order-flow-analyst", "news-analyst", "market-context-analyst")
MAX_MEMBERS = 8
_KEYS = ("enabled", "members", "threshold")


@dataclass(frozen=True, slots=True)
class PanelSettings:
    """``[panel]``: ``enabled`` (false), ``members`` (the three panel roles), ``threshold``
    (votes a class needs: 2)."""

    enabled: bool = False
    members: tuple[str, ...] = PANEL_ROLES
    threshold: int = 2

    @classmethod
    def from_table(cls, table: Mapping[str, Any], roles: Sequence[str] = PANEL_ROLES
                   ) -> PanelSettings:
        """Validate ``[panel]`` (``roles``: the roles a member may be); ValueError naming
        ``panel.<key>``.

        >>> PanelSettings.from_table({"members": ["news-analyst"], "threshold": 2})
        Traceback (most recent call last):
        ...
        ValueError: panel.threshold must be an integer in [1, 1] (the number of members), got 2
        """
        if not isinstance(table, Mapping):
            raise ValueError(f"panel must be a table ([panel]), got {table!r}")
        for key in table:
            if key not in _KEYS:
                raise ValueError(f"panel.{key} is not a known key of [panel] "
                                 f"({', '.join(_KEYS)})")
        enabled = table.get("enabled", False)
        if not isinstance(enabled, bool):
            raise ValueError(f"panel.enabled must be true or false, got {enabled!r}")
        members = table.get("members", list(PANEL_ROLES))
        if isinstance(members, str) or not isinstance(members, list | tuple):
            raise ValueError(f"panel.members must be a list of roles, got {members!r}")
        if not 1 <= len(members) <= MAX_MEMBERS or len(set(members)) != len(members):
            raise ValueError(f"panel.members must hold 1-{MAX_MEMBERS} distinct roles, "
                             f"got {list(members)!r}")
        for m in members:
            if m not in roles:
                raise ValueError(f"panel.members: {m!r} is not a panel role "
                                 f"(known: {', '.join(roles)})")
        threshold = table.get("threshold", min(2, len(members)))
        if (isinstance(threshold, bool) or not isinstance(threshold, int)
                or not 1 <= threshold <= len(members)):
            raise ValueError(f"panel.threshold must be an integer in [1, {len(members)}] "
                             f"(the number of members), got {threshold!r}")
        return cls(enabled, tuple(members), threshold)


@dataclass(frozen=True, slots=True)
class PanelVote:
    verdict: TriageVerdict
    reached: bool
    votes: dict[str, list[str]] = field(default_factory=dict)  # class -> members
    dissent: list[str] = field(default_factory=list)  # members who named another class
    failed: list[str] = field(default_factory=list)  # members with no valid answer

    def record(self, answers: Mapping[str, TriageVerdict | None]) -> dict[str, Any]:
        """JSON-ready: the tally and every member's answer (for the verdict and the bus)."""
        return {
            "reached": self.reached, "votes": self.votes, "dissent": self.dissent,
            "failed": self.failed,
            "members": {m: None if a is None else a.model_dump(mode="json")
                        for m, a in answers.items()},
        }


def vote(answers: Mapping[str, TriageVerdict | None], threshold: int) -> PanelVote:
    """One verdict from the members' answers (None: the member failed); see the module."""
    if threshold < 1:
        raise ValueError(f"threshold must be >= 1, got {threshold}")
    valid = {m: a for m, a in answers.items() if a is not None}
    failed = sorted(m for m, a in answers.items() if a is None)
    votes: dict[str, list[str]] = {}
    for m, a in sorted(valid.items()):
        votes.setdefault(a.classification.value, []).append(m)
    tally = Counter({c: len(ms) for c, ms in votes.items()})
    ranked = tally.most_common()
    top = ranked[0] if ranked else None
    tied = len(ranked) > 1 and ranked[1][1] == ranked[0][1]
    if top is None or top[1] < threshold or tied:
        why = ("no member answered" if top is None else
               f"no class has {threshold} of {len(answers)} votes without a tie "
               f"({', '.join(f'{c} {n}' for c, n in ranked)})")
        verdict = TriageVerdict(
            classification="IGNORE", confidence=0.0, source="rules",
            reasoning=f"The panel reached no consensus: {why}"
                      + (f"; failed: {', '.join(failed)}" if failed else "") + ".",
            key_factors=["panel without consensus"])
        return PanelVote(verdict, False, votes, [], failed)
    cls, n = top
    agree = [valid[m] for m in votes[cls]]
    lead = max(agree, key=lambda a: a.confidence)
    confidence = sum(a.confidence for a in agree) / n * (n / len(answers))
    factors: list[str] = []
    for a in agree:
        for f in a.key_factors:
            if f not in factors and len(factors) < 8:
                factors.append(f)
    dissent = sorted(m for m, a in valid.items() if a.classification.value != cls)
    reasoning = (f"Panel {n} of {len(answers)} for {cls}"
                 + (f" (dissent: {', '.join(dissent)})" if dissent else "")
                 + f". {lead.reasoning}")[:2000]
    verdict = TriageVerdict(classification=cls, confidence=min(1.0, confidence),
                            reasoning=reasoning, key_factors=factors, source=lead.source)
    return PanelVote(verdict, True, votes, dissent, failed)
